"""The differentiable sampler (Jaderberg et al., 2015, section 3.3)."""

import functools
import itertools
import math

import keras
from keras import ops

from keras_stn.ops.antialiasing import antialiased_sample
from keras_stn.ops.coordinates import size_as
from keras_stn.ops.coordinates import unnormalize
from keras_stn.ops.jax_sampling import has_jax_kernel
from keras_stn.ops.jax_sampling import jax_sample
from keras_stn.ops.native_sampling import PIXEL_PADDING_MODES
from keras_stn.ops.native_sampling import has_native_sampler
from keras_stn.ops.native_sampling import native_grid_sample
from keras_stn.ops.native_sampling import native_sample_pixels
from keras_stn.ops.nonfinite import finite_points
from keras_stn.ops.nonfinite import mark_invalid
from keras_stn.ops.precision import at_least_float32
from keras_stn.ops.tf_sampling import has_tf_kernel
from keras_stn.ops.tf_sampling import tf_sample
from keras_stn.ops.torch_sampling import has_torch_kernel
from keras_stn.ops.torch_sampling import torch_sample
from keras_stn.ops.validation import channels_last_batch
from keras_stn.ops.validation import check_bool
from keras_stn.ops.validation import check_float_dtype
from keras_stn.ops.validation import check_implementation
from keras_stn.ops.validation import check_mode
from keras_stn.ops.validation import check_padding_mode
from keras_stn.ops.validation import check_same_batch
from keras_stn.ops.validation import check_shape
from keras_stn.ops.validation import check_spatial_axes_not_empty
from keras_stn.ops.validation import standardize_data_format
from keras_stn.ops.validation import to_tensor
from keras_stn.ops.xla_sampling import has_xla_sampler
from keras_stn.ops.xla_sampling import xla_compiled
from keras_stn.typing import Tensor

# The parameter of Keys' cubic convolution kernel that PyTorch's bicubic
# sampling uses.
CUBIC_A = -0.75


