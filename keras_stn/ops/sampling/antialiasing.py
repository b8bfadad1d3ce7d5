"""Antialiased sampling: a mip pyramid read at the grid's local spacing.

Where a grid samples the input more sparsely than one point per pixel (a
transform that zooms out), plain bilinear sampling reads two pixels per axis
around each point and skips the others, and fine detail aliases. Texture
mapping in graphics prefilters instead (Williams, "Pyramidal Parametrics",
1983): level 0 of a pyramid is the image, level `k` averages 2x2 (2x2x2 for
volumes) blocks of level `k - 1`, and each point reads the level whose
pixels are as large as the spacing of the grid around it, interpolating
linearly between the two nearest levels ("trilinear" mip-mapping).

Convention: the spacing of the grid at an output pixel is its footprint,
the longest of the derivative vectors of its input point along the output
axes (in input pixels, by central differences, one-sided at the borders);
its level is `log2(footprint)`, clipped to `[0, max_level]`, where the top
level is a single pixel. A footprint of at most one pixel (the identity,
zooming in) is level 0: the image itself, sampled as without antialiasing.
An output axis of one pixel has no spacing along it (zero).

Positions are kept in pixels: pixel `j` of level `k` averages the pixels
`[2**k * j, 2**k * (j + 1))` of the image, so the point at `x` (pixel
centres at integers) reads level `k` at `(x + 0.5) / 2**k - 0.5`, whatever
`align_corners` says. A level of an axis of odd size repeats the axis's last
pixel before averaging; it then reaches up to one of its pixels past the
image's edge, where padding of the coarser levels starts that much later.
"""

import math

from keras import ops

from keras_stn.ops.coordinates import are_static
from keras_stn.ops.precision import at_least_float32
from keras_stn.typing import Tensor


def antialiased_sample(images: Tensor, points: list, sample) -> Tensor:
    """Sample channels-last images at pixel points, prefiltered by a pyramid.

    Args:
        images: float tensor of shape `(batch, *spatial, channels)`, with
            `spatial` `(height, width)` or `(depth, height, width)`, of
            sizes known when tracing.
        points: the sampling points in pixels of `images`, one tensor per
            spatial axis in the order `x, y[, z]`, each of shape
            `(batch, ..., *output_size)`: the last `len(points)` axes are
            the output's spatial axes, along which the spacing is measured.
        sample: the sampler, `sample(images, points)`, called once per
            level with that level's images and points.

    Returns:
        The blend of the levels' samples, shaped as `sample` returns them,
        with the dtype of `images`.
    """
    sizes = tuple(images.shape[1:-1])
    if not are_static(sizes):
        raise ValueError(
            "Antialiased sampling (`antialias=True`) needs the spatial sizes "
            "of the input when tracing, to build its pyramid. Received "
            f"images of spatial shape {sizes}"
        )
    max_level = pyramid_height(sizes)
    level = sampling_level(points, max_level)
    dtype = at_least_float32(images.dtype)
    outputs = None
    for k in range(max_level + 1):
        if k > 0:
            images = downsample(images)
            scale = 0.5**k
            level_points = [(point + 0.5) * scale - 0.5 for point in points]
        else:
            level_points = points
        weight = ops.cast(ops.clip(1.0 - ops.abs(level - k), 0.0, 1.0), dtype)
        weight = weight[..., None]
        samples = ops.cast(sample(images, level_points), dtype)
        # Levels of weight zero add exact zeros, whatever they hold: the
        # identity gives the image's own samples, and a NaN or infinite
        # pixel reaches no more outputs than it would without the pyramid.
        term = ops.where(weight > 0, samples * weight, 0.0)
        outputs = term if outputs is None else outputs + term
    return ops.cast(outputs, images.dtype)


def pyramid_height(sizes: tuple) -> int:
    """The number of halvings that bring every size down to one pixel.

    Args:
        sizes: the spatial sizes of the image, Python ints.

    Returns:
        `ceil(log2(max(sizes)))`: the index of the pyramid's top level.
    """
    return max(math.ceil(math.log2(size)) for size in sizes)


def sampling_level(points: list, max_level: int) -> Tensor:
    """The pyramid level at which each point is read.

    Args:
        points: the sampling points in input pixels, as for
            `antialiased_sample`.
        max_level: the top level.

    Returns:
        `clip(log2(footprint), 0, max_level)`, shaped like each point
        tensor, with the footprint of the module docstring. The squared
        footprint is clipped to at least 1 before the logarithm, so that
        gradients stay finite where the grid collapses to a point.
    """
    squared = None
    for axis in range(-len(points), 0):
        length = sum(ops.square(_derivative(point, axis)) for point in points)
        # `where` and `clip`, not `maximum`, which Keras' torch backend
        # computes in float32 for float64 (3.15).
        if squared is None:
            squared = length
        else:
            squared = ops.where(length > squared, length, squared)
    level = 0.5 * ops.log2(ops.clip(squared, 1.0, math.inf))
    return ops.clip(level, 0.0, float(max_level))


def _derivative(point, axis):
    """The derivative of `point` along `axis`, by central differences.

    One-sided at the ends of the axis; zero along an axis of one pixel, and
    wherever a neighbour used is NaN or infinite (whose outputs the sampler
    marks itself), so that no NaN reaches the level of a valid point.
    """
    size = ops.shape(point)[axis]
    index = ops.arange(size, dtype="int32")
    before = ops.clip(index - 1, 0, size - 1)
    after = ops.clip(index + 1, 0, size - 1)
    # The distance between the two neighbours, in output pixels.
    count = ops.cast(ops.maximum(after - before, 1), point.dtype)
    count = ops.reshape(count, (-1,) + (1,) * (-axis - 1))
    finite = ops.isfinite(point)
    point = ops.where(finite, point, ops.zeros_like(point))
    difference = ops.take(point, after, axis=axis) - ops.take(
        point, before, axis=axis
    )
    valid = ops.take(finite, after, axis=axis) & ops.take(
        finite, before, axis=axis
    )
    return ops.where(valid, difference / count, ops.zeros_like(difference))


def downsample(images: Tensor) -> Tensor:
    """The next level of the pyramid: the mean of each 2x2 (2x2x2) block.

    Args:
        images: channels-last images or volumes of known spatial sizes.

    Returns:
        Images of half the size, rounded up: an axis of odd size repeats
        its last pixel first.
    """
    sizes = images.shape[1:-1]
    for axis, size in enumerate(sizes, start=1):
        if size % 2:
            last = ops.take(images, [size - 1], axis=axis)
            images = ops.concatenate([images, last], axis=axis)
    shape = ops.shape(images)
    blocks = []
    for size in sizes:
        blocks.extend(((size + 1) // 2, 2))
    images = ops.reshape(images, (shape[0], *blocks, shape[-1]))
    # A sum and an exact scale: Keras' torch backend computes the float64
    # `mean` in float32 (3.15).
    axes = tuple(range(2, 2 * len(sizes) + 1, 2))
    return ops.sum(images, axis=axes) * (0.5 ** len(sizes))
