"""What the sampler does with NaN and infinite sampling points.

PyTorch's `grid_sample` has no rule for them: a NaN point gives NaN with
bilinear and bicubic sampling and zero padding, 0 with nearest sampling,
an arbitrary pixel with border or reflection padding, and its backward pass
reads out of bounds (a crash) for NaN with border or reflection padding and
for infinities with reflection padding. keras-stn applies one rule, on
every backend and implementation:

- a point with a NaN pixel coordinate samples NaN, in every channel, and
  passes no gradient (zero to the grid, nothing to the images);
- with `"zeros"` and `"border"` padding, an infinite coordinate is a point
  infinitely far outside: it samples 0, or the edge pixel, as any far
  point does, with a zero gradient along that axis;
- with `"reflection"` padding, an infinite coordinate has no mirror image
  and samples NaN, as a NaN point does.

Points are moved (NaN ones to 0, and with `"zeros"` or `"border"` padding
every point to at most `MARGIN` pixels outside the image, where no tap
reaches the image) before any sampler sees them, and the outputs of the
invalid points are set to NaN afterwards.
"""

import numpy as np
from keras import ops

from keras_stn.ops.coordinates import size_as
from keras_stn.typing import Tensor

# How far outside the image, in pixels, points are clamped with "zeros" and
# "border" padding. Bicubic taps reach 2 pixels from the point, so from 5
# pixels out no tap is inside: the values (0, or the edge pixel) and the
# zero gradients are those of the point itself.
MARGIN = 5.0
# The same in normalized coordinates: 11 is at least `MARGIN` pixels outside
# an image of any size (except along an axis of one pixel with
# `align_corners=True`, where every finite coordinate is that pixel).
NORMALIZED_MARGIN = 11.0


def finite_points(
    points: list[Tensor], sizes: list[int], padding_mode: str
) -> tuple[list[Tensor], Tensor]:
    """Make pixel coordinates safe to sample, and flag the invalid points.

    Args:
        points: pixel coordinates, one tensor per axis `x, y[, z]`, each of
            shape `(batch, *output_shape)`.
        sizes: the images' sizes along the same axes, ints or scalar
            tensors (see `keras_stn.ops.coordinates.size_as`).
        padding_mode: `"zeros"`, `"border"` or `"reflection"`.

    Returns:
        `(points, invalid)`: finite coordinates that sample what the rule
        of this module says, and a boolean tensor of shape
        `(batch, *output_shape)` that is true where the output must be NaN.
    """
    invalid = invalid_points(points, padding_mode)
    safe = []
    for point, size in zip(points, sizes, strict=True):
        point = ops.where(invalid, ops.zeros_like(point), point)
        if padding_mode != "reflection":
            size = size_as(size, point.dtype)
            point = ops.clip(point, -MARGIN, size - 1 + MARGIN)
        safe.append(point)
    return safe, invalid


def invalid_points(points: list[Tensor], padding_mode: str) -> Tensor:
    """Flag the points that sample NaN: `invalid` of `finite_points`."""
    invalid = None
    for point in points:
        bad = ops.isnan(point)
        if padding_mode == "reflection":
            bad = ops.logical_or(bad, ops.isinf(point))
        invalid = bad if invalid is None else ops.logical_or(invalid, bad)
    return invalid


def mark_invalid(outputs: Tensor, invalid: Tensor) -> Tensor:
    """Set the outputs of invalid points to NaN.

    Args:
        outputs: channels-last samples, `(batch, *output_shape, channels)`.
        invalid: the flags of `finite_points`, `(batch, *output_shape)`.

    Returns:
        `outputs` with NaN in every channel of the invalid points; their
        gradient is zero.
    """
    return ops.where(ops.expand_dims(invalid, -1), np.nan, outputs)