def grid_sample(
    images: Tensor,
    grid: Tensor,
    mode: str = "bilinear",
    padding_mode: str = "zeros",
    align_corners: bool = False,
    data_format: str | None = None,
    implementation: str = "auto",
    antialias: bool = False,
) -> Tensor:
    """Sample images (or volumes) at the points of a grid.

    Output pixel `(i, j)` of image `b` is the value of `images[b]` at the
    point `grid[b, i, j]`, interpolated from the pixels around it. The result
    is differentiable with respect to both `images` and `grid`, so gradients
    reach whatever produced the grid (the key point of the paper). Volumes
    (5-D `images`) are sampled at the points of a 5-D grid in the same way.

    Convention: the grid's last axis is `(x, y)` (or `(x, y, z)`, with `z`
    along the depth), normalized to `[-1, 1]` as described in
    `keras_stn.ops.coordinates`; points outside are handled by
    `padding_mode`. The numbers are those of
    `torch.nn.functional.grid_sample` with the same arguments.

    Args:
        images: float tensor of shape `(batch, height, width, channels)`
            (`"channels_last"`) or `(batch, channels, height, width)`
            (`"channels_first"`); for volumes, `(batch, depth, height,
            width, channels)` or `(batch, channels, depth, height, width)`.
        grid: float tensor of shape `(batch, out_height, out_width, 2)`, or
            `(batch, out_depth, out_height, out_width, 3)` for volumes.
        mode: `"bilinear"` (trilinear for volumes), `"nearest"` (ties round
            half to even) or `"bicubic"` (images only; Keys' kernel with
            `a = -0.75`, as PyTorch).
        padding_mode: the value of points outside the image: `"zeros"`,
            `"border"` (the nearest edge pixel) or `"reflection"` (the
            image mirrored at its edges).
        align_corners: if `True`, -1 and 1 are the centres of the corner
            pixels; if `False`, their outer edges.
        data_format: `"channels_last"`, `"channels_first"`, or `None` for
            `keras.config.image_data_format()`.
        implementation: `"auto"` uses the backend's fast path where it has
            one: PyTorch's `grid_sample` on the torch backend, for float32
            and float64 (`keras_stn.ops.native_sampling`), and the
            `keras.ops` sampler compiled by XLA on TensorFlow, forward and
            each gradient (`keras_stn.ops.xla_sampling`), and for bilinear
            sampling with `"zeros"` or `"border"` padding where it is
            differentiated, keras-stn's C++ kernel on the CPU of TensorFlow
            (`keras_stn.ops.tf_sampling`), JAX (`keras_stn.ops.jax_sampling`)
            and torch, for images of more than one channel
            (`keras_stn.ops.torch_sampling`); the same numbers up to float
            rounding. `"keras"` always uses the `keras.ops` sampler as it
            is.
        antialias: if `True`, where the grid is sparser than the input's
            pixels (it zooms out), each point reads a prefiltered copy of
            the input: a mip pyramid of 2x2 means, at the level that the
            grid's local spacing calls for, blended linearly between the
            two nearest levels (`keras_stn.ops.antialiasing`), in any
            `mode`. Where the grid is at least as dense as the pixels (the
            identity, zooming in), the result is that of `False` up to
            float rounding. Differentiable with respect to `images` and
            `grid` (also through the choice of level). Needs the input's
            spatial sizes when tracing; samples the input once per level.

    Returns:
        The sampled images, of shape `(batch, out_height, out_width,
        channels)` (or channels first, or with `out_depth` for volumes) and
        the dtype of `images`.

    Example:

    >>> import numpy as np
    >>> images = np.arange(4, dtype="float32").reshape(1, 2, 2, 1)
    >>> grid = np.zeros((1, 1, 1, 2), "float32")  # the image's centre
    >>> out = grid_sample(images, grid, data_format="channels_last")
    >>> float(ops.convert_to_numpy(out)[0, 0, 0, 0])
    1.5
    """
    images, data_format = prepare_images(
        images, mode, padding_mode, data_format, implementation
    )
    antialias = check_bool(antialias, "antialias")
    rank = len(images.shape) - 2
    grid = to_tensor(grid, "grid")
    check_float_dtype(grid, "grid")
    axes = ("out_depth, " if rank == 3 else "") + "out_height, out_width"
    check_shape(
        grid,
        "grid",
        rank=rank + 2,
        last_dims=(rank,),
        description=f"(batch, {axes}, {rank}) for {rank + 2}-D images",
    )
    check_same_batch(images, "images", grid, "grid")
    output_shape = tuple(grid.shape[1:-1])
    if 0 in output_shape:
        # No output pixels, so nothing to read (not every sampler reshapes
        # an empty grid).
        outputs = ops.zeros(
            (ops.shape(images)[0], *output_shape, ops.shape(images)[-1]),
            images.dtype,
        )
    elif (
        implementation == "auto"
        and not antialias
        and _has_kernel(images, [grid], mode, padding_mode)
        # An empty batch goes through `sample_pixels`, which handles it.
        and images.shape[0] != 0
    ):
        outputs = _kernel_sample(images, grid, padding_mode, align_corners)
    elif (
        implementation == "auto"
        and not antialias
        and has_native_sampler(images)
    ):
        outputs = native_grid_sample(
            images, grid, mode, padding_mode, align_corners
        )
    else:
        grid = ops.cast(grid, at_least_float32(grid.dtype))
        points = [
            unnormalize(grid[..., axis], size, align_corners)
            for axis, size in enumerate(spatial_sizes(images))
        ]
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


def prepare_images(
    images: Tensor,
    mode: str,
    padding_mode: str,
    data_format: str | None,
    implementation: str = "auto",
) -> tuple[Tensor, str]:
    """Check the sampler's arguments and move the channels of `images` last.

    Args:
        images: a 4-D (images) or 5-D (volumes) float batch, laid out as
            `data_format` says.
        mode: the sampling mode, checked.
        padding_mode: the padding mode, checked.
        data_format: `"channels_last"`, `"channels_first"` or `None`.
        implementation: `"auto"` or `"keras"`, checked.

    Returns:
        `(images, data_format)`: the batch as a channels-last tensor, and
        the data format with `None` resolved.
    """
    check_padding_mode(padding_mode)
    check_implementation(implementation)
    data_format = standardize_data_format(data_format)
    images = to_tensor(images, "images")
    check_float_dtype(images, "images")
    channels_last = channels_last_batch(images, "images", data_format)
    check_spatial_axes_not_empty(images, "images", data_format)
    check_mode(mode, spatial_rank=len(images.shape) - 2)
    return channels_last, data_format


