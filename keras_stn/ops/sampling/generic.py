"""The generic sampler, written in `keras.ops`: every backend, every case.

It samples channels-last images (or volumes) at points in pixels with
PyTorch's conventions (`keras_stn.ops.coordinates`) and its rule for NaN and
infinite points (`keras_stn.ops.sampling.nonfinite`), in every mode and
padding mode, differentiably with respect to the images and the points, to
any order. It is the reference that every faster path of
`keras_stn.ops.sampling.dispatch` matches, and what runs where none applies.
"""

import itertools
import math

from keras import ops

from keras_stn.ops.coordinates import size_as
from keras_stn.ops.coordinates import spatial_sizes
from keras_stn.ops.coordinates import unnormalize
from keras_stn.ops.dtypes import dtype_name
from keras_stn.ops.precision import at_least_float32
from keras_stn.ops.sampling.nonfinite import finite_points
from keras_stn.ops.sampling.nonfinite import mark_invalid
from keras_stn.ops.sampling.options import SamplingOptions
from keras_stn.typing import Tensor

# The parameter of Keys' cubic convolution kernel that PyTorch's bicubic
# sampling uses.
CUBIC_A = -0.75


def sample(
    images: Tensor, points: Tensor | list[Tensor], options: SamplingOptions
) -> Tensor:
    """Sample channels-last images with `keras.ops` alone.

    Args:
        images: float tensor of shape `(batch, *spatial, channels)`.
        points: the sampling points, as `options.normalized` says.
        options: the sampling's options (`SamplingOptions`).

    Returns:
        Tensor of shape `(batch, *output_shape, channels)`.
    """
    mode, padding_mode, align_corners, normalized = options
    points = pixel_points(images, points, align_corners, normalized)
    return sample_finite_pixels(
        images, points, mode, padding_mode, align_corners
    )


def pixel_points(
    images: Tensor,
    points: Tensor | list[Tensor],
    align_corners: bool,
    normalized: bool,
) -> list[Tensor]:
    """The sampling points in pixels, one tensor per axis.

    Args:
        images: the channels-last batch that is sampled.
        points: one tensor per axis, or one with a last axis of
            coordinates `x, y[, z]`.
        align_corners: the convention of normalized points.
        normalized: whether the points are normalized coordinates.

    Returns:
        One tensor of shape `(batch, *output_shape)` per axis, in pixels
        (at least float32 where they are converted).
    """
    if not isinstance(points, (list, tuple)):
        points = [points[..., axis] for axis in range(points.shape[-1])]
    if not normalized:
        return list(points)
    return [
        unnormalize(
            ops.cast(point, at_least_float32(point.dtype)), size, align_corners
        )
        for point, size in zip(points, spatial_sizes(images), strict=True)
    ]


def sample_finite_pixels(
    images: Tensor,
    points: list[Tensor],
    mode: str,
    padding_mode: str,
    align_corners: bool,
) -> Tensor:
    """Sample at pixel points as `keras_stn.ops.sampling.nonfinite` says
    NaN and infinite points sample.

    The points are made finite for `_sample_pixels`, and the outputs of
    invalid points set to NaN.

    Args:
        images: float tensor of shape `(batch, *spatial, channels)`.
        points: one tensor of shape `(batch, *output_shape)` per axis, in
            pixels, in the order `x, y[, z]`.
        mode: `"bilinear"`, `"nearest"` or `"bicubic"`.
        padding_mode: `"zeros"`, `"border"` or `"reflection"`.
        align_corners: the convention of the grid.

    Returns:
        Tensor of shape `(batch, *output_shape, channels)`.
    """
    points, invalid = finite_points(points, spatial_sizes(images), padding_mode)
    outputs = _sample_pixels(images, points, mode, padding_mode, align_corners)
    return mark_invalid(outputs, invalid)


def sample_bilinear(
    images: Tensor, points: list[Tensor], padding_mode: str
) -> Tensor:
    """`sample_finite_pixels` for the C++ kernel's second derivatives and
    fallbacks: bilinear sampling with `"zeros"` or `"border"` padding, where
    `align_corners` changes nothing."""
    return sample_finite_pixels(
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
    if dtype_name(coordinate.dtype) != "float64":
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
