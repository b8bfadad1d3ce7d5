"""The differentiable sampler (Jaderberg et al., 2015, section 3.3)."""

from keras import ops

from keras_stn.ops.coordinates import unnormalize
from keras_stn.ops.validation import check_float_dtype
from keras_stn.ops.validation import check_mode
from keras_stn.ops.validation import check_padding_mode
from keras_stn.ops.validation import check_same_batch
from keras_stn.ops.validation import check_shape
from keras_stn.ops.validation import standardize_data_format
from keras_stn.typing import Tensor


def grid_sample(
    images: Tensor,
    grid: Tensor,
    mode: str = "bilinear",
    padding_mode: str = "zeros",
    align_corners: bool = False,
    data_format: str | None = None,
) -> Tensor:
    """Sample images at the points of a grid.

    Output pixel `(i, j)` of image `b` is the value of `images[b]` at the
    point `grid[b, i, j]`, interpolated from the pixels around it. The result
    is differentiable with respect to both `images` and `grid`, so gradients
    reach whatever produced the grid (the key point of the paper).

    Convention: the grid's last axis is `(x, y)`, normalized to `[-1, 1]` as
    described in `keras_stn.ops.coordinates`; points outside are handled by
    `padding_mode`. The numbers are those of
    `torch.nn.functional.grid_sample` with the same arguments.

    Args:
        images: float tensor of shape `(batch, height, width, channels)`
            (`"channels_last"`) or `(batch, channels, height, width)`
            (`"channels_first"`).
        grid: float tensor of shape `(batch, out_height, out_width, 2)`.
        mode: `"bilinear"` or `"nearest"` (ties round half to even).
        padding_mode: the value of points outside the image: `"zeros"`,
            `"border"` (the nearest edge pixel) or `"reflection"` (the
            image mirrored at its edges).
        align_corners: if `True`, -1 and 1 are the centres of the corner
            pixels; if `False`, their outer edges.
        data_format: `"channels_last"`, `"channels_first"`, or `None` for
            `keras.config.image_data_format()`.

    Returns:
        The sampled images, of shape `(batch, out_height, out_width,
        channels)` (or channels first) and the dtype of `images`.

    Example:

    >>> import numpy as np
    >>> images = np.arange(4, dtype="float32").reshape(1, 2, 2, 1)
    >>> grid = np.zeros((1, 1, 1, 2), "float32")  # the image's centre
    >>> out = grid_sample(images, grid, data_format="channels_last")
    >>> float(ops.convert_to_numpy(out)[0, 0, 0, 0])
    1.5
    """
    images, data_format = prepare_images(
        images, mode, padding_mode, data_format
    )
    grid = ops.convert_to_tensor(grid)
    check_float_dtype(grid, "grid")
    check_shape(
        grid,
        "grid",
        rank=4,
        last_dims=(2,),
        description="(batch, out_height, out_width, 2)",
    )
    check_same_batch(images, "images", grid, "grid")
    height, width = ops.shape(images)[1:3]
    x = unnormalize(grid[..., 0], width, align_corners)
    y = unnormalize(grid[..., 1], height, align_corners)
    outputs = sample_pixels(images, x, y, mode, padding_mode, align_corners)
    return from_channels_last(outputs, data_format)


def prepare_images(
    images: Tensor, mode: str, padding_mode: str, data_format: str | None
) -> tuple[Tensor, str]:
    """Check the sampler's arguments and move the channels of `images` last.

    Args:
        images: a 4-D float batch, laid out as `data_format` says.
        mode: the sampling mode, checked.
        padding_mode: the padding mode, checked.
        data_format: `"channels_last"`, `"channels_first"` or `None`.

    Returns:
        `(images, data_format)`: the batch as a channels-last tensor, and
        the data format with `None` resolved.
    """
    check_mode(mode)
    check_padding_mode(padding_mode)
    data_format = standardize_data_format(data_format)
    images = ops.convert_to_tensor(images)
    check_float_dtype(images, "images")
    check_shape(
        images,
        "images",
        rank=4,
        description="(batch, height, width, channels) or "
        "(batch, channels, height, width)",
    )
    if data_format == "channels_first":
        images = ops.transpose(images, (0, 2, 3, 1))
    return images, data_format


def from_channels_last(images: Tensor, data_format: str) -> Tensor:
    """Move the channels of a channels-last batch where `data_format` says."""
    if data_format == "channels_first":
        return ops.transpose(images, (0, 3, 1, 2))
    return images