def from_channels_last(images: Tensor, data_format: str) -> Tensor:
    """Move the channels of a channels-last batch where `data_format` says."""
    if data_format == "channels_first":
        return ops.moveaxis(images, -1, 1)
    return images


def spatial_sizes(images: Tensor) -> list:
    """The spatial sizes of channels-last images, in the order `x, y[, z]`.

    Args:
        images: a channels-last batch of images or volumes.

    Returns:
        One size per spatial axis: a Python int where the shape is known,
        else a scalar tensor (in a TensorFlow graph traced for any size) or
        a symbolic dimension (in JAX's shape-polymorphic export).
    """
    return list(reversed(ops.shape(images)[1:-1]))


def sample_pixels(
    images: Tensor,
    points: list[Tensor],
    mode: str,
    padding_mode: str,
    align_corners: bool,
    implementation: str = "auto",
    antialias: bool = False,
) -> Tensor:
    """Sample channels-last images or volumes at pixel coordinates.

    Args:
        images: float tensor of shape `(batch, *spatial, channels)`, with
            `spatial` `(height, width)` or `(depth, height, width)`.
        points: the coordinates of the sampling points in pixels (pixel `i`
            has its centre at `i`), one tensor per spatial axis in the order
            `x, y[, z]`, each of shape `(batch, *output_shape)`.
        mode: `"bilinear"`, `"nearest"` or `"bicubic"`.
        padding_mode: `"zeros"`, `"border"` or `"reflection"`.
        align_corners: the convention of the grid, which sets the mirror
            lines of `"reflection"` padding.
        implementation: `"auto"` (the backend's fast path where it has
            one) or `"keras"`, as in `grid_sample`.
        antialias: whether to read a mip pyramid of the images where the
            points are sparser than the pixels, as in `grid_sample`.

    Returns:
        Tensor of shape `(batch, *output_shape, channels)`. NaN and
        infinite points follow the rule of `keras_stn.ops.nonfinite`.
    """
    if antialias:
        # Each level sampled as without antialiasing, fast paths included.
        sample = functools.partial(
            sample_pixels,
            mode=mode,
            padding_mode=padding_mode,
            align_corners=align_corners,
            implementation=implementation,
        )
        return antialiased_sample(images, points, sample)
    if images.shape[0] == 0:
        # Nothing to sample, but not every backend gathers from an empty
        # operand (JAX's `take` then drops the indices' axes): sample one
        # blank example and drop it, which keeps the shapes and gradients.
        images = ops.concatenate(
            [images, ops.zeros((1, *images.shape[1:]), images.dtype)]
        )
        points = [
            ops.concatenate([p, ops.zeros((1, *p.shape[1:]), p.dtype)])
            for p in points
        ]
        return sample_pixels(
            images, points, mode, padding_mode, align_corners, implementation
        )[:0]
    if implementation == "auto":
        if _has_kernel(images, points, mode, padding_mode):
            return _kernel_sample(images, points, padding_mode)
        if padding_mode in PIXEL_PADDING_MODES and has_native_sampler(images):
            return native_sample_pixels(images, points, mode, padding_mode)
        if has_xla_sampler():
            return xla_compiled(
                _sample_finite_pixels,
                images,
                points,
                mode=mode,
                padding_mode=padding_mode,
                align_corners=align_corners,
            )
    return _sample_finite_pixels(
        images, points, mode, padding_mode, align_corners
    )


def _has_kernel(images, points, mode, padding_mode):
    """Whether keras-stn's C++ kernel samples here, on any backend."""
    return any(
        has_kernel(images, points, mode, padding_mode)
        for has_kernel in (has_jax_kernel, has_tf_kernel, has_torch_kernel)
    )


def _kernel_sample(images, points, padding_mode, align_corners=None):
    """Sample with keras-stn's C++ kernel, where `_has_kernel` says.

    `points` in pixels (for `align_corners=None`) or normalized: a tensor
    of shape `(batch, *output_shape, rank)`, or one tensor per axis, which
    TensorFlow's kernel reads as they are (its graph would copy them to
    stack them, and its gradients to unstack them), and the others stacked
    (XLA fuses the stacking into the points' computation).
    """
    generic = _sample_bilinear_pixels
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return tf_sample(images, points, padding_mode, generic, align_corners)
    if isinstance(points, list):
        points = ops.stack(points, axis=-1)
    if backend == "jax":
        return jax_sample(images, points, padding_mode, generic, align_corners)
    return torch_sample(images, points, padding_mode, generic, align_corners)


