"""The affine grid generator (Jaderberg et al., 2015, section 3.2)."""

from keras import ops

from keras_stn.ops.grids.homogeneous import check_matrix
from keras_stn.ops.grids.homogeneous import map_points
from keras_stn.ops.grids.homogeneous import normalized_grid
from keras_stn.ops.grids.homogeneous import pixel_grid
from keras_stn.typing import Size
from keras_stn.typing import Tensor


def affine_grid(
    theta: Tensor, output_size: Size, align_corners: bool = False
) -> Tensor:
    """Generate the sampling grid of a batch of 2-D or 3-D affine transforms.

    Each output pixel's normalized coordinates `(x, y)` are mapped through
    `theta` to the point `theta @ (x, y, 1)` of the input that it samples
    (in 3-D, `theta @ (x, y, z, 1)`).

    Convention: `theta` maps *output* coordinates to *input* coordinates
    (the inverse of the warp that one sees), coordinates are normalized to
    `[-1, 1]` as described in `keras_stn.ops.coordinates`, and the last axis
    of the grid is `(x, y)` or `(x, y, z)`: exactly
    `torch.nn.functional.affine_grid`, for 4-D and 5-D sizes.

    Args:
        theta: float tensor of shape `(batch, 2, 3)`, or `(batch, 3, 4)` for
            volumes.
        output_size: `(height, width)` of the grid, or `(depth, height,
            width)` for a 3-D `theta`.
        align_corners: if `True`, -1 and 1 are the centres of the corner
            pixels; if `False`, their outer edges.

    Returns:
        The grid, a tensor of shape `(batch, height, width, 2)` (or
        `(batch, depth, height, width, 3)`) with the dtype of `theta`.

    Example:

    >>> import numpy as np
    >>> theta = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]], "float32")
    >>> grid = affine_grid(theta, output_size=(2, 2))
    >>> [float(v) for v in ops.convert_to_numpy(grid)[0, 0, 0]]
    [-0.5, -0.5]
    """
    theta = check_matrix(theta, "theta", projective=False)
    return ops.stack(
        normalized_grid(theta, output_size, align_corners), axis=-1
    )


def affine_pixel_grid(
    theta: Tensor,
    input_size: Size,
    output_size: Size,
    align_corners: bool = False,
) -> list[Tensor]:
    """Generate the affine sampling grid directly in input pixel coordinates.

    The result equals `unnormalize(affine_grid(theta, output_size))` for an
    input of `input_size`, but is computed by
    `keras_stn.ops.grids.homogeneous.pixel_grid`, so that the identity transform
    lands exactly on the pixel centres.

    Args:
        theta: float tensor of shape `(batch, 2, 3)` or `(batch, 3, 4)`, in
            normalized coordinates as for `affine_grid`.
        input_size: the spatial sizes of the images to be sampled.
        output_size: the spatial sizes of the grid.
        align_corners: the convention of `affine_grid`.

    Returns:
        The pixel coordinates `[x, y]` (or `[x, y, z]`) of the sampling
        points, each of shape `(batch, *output_size)`; pixel `i` has its
        centre at `i`.
    """
    theta = check_matrix(theta, "theta", projective=False)
    return pixel_grid(theta, input_size, output_size, align_corners)


def affine_map_points(theta: Tensor, points: Tensor) -> Tensor:
    """Map normalized output points to the input points that they sample.

    Exactly the arithmetic of `affine_grid`, so that the points of the
    output mesh map to the grid's points.

    Args:
        theta: float tensor of shape `(batch, 2, 3)` or `(batch, 3, 4)`,
            checked by the caller.
        points: float tensor of shape `(batch, num_points, 2)` (or `3`),
            normalized `(x, y[, z])` of the output, of `theta`'s dtype.

    Returns:
        The normalized input points, of the shape of `points`.
    """
    return ops.stack(map_points(theta, points), axis=-1)
