"""Affine warping: the affine grid generator and the sampler in one step."""

from keras import ops

from keras_stn.ops.affine_grid import affine_pixel_grid
from keras_stn.ops.grid_sample import from_channels_last
from keras_stn.ops.grid_sample import prepare_images
from keras_stn.ops.grid_sample import sample_pixels
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
) -> Tensor:
    """Warp images with a batch of 2-D affine transforms.

    The same numbers as
    `grid_sample(images, affine_grid(theta, output_size), ...)`, computed
    through `affine_pixel_grid`, so that the identity transform samples
    exactly the pixel centres on every backend: the output equals the input
    and the gradient with respect to `theta` is the same everywhere.

    Args:
        images: float tensor of shape `(batch, height, width, channels)`
            (`"channels_last"`) or `(batch, channels, height, width)`
            (`"channels_first"`).
        theta: float tensor of shape `(batch, 2, 3)` mapping normalized
            output coordinates to normalized input coordinates, as in
            `affine_grid`.
        output_size: `(out_height, out_width)`, or `None` for the input's
            size.
        mode: `"bilinear"` or `"nearest"`.
        padding_mode: `"zeros"`, `"border"` or `"reflection"`.
        align_corners: the convention of `affine_grid` and `grid_sample`.
        data_format: `"channels_last"`, `"channels_first"`, or `None` for
            `keras.config.image_data_format()`.

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
        images, mode, padding_mode, data_format
    )
    input_size = tuple(images.shape[1:3])
    output_size = standardize_size(output_size, "output_size", allow_none=True)
    theta = ops.convert_to_tensor(theta)
    pixels = affine_pixel_grid(
        theta, input_size, output_size or input_size, align_corners
    )
    check_same_batch(images, "images", theta, "theta")
    outputs = sample_pixels(
        images,
        pixels[..., 0],
        pixels[..., 1],
        mode,
        padding_mode,
        align_corners,
    )
    return from_channels_last(outputs, data_format)