def _sample_finite_pixels(images, points, mode, padding_mode, align_corners):
    """Sample as `keras_stn.ops.nonfinite` says NaN and infinities sample.

    The points are made finite for `_sample_pixels`, and the outputs of
    invalid points set to NaN.
    """
    points, invalid = finite_points(points, spatial_sizes(images), padding_mode)
    outputs = _sample_pixels(images, points, mode, padding_mode, align_corners)
    return mark_invalid(outputs, invalid)


def _sample_bilinear_pixels(images, points, padding_mode):
    """`_sample_finite_pixels` for the kernels' second derivatives and
    fallbacks: bilinear sampling with `"zeros"` or `"border"` padding, where
    `align_corners` changes nothing."""
    return _sample_finite_pixels(
        images, points, "bilinear", padding_mode, align_corners=False
    )


def _sample_pixels(images, points, mode, padding_mode, align_corners):
    """`sample_pixels` with `keras.ops` alone."""
    channels = ops.shape(images)[-1]
    sizes = [size_as(size, "int32") for size in spatial_sizes(images)]
    strides = [1]
    for size in sizes[:-1]:
        strides.append(strides[-1] * size)
    # The points flattened to (batch, num_points): gathers of high rank
    # crash XLA's CPU compiler (jax 0.10) when a matrix product follows.
    output_shape = ops.shape(points[0])[1:]
    num_points = math.prod(output_shape)
    points = [ops.reshape(point, (-1, num_points)) for point in points]
    # Per axis: the pixels that a point reads, with their weights.
    taps = [
        _axis_taps(coordinate, size, mode, padding_mode, align_corners)
        for coordinate, size in zip(points, sizes, strict=True)
    ]
    # One gather per combination of taps, of rows of the flattened (batch *
    # pixels, channels) images, weighed and summed as it comes. Against one
    # gather of every tap at once, this measured 2.8x faster at MNIST size
    # and 25% less peak memory on JAX, 10-30% slower on 64x64x32 feature
    # maps and volumes (docs/design/kernel-history.md).
    # Each example's first row, `arange(batch)` times the pixels per image,
    # counted so that the batch size may be unknown when tracing (`arange`
    # needs a number; JAX's ONNX export traces with a symbolic batch).
    example = ops.cumsum(ops.ones_like(points[0][:, :1], "int32"), axis=0)
    first_row = (example - 1) * (strides[-1] * sizes[-1])
    flat_images = ops.reshape(images, (-1, channels))
    # Weights and sums in float32 for float16 or bfloat16 images (mixed
    # precision), whose sums would round to a few digits; then cast back.
    dtype = at_least_float32(images.dtype)
    outputs = None
    for combination in itertools.product(*taps):
        index, weight, inside = first_row, None, None
        for (axis_index, axis_weight, axis_inside), stride in zip(
            combination, strides, strict=True
        ):
            index = index + axis_index * stride
            weight = axis_weight if weight is None else weight * axis_weight
            inside = axis_inside if inside is None else inside & axis_inside
        # A tap outside the image reads some edge pixel (its index is
        # clipped); it is zeroed whatever that pixel holds, so that a NaN or
        # infinite pixel reaches the outputs that read it, as in PyTorch's
        # kernel, and no others.
        term = ops.cast(ops.take(flat_images, index, axis=0), dtype)
        term = ops.where(inside[..., None], term, 0.0)
        term = term * ops.cast(weight, dtype)[..., None]
        outputs = term if outputs is None else outputs + term
    outputs = ops.cast(outputs, images.dtype)
    return ops.reshape(outputs, (-1, *output_shape, channels))


