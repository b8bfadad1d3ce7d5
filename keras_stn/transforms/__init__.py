"""Transform families: how regressed parameters become a sampling grid."""

import keras

from keras_stn.transforms.affine import Affine
from keras_stn.transforms.affine import Attention
from keras_stn.transforms.affine import Similarity
from keras_stn.transforms.projective import Projective
from keras_stn.transforms.thin_plate_spline import ThinPlateSpline
from keras_stn.transforms.transform import Transform

ALL_TRANSFORMS = {
    "affine": Affine,
    "attention": Attention,
    "similarity": Similarity,
    "projective": Projective,
    "tps": ThinPlateSpline,
}


def get(identifier) -> Transform:
    """Return a transform family from its name, config or instance.

    Args:
        identifier: one of `"affine"`, `"attention"`, `"similarity"`,
            `"projective"` or `"tps"` (the family with its default options),
            a `Transform` instance, or a dict from
            `keras.saving.serialize_keras_object`.

    Returns:
        A `Transform` instance.

    Example:

    >>> get("tps")
    ThinPlateSpline(grid_size=(4, 4))
    """
    if isinstance(identifier, Transform):
        return identifier
    if isinstance(identifier, str) and identifier in ALL_TRANSFORMS:
        return ALL_TRANSFORMS[identifier]()
    if isinstance(identifier, dict):
        try:
            transform = keras.saving.deserialize_keras_object(identifier)
        except (TypeError, ValueError):
            transform = None
        if isinstance(transform, Transform):
            return transform
    raise ValueError(
        "Invalid value for argument `transform`. Expected one of "
        f"{tuple(ALL_TRANSFORMS)} or a `keras_stn.transforms.Transform`. "
        f"Received transform={identifier!r}"
    )


__all__ = [
    "Affine",
    "Attention",
    "Projective",
    "Similarity",
    "ThinPlateSpline",
    "Transform",
    "get",
]
