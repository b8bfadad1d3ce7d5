"""The regions of the input that a transform's output samples."""

from typing import NamedTuple

from keras import ops

from keras_stn.ops.validation import standardize_size
from keras_stn.ops.validation import to_tensor
from keras_stn.typing import Size
from keras_stn.typing import Tensor


class SampledBoxes(NamedTuple):
    """The boxes that `sampled_boxes` returns.

    Attributes:
        normalized: `(..., 2 * rank)`: `(x_min, y_min, x_max, y_max)` (or
            with `z` for volumes) in normalized input coordinates.
        pixels: the same boxes in input pixel coordinates, pixel `i` with
            its centre at `i` (`x` the column, `y` the row).
    """

    normalized: Tensor
    pixels: Tensor


def sampled_boxes(
    transform,
    parameters: Tensor,
    input_size: Size,
    output_size: Size | None = None,
    align_corners: bool = False,
) -> SampledBoxes:
    """Return the axis-aligned box of the input that each output samples.

    For each example (and each transformer), the smallest box holding every
    point that the transform's grid samples: the points of the output
    pixels' centres, computed with the family's own grids (the same points
    as `SpatialTransformer` samples), so a thin-plate spline that bulges
    past its border is covered too. Bilinear sampling also reads the
    neighbouring pixels of each point, up to one pixel further out. For the
    outline of the sampled region rather than its box, see
    `sampled_outlines`.

    Args:
        transform: a `keras_stn.transforms.Transform`, such as
            `keras_stn.transforms.get("affine")` or a layer's `transform`.
        parameters: float tensor of shape `(batch, *parameter_shape)`, or
            `(batch, num_transformers, *parameter_shape)` as
            `SpatialTransformer.compute_theta` returns them.
        input_size: `(height, width)` (or `(depth, height, width)`) of the
            input.
        output_size: the sizes of the output likewise, or `None` for the
            input's.
        align_corners: the convention of `affine_grid`.

    Returns:
        A `SampledBoxes` of two float tensors of shape `(batch, 4)` (or
        `(batch, num_transformers, 4)`; 6 instead of 4 for volumes):
        `normalized` and `pixels`, each `(x_min, y_min, x_max, y_max)`.

    Example:

    >>> import numpy as np
    >>> from keras_stn.transforms import Attention
    >>> boxes = sampled_boxes(Attention(), np.array([[0.5, 0.0, 0.0]]), (8, 8))
    >>> ops.convert_to_numpy(boxes.normalized)[0].tolist()
    [-0.4375, -0.4375, 0.4375, 0.4375]
    >>> ops.convert_to_numpy(boxes.pixels)[0].tolist()
    [1.75, 1.75, 5.25, 5.25]
    """
    parameters, leading, input_size, output_size = _check(
        transform, parameters, input_size, output_size
    )
    rank = len(input_size)
    spatial_axes = tuple(range(1, rank + 1))
    grid = transform.normalized_grid(parameters, output_size, align_corners)
    normalized = ops.concatenate(
        [ops.min(grid, axis=spatial_axes), ops.max(grid, axis=spatial_axes)],
        axis=-1,
    )
    points = transform.pixel_grid(
        parameters, input_size, output_size, align_corners
    )
    pixels = ops.stack(
        [ops.min(p, axis=spatial_axes) for p in points]
        + [ops.max(p, axis=spatial_axes) for p in points],
        axis=-1,
    )
    return SampledBoxes(
        ops.reshape(normalized, (*leading, 2 * rank)),
        ops.reshape(pixels, (*leading, 2 * rank)),
    )


def sampled_outlines(
    transform,
    parameters: Tensor,
    input_size: Size,
    output_size: Size | None = None,
    align_corners: bool = False,
) -> Tensor:
    """Return the outline of the region of the input that each output samples.

    The sampling points of the output's border pixels, in input pixel
    coordinates, in order around the border: the top row left to right,
    the right column downwards, the bottom row right to left, the left
    column upwards (corners repeated). Images only. What
    `keras_stn.callbacks.draw_transformer` draws.

    Args:
        transform: a `keras_stn.transforms.Transform`.
        parameters: float tensor of shape `(batch, *parameter_shape)` or
            `(batch, num_transformers, *parameter_shape)`.
        input_size: `(height, width)` of the input.
        output_size: `(height, width)` of the output, or `None` for the
            input's.
        align_corners: the convention of `affine_grid`.

    Returns:
        A float tensor `(batch, points, 2)` (or `(batch, num_transformers,
        points, 2)`) of `(x, y)` pixel coordinates, `points = 2 * (height +
        width)` for an output of `(height, width)`.

    Example:

    >>> import numpy as np
    >>> from keras_stn.transforms import Affine
    >>> identity = np.eye(2, 3)[None]
    >>> outline = sampled_outlines(Affine(), identity, (4, 4), (2, 2))
    >>> ops.convert_to_numpy(outline)[0, :3].tolist()
    [[0.5, 0.5], [2.5, 0.5], [2.5, 0.5]]
    """
    parameters, leading, input_size, output_size = _check(
        transform, parameters, input_size, output_size, ranks=(2,)
    )
    points = transform.pixel_grid(
        parameters, input_size, output_size, align_corners
    )
    grid = ops.stack(points, axis=-1)
    border = ops.concatenate(
        [
            grid[:, 0, :],
            grid[:, :, -1],
            ops.flip(grid[:, -1, :], axis=1),
            ops.flip(grid[:, :, 0], axis=1),
        ],
        axis=1,
    )
    return ops.reshape(border, (*leading, border.shape[1], 2))


def _check(transform, parameters, input_size, output_size, ranks=(2, 3)):
    """Check the arguments; the parameters with one leading axis.

    Returns:
        `(parameters, leading, input_size, output_size)`: the parameters
        reshaped to `(batch * num_transformers, *parameter_shape)`, the
        leading axes `(batch,)` or `(batch, num_transformers)` to restore.
    """
    if not all(
        hasattr(transform, name)
        for name in ("parameter_shape", "check_parameters", "pixel_grid")
    ):
        raise ValueError(
            "Invalid value for argument `transform`. Expected a "
            "`keras_stn.transforms.Transform` (for a family's name, "
            "`keras_stn.transforms.get(name)`). "
            f"Received transform={transform!r}"
        )
    input_size = standardize_size(input_size, "input_size", rank=None)
    rank = len(input_size)
    if rank not in ranks:
        raise ValueError(
            "Invalid value for argument `input_size`. Expected "
            "(height, width): outlines are drawn on images only. "
            f"Received input_size={input_size!r}"
        )
    output_size = standardize_size(
        output_size, "output_size", allow_none=True, rank=rank
    )
    parameters = to_tensor(parameters, "parameters")
    shape = transform.parameter_shape(rank)
    leading = tuple(parameters.shape[: len(parameters.shape) - len(shape)])
    if len(leading) == 2:
        parameters = ops.reshape(parameters, (-1, *parameters.shape[2:]))
    parameters = transform.check_parameters(parameters, rank)
    # The batch may be unknown while tracing; the number of transformers is
    # a parameter axis, known.
    leading = (-1, *leading[1:])
    return parameters, leading, input_size, output_size or input_size
