"""The projective (homography) grid generator."""

from keras import ops

from keras_stn.ops.grids.homogeneous import check_matrix
from keras_stn.ops.grids.homogeneous import map_points
from keras_stn.ops.grids.homogeneous import normalized_grid
from keras_stn.ops.grids.homogeneous import pixel_grid
from keras_stn.typing import Size
from keras_stn.typing import Tensor

# Denominators smaller than this in magnitude are replaced by it (with
# their sign): the points at infinity of a homography become points far
# outside the image, with finite values and gradients.
MIN_DENOMINATOR = 1e-6


def projective_grid(
    homography: Tensor, output_size: Size, align_corners: bool = False
) -> Tensor:
    """Generate the sampling grid of a batch of projective transforms.

    Each output pixel's normalized coordinates `(x, y)` are mapped through
    the 3x3 matrix `homography` to `(u, v, w) = homography @ (x, y, 1)`,
    and sample the input at `(u / w, v / w)`. Denominators `w` nearer to 0
    than `1e-6` are replaced by `1e-6` with their sign, so that the grid and
    its gradients stay finite. In 3-D, the matrix is 4x4 and acts on
    `(x, y, z, 1)`.

    Convention: as `affine_grid`, `homography` maps *output* coordinates to
    *input* coordinates, normalized to `[-1, 1]`; an affine `theta` is the
    homography whose last row is `(0, 0, 1)`.

    Args:
        homography: float tensor of shape `(batch, 3, 3)`, or
            `(batch, 4, 4)` for volumes.
        output_size: `(height, width)` of the grid, or `(depth, height,
            width)` for volumes.
        align_corners: if `True`, -1 and 1 are the centres of the corner
            pixels; if `False`, their outer edges.

    Returns:
        The grid, a tensor of shape `(batch, height, width, 2)` (or
        `(batch, depth, height, width, 3)`) with the dtype of `homography`.

    Example:

    >>> import numpy as np
    >>> homography = np.array([[[1.0, 0, 0], [0, 1, 0], [0.5, 0, 1]]])
    >>> grid = projective_grid(homography, output_size=(1, 2))
    >>> [round(float(v), 4) for v in ops.convert_to_numpy(grid)[0, 0, :, 0]]
    [-0.6667, 0.4]
    """
    homography = check_matrix(homography, "homography", projective=True)
    homogeneous = normalized_grid(homography, output_size, align_corners)
    return ops.stack(_project(homogeneous), axis=-1)


def projective_pixel_grid(
    homography: Tensor,
    input_size: Size,
    output_size: Size,
    align_corners: bool = False,
) -> list[Tensor]:
    """Generate the projective sampling grid in input pixel coordinates.

    Like `keras_stn.ops.grids.affine.affine_pixel_grid`: the same points as
    `projective_grid`, with the identity landing exactly on pixel centres.

    Args:
        homography: float tensor of shape `(batch, 3, 3)` or
            `(batch, 4, 4)`, in normalized coordinates.
        input_size: the spatial sizes of the images to be sampled.
        output_size: the spatial sizes of the grid.
        align_corners: the convention of `projective_grid`.

    Returns:
        The pixel coordinates `[x, y]` (or `[x, y, z]`) of the sampling
        points, each of shape `(batch, *output_size)`.
    """
    homography = check_matrix(homography, "homography", projective=True)
    return _project(
        pixel_grid(homography, input_size, output_size, align_corners)
    )


def projective_map_points(homography: Tensor, points: Tensor) -> Tensor:
    """Map normalized output points to the input points that they sample.

    Exactly the arithmetic of `projective_grid` (with its floor on the
    denominator), so that the points of the output mesh map to the grid's
    points.

    Args:
        homography: float tensor of shape `(batch, 3, 3)` or
            `(batch, 4, 4)`, checked by the caller.
        points: float tensor of shape `(batch, num_points, 2)` (or `3`),
            normalized `(x, y[, z])` of the output, of `homography`'s dtype.

    Returns:
        The normalized input points, of the shape of `points`.
    """
    return ops.stack(_project(map_points(homography, points)), axis=-1)


def _project(homogeneous):
    """Divide the coordinates by the last, `w`, kept away from zero."""
    *coordinates, w = homogeneous
    small = ops.abs(w) < MIN_DENOMINATOR
    floor = ops.where(w < 0, -MIN_DENOMINATOR, MIN_DENOMINATOR)
    w = ops.where(small, ops.cast(floor, w.dtype), w)
    return [coordinate / w for coordinate in coordinates]
