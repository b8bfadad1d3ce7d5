"""The affine transform family and its restrictions."""

import keras
import numpy as np
from keras import ops

from keras_stn.ops.grids.affine import affine_grid
from keras_stn.ops.grids.affine import affine_map_points
from keras_stn.ops.grids.affine import affine_pixel_grid
from keras_stn.ops.matrices import invert_affine
from keras_stn.ops.validation import to_tensor
from keras_stn.transforms.transform import Transform


@keras.saving.register_keras_serializable(package="keras_stn")
class Affine(Transform):
    """General affine transforms: `theta`, a 2x3 (or 3x4) matrix.

    `theta` maps normalized output coordinates `(x, y, 1)` to the input
    point they sample, as `keras_stn.ops.affine_grid`. Six parameters for
    images, twelve for volumes; the identity is `[[1, 0, 0], [0, 1, 0]]`.
    Families with fewer parameters (`Attention`, `Similarity`) subclass it
    and override `to_affine`.

    Example:

    >>> Affine().identity(spatial_rank=2)
    array([[1., 0., 0.],
           [0., 1., 0.]])
    """

    spatial_ranks = (2, 3)

    def parameter_shape(self, spatial_rank):
        return (spatial_rank, spatial_rank + 1)

    def identity(self, spatial_rank):
        return np.eye(spatial_rank, spatial_rank + 1)

    def to_affine(self, parameters):
        """Return the affine matrices `theta` that the parameters stand for.

        Args:
            parameters: float tensor of shape `(batch, *parameter_shape)`.

        Returns:
            `theta`, of shape `(batch, 2, 3)` (or `(batch, 3, 4)`).
        """
        return to_tensor(parameters, "parameters")

    def pixel_grid(self, parameters, input_size, output_size, align_corners):
        return affine_pixel_grid(
            self.to_affine(parameters), input_size, output_size, align_corners
        )

    def normalized_grid(self, parameters, output_size, align_corners):
        return affine_grid(
            self.to_affine(parameters), output_size, align_corners
        )

    def map_checked_points(self, parameters, points):
        return affine_map_points(self.to_affine(parameters), points)

    def invert(self, parameters):
        return invert_affine(self.check_any_parameters(parameters))


@keras.saving.register_keras_serializable(package="keras_stn")
class Attention(Affine):
    """Attention: an isotropic scale and a translation.

    The parameters `(s, tx, ty)` stand for `theta = [[s, 0, tx], [0, s,
    ty]]`: the output is the input's window of half-size `s` centred at
    `(tx, ty)`, in normalized coordinates (the paper's transform for SVHN
    and CUB). For volumes, `(s, tx, ty, tz)`. The identity is `(1, 0, 0)`.

    Example:

    >>> theta = Attention().to_affine(np.array([[0.5, 0.25, -0.125]]))
    >>> ops.convert_to_numpy(theta)[0].tolist()
    [[0.5, 0.0, 0.25], [0.0, 0.5, -0.125]]
    """

    def parameter_shape(self, spatial_rank):
        return (1 + spatial_rank,)

    def identity(self, spatial_rank):
        return np.eye(1, 1 + spatial_rank)[0]

    def to_affine(self, parameters):
        parameters = to_tensor(parameters, "parameters")
        scale, translation = parameters[:, :1], parameters[:, 1:]
        rank = translation.shape[-1]
        eye = ops.convert_to_tensor(
            [[float(i == j) for j in range(rank)] for i in range(rank)],
            parameters.dtype,
        )
        linear = scale[:, :, None] * eye
        return ops.concatenate([linear, translation[:, :, None]], axis=-1)

    def invert(self, parameters):
        # (s, t) -> (1 / s, -t / s).
        parameters = self.check_any_parameters(parameters)
        scale = 1.0 / parameters[:, :1]
        return ops.concatenate([scale, -parameters[:, 1:] * scale], axis=-1)


@keras.saving.register_keras_serializable(package="keras_stn")
class Similarity(Affine):
    """Similarity: an isotropic scale, a rotation and a translation.

    The parameters `(s, a, tx, ty)` stand for `theta = [[s cos a, -s sin a,
    tx], [s sin a, s cos a, ty]]`, the angle `a` in radians. As every
    family, it acts on normalized coordinates, so on an image that is not
    square the rotation is one of the normalized square. The identity is
    `(1, 0, 0, 0)`. Images only.

    Example:

    >>> theta = Similarity().to_affine(np.array([[2.0, 0.0, 0.5, 0.25]]))
    >>> ops.convert_to_numpy(theta)[0].tolist()
    [[2.0, -0.0, 0.5], [0.0, 2.0, 0.25]]
    """

    spatial_ranks = (2,)

    def parameter_shape(self, spatial_rank):
        return (4,)

    def identity(self, spatial_rank):
        return np.array([1.0, 0.0, 0.0, 0.0])

    def to_affine(self, parameters):
        parameters = to_tensor(parameters, "parameters")
        scale, angle = parameters[:, 0], parameters[:, 1]
        cos, sin = scale * ops.cos(angle), scale * ops.sin(angle)
        rows = [
            ops.stack([cos, -sin, parameters[:, 2]], axis=-1),
            ops.stack([sin, cos, parameters[:, 3]], axis=-1),
        ]
        return ops.stack(rows, axis=1)

    def invert(self, parameters):
        # s R(a) p + t inverts to R(-a) p / s - R(-a) t / s.
        parameters = self.check_any_parameters(parameters)
        scale, angle = 1.0 / parameters[:, 0], parameters[:, 1]
        cos, sin = scale * ops.cos(angle), scale * ops.sin(angle)
        tx, ty = parameters[:, 2], parameters[:, 3]
        return ops.stack(
            [scale, -angle, -(cos * tx + sin * ty), sin * tx - cos * ty],
            axis=-1,
        )