def sample_pixels(
    images: Tensor,
    x: Tensor,
    y: Tensor,
    mode: str,
    padding_mode: str,
    align_corners: bool,
) -> Tensor:
    """Sample channels-last images at pixel coordinates.

    Args:
        images: float tensor of shape `(batch, height, width, channels)`.
        x: float tensor of shape `(batch, out_height, out_width)`: the column
            of each sampling point, in pixels (pixel `i` has its centre at
            `i`).
        y: like `x`, the row.
        mode: `"bilinear"` or `"nearest"`.
        padding_mode: `"zeros"`, `"border"` or `"reflection"`.
        align_corners: the convention of the grid, which sets the mirror
            lines of `"reflection"` padding.

    Returns:
        Tensor of shape `(batch, out_height, out_width, channels)`.
    """
    batch, height, width, channels = ops.shape(images)
    x = _pad_coordinates(x, width, padding_mode, align_corners)
    y = _pad_coordinates(y, height, padding_mode, align_corners)
    if mode == "nearest":
        corners = [(ops.round(x), ops.round(y), ops.ones_like(x))]
    else:
        x0 = ops.floor(ops.stop_gradient(x))
        y0 = ops.floor(ops.stop_gradient(y))
        x1, y1 = x0 + 1.0, y0 + 1.0
        # PyTorch's weights: each corner weighs the area of the rectangle
        # between the point and the opposite corner.
        corners = [
            (x0, y0, (x1 - x) * (y1 - y)),
            (x1, y0, (x - x0) * (y1 - y)),
            (x0, y1, (x1 - x) * (y - y0)),
            (x1, y1, (x - x0) * (y - y0)),
        ]
    # One gather for all corners: rows of the flattened (batch * height *
    # width, channels) images.
    first_row = ops.arange(batch, dtype="int32") * (height * width)
    first_row = ops.reshape(first_row, (-1, 1, 1))
    indices, weights = [], []
    for corner_x, corner_y, weight in corners:
        inside = (
            (corner_x >= 0)
            & (corner_x <= width - 1)
            & (corner_y >= 0)
            & (corner_y <= height - 1)
        )
        weights.append(ops.where(inside, weight, ops.zeros_like(weight)))
        column = _to_index(corner_x, width)
        row = _to_index(corner_y, height)
        indices.append(first_row + row * width + column)
    flat_images = ops.reshape(images, (-1, channels))
    values = ops.take(flat_images, ops.stack(indices, axis=-1), axis=0)
    weights = ops.cast(ops.stack(weights, axis=-1), images.dtype)
    return ops.sum(values * weights[..., None], axis=-2)


def _to_index(coordinate, size):
    """Turn float pixel coordinates into valid int32 indices.

    Clipping before the cast keeps huge values in the int32 range; clipping
    after it catches NaN, whose cast is undefined. Points outside the image
    get weight zero, so the pixel they index does not matter.
    """
    index = ops.cast(ops.clip(coordinate, -1, size), "int32")
    return ops.clip(index, 0, size - 1)


def _pad_coordinates(coordinate, size, padding_mode, align_corners):
    """Move coordinates into the image as `padding_mode` says.

    `"zeros"` leaves them (the sampler gives outside corners weight zero).
    `"reflection"` mirrors them at the image's edges, then `"border"` and
    `"reflection"` clamp them to `[0, size - 1]`, with PyTorch's gradients:
    zero where a coordinate is clamped, including exactly on the edge.
    """
    if padding_mode == "zeros":
        return coordinate
    if padding_mode == "reflection":
        if align_corners:
            coordinate = _reflect(coordinate, 0, size - 1)
        else:
            coordinate = _reflect(coordinate, -0.5, size - 0.5)
    high = size - 1
    inside = (coordinate > 0) & (coordinate < high)
    clamped = ops.where(coordinate <= 0, 0.0, high)
    return ops.where(inside, coordinate, ops.cast(clamped, coordinate.dtype))


def _reflect(coordinate, low, high):
    """Reflect coordinates into `[low, high]` by mirroring at its ends."""
    span = high - low
    if span <= 0:
        return ops.zeros_like(coordinate)
    distance = coordinate - low
    distance = ops.where(distance < 0, -distance, distance)
    flips = ops.floor(ops.stop_gradient(distance) / span)
    extra = ops.mod(distance, span)
    even = ops.equal(ops.mod(flips, 2.0), 0.0)
    return ops.where(even, extra + low, span - extra + low)
