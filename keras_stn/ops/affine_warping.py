"""Affine warping: the affine grid generator and the sampler in one step."""

from keras import ops

from keras_stn.ops.grids.affine import affine_pixel_grid
from keras_stn.ops.grids.homogeneous import check_matrix
from keras_stn.ops.sampling.sampler import from_channels_last
from keras_stn.ops.sampling.sampler import prepare_images
from keras_stn.ops.sampling.sampler import sample_pixels
from keras_stn.ops.validation import check_bool
from keras_stn.ops.validation import check_same_batch
from keras_stn.ops.validation import standardize_size
from keras_stn.typing import Size
from keras_stn.typing import Tensor


def warp_affine(
    images: Tensor,
    theta: Tensor,
    output_size: Size | None = None,
    mode: str = "bilinear",
    padding_mode: str = "zeros",
    align_corners: bool = False,
    data_format: str | None = None,
    implementation: str = "auto",
    antialias: bool = False,
) -> Tensor:
    """Warp images (or volumes) with a batch of affine transforms.

    The same numbers as
    `grid_sample(images, affine_grid(theta, output_size), ...)`, computed
    through `affine_pixel_grid`, so that the identity transform samples
    exactly the pixel centres on every backend: the output equals the input
    and the gradient with respect to `theta` is the same everywhere.

    Args:
        images: float tensor of shape `(batch, height, width, channels)`
            (`"channels_last"`) or `(batch, channels, height, width)`
            (`"channels_first"`); for volumes, with a depth axis before the
            height.
        theta: float tensor of shape `(batch, 2, 3)` (or `(batch, 3, 4)`
            for volumes) mapping normalized output coordinates to
            normalized input coordinates, as in `affine_grid`.
        output_size: `(out_height, out_width)` (or `(out_depth, out_height,
            out_width)`), or `None` for the input's size.
        mode: `"bilinear"`, `"nearest"` or `"bicubic"` (images only).
        padding_mode: `"zeros"`, `"border"` or `"reflection"`.
        align_corners: the convention of `affine_grid` and `grid_sample`.
        data_format: `"channels_last"`, `"channels_first"`, or `None` for
            `keras.config.image_data_format()`.
        implementation: `"auto"` (the backend's fast sampling path where
            it has one) or `"keras"`, as in `grid_sample`.
        antialias: if `True`, where `theta` zooms out, each point reads a
            prefiltered copy of the images, as in `grid_sample`; the
            identity and zooming in are unchanged.

    Returns:
        The warped images, of shape `(batch, out_height, out_width,
        channels)` (or channels first) and the dtype of `images`.

    Example:

    >>> import numpy as np
    >>> images = np.random.rand(2, 8, 8, 3).astype("float32")
    >>> identity = np.tile(np.eye(2, 3, dtype="float32"), (2, 1, 1))
    >>> out = warp_affine(images, identity, data_format="channels_last")
    >>> bool(np.array_equal(ops.convert_to_numpy(out), images))
    True
    """
    images, data_format = prepare_images(
        images, mode, padding_mode, data_format, implementation
    )
    antialias = check_bool(antialias, "antialias")
    input_size = tuple(images.shape[1:-1])
    output_size = standardize_size(
        output_size, "output_size", allow_none=True, rank=len(input_size)
    )
    theta = check_matrix(theta, "theta", projective=False)
    if theta.shape[1] != len(input_size):
        raise ValueError(
            "Arguments `images` and `theta` must have the same number of "
            "spatial axes: theta of shape (batch, 2, 3) for 4-D images, "
            "(batch, 3, 4) for 5-D volumes. Received "
            f"images.shape={tuple(ops.shape(images))} (channels last) and "
            f"theta.shape={tuple(theta.shape)}"
        )
    check_same_batch(images, "images", theta, "theta")
    points = affine_pixel_grid(
        theta, input_size, output_size or input_size, align_corners
    )
    outputs = sample_pixels(
        images,
        points,
        mode,
        padding_mode,
        align_corners,
        implementation,
        antialias,
    )
    return from_channels_last(outputs, data_format)
