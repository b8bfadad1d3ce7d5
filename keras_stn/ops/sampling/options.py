"""What every path of the sampler is told besides the images and the points."""

from typing import NamedTuple


class SamplingOptions(NamedTuple):
    """The options of one sampling, as every path of the dispatch takes them.

    Each path module of `keras_stn.ops.sampling` has the function
    `sample(images, points, options)`, with `images` a channels-last batch
    `(batch, *spatial, channels)` and `points` as `normalized` says.

    Attributes:
        mode: `"bilinear"`, `"nearest"` or `"bicubic"`.
        padding_mode: `"zeros"`, `"border"` or `"reflection"`.
        align_corners: the convention of the grid: it reads normalized
            points and sets the mirror lines of `"reflection"` padding.
        normalized: whether `points` is one normalized grid of shape
            `(batch, *output_shape, rank)`, as `grid_sample` takes it,
            rather than points in pixels (pixel `i` has its centre at `i`),
            one tensor of shape `(batch, *output_shape)` per axis, in the
            order `x, y[, z]`.

    Example:

    >>> options = SamplingOptions("bilinear", "zeros", False, normalized=True)
    >>> options.padding_mode
    'zeros'
    """

    mode: str
    padding_mode: str
    align_corners: bool
    normalized: bool