def _axis_taps(coordinate, size, mode, padding_mode, align_corners):
    """The pixels that sampling reads along one axis, with their weights.

    A pixel's weight in the sampled value is the product of its weights
    along each axis; pixels outside the image are not read.

    Args:
        coordinate: the points' coordinates along the axis, in pixels.
        size: the number of pixels along the axis.
        mode: `"bilinear"`, `"nearest"` or `"bicubic"`.
        padding_mode: `"zeros"`, `"border"` or `"reflection"`.
        align_corners: the convention of the grid.

    Returns:
        A list of `(index, weight, inside)` triples, each shaped like
        `coordinate`: int32 indices into the axis (clipped into it), float
        weights, and booleans that say which taps are inside the image.
    """
    size = size_as(size, coordinate.dtype)
    if mode == "bicubic":
        # PyTorch's bicubic pads each tap, not the point (a padded point
        # would move the taps).
        start = _floor(ops.stop_gradient(coordinate))
        fraction = coordinate - start
        weights = _cubic_weights(fraction)
        positions = [
            _pad_coordinates(start + offset, size, padding_mode, align_corners)
            for offset in (-1.0, 0.0, 1.0, 2.0)
        ]
        return [
            _masked_tap(position, weight, size)
            for position, weight in zip(positions, weights, strict=True)
        ]
    coordinate = _pad_coordinates(coordinate, size, padding_mode, align_corners)
    if mode == "nearest":
        return [_masked_tap(ops.round(coordinate), 1.0, size)]
    low = _floor(ops.stop_gradient(coordinate))
    high = low + 1.0
    # PyTorch's weights: each corner weighs the distance from the point to
    # the opposite corner.
    return [
        _masked_tap(low, high - coordinate, size),
        _masked_tap(high, coordinate - low, size),
    ]


def _floor(coordinate):
    """The floor of float coordinates, in their own dtype.

    `keras.ops.floor` computes float64 in float32 on JAX and torch (Keras
    3.15), which moves a point less than about 1e-6 pixels below a whole
    coordinate onto it: into the next pixel's cell, with that cell's
    gradient. For float64, `trunc` (which keeps the dtype) less one where it
    rounds up is the floor, exactly; other dtypes keep the one op.
    """
    if keras.backend.standardize_dtype(coordinate.dtype) != "float64":
        return ops.floor(coordinate)
    truncated = ops.trunc(coordinate)
    return ops.where(truncated > coordinate, truncated - 1.0, truncated)


def _cubic_weights(fraction):
    """Keys' cubic convolution weights of the taps at -1, 0, 1 and 2.

    The formulas of PyTorch's `get_cubic_upsample_coefficients`, for a point
    at `fraction` in `[0, 1)` past tap 0.
    """
    a = CUBIC_A

    def near(t):  # |t| <= 1
        return ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0

    def far(t):  # 1 < |t| < 2
        return ((a * t - 5.0 * a) * t + 8.0 * a) * t - 4.0 * a

    rest = 1.0 - fraction
    return [far(fraction + 1.0), near(fraction), near(rest), far(rest + 1.0)]


def _masked_tap(position, weight, size):
    """A tap's index and weight, and whether it is inside the image."""
    inside = (position >= 0) & (position <= size - 1)
    if not hasattr(weight, "shape"):
        weight = ops.ones_like(position) * weight
    return _to_index(position, size), weight, inside


def _to_index(coordinate, size):
    """Turn float pixel coordinates into valid int32 indices.

    Clipping before the cast keeps huge values in the int32 range; clipping
    after it catches NaN, whose cast is undefined. The samples of taps
    outside the image are zeroed, so the pixel they index does not matter.
    """
    index = ops.cast(ops.clip(coordinate, -1, size), "int32")
    return ops.clip(index, 0, size_as(size, "int32") - 1)


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
    if isinstance(span, (int, float)):
        if span <= 0:
            return ops.zeros_like(coordinate)
        return _mirror(coordinate, low, span)
    # A size known only when the graph runs: an axis of one pixel, with no
    # span to mirror in, may still come.
    reflected = _mirror(coordinate, low, ops.maximum(span, 1.0))
    return ops.where(span > 0, reflected, ops.zeros_like(coordinate))


def _mirror(coordinate, low, span):
    """Reflect coordinates into `[low, low + span]`, for a span > 0.

    Reflection is periodic, with period `2 * span`: one remainder, exact in
    floating point (an `fmod` on every backend and compiler), places the
    point in a period, and one comparison with the same remainder picks the
    side of the mirror line. There is no division, which a compiler may
    turn into a multiplication by the rounded reciprocal (XLA does for
    constants): a point on a mirror line would then count one flip fewer
    than its remainder says, and land on the opposite edge. The values
    and gradients are those of PyTorch's `reflect_coordinates`.
    """
    distance = coordinate - low
    distance = ops.where(distance < 0, -distance, distance)
    period = 2 * span
    position = ops.mod(distance, period)
    return ops.where(position < span, position, period - position) + low
