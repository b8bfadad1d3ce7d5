"""The affine grid generator (Jaderberg et al., 2015, section 3.2)."""

from keras import ops

from keras_stn.ops.homogeneous import index_mesh
from keras_stn.ops.homogeneous import map_mesh
from keras_stn.ops.homogeneous import normalized_mesh
from keras_stn.ops.homogeneous import pixel_space_matrix
from keras_stn.ops.validation import check_float_dtype
from keras_stn.ops.validation import check_shape
from keras_stn.ops.validation import standardize_size
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
    theta = check_theta(theta)
    output_size = standardize_size(
        output_size, "output_size", rank=theta.shape[1]
    )
    mesh = normalized_mesh(output_size, align_corners, theta.dtype)
    return ops.stack(map_mesh(theta, mesh), axis=-1)


def affine_pixel_grid(
    theta: Tensor,
    input_size: Size,
    output_size: Size,
    align_corners: bool = False,
) -> list[Tensor]:
    """Generate the affine sampling grid directly in input pixel coordinates.

    The result equals `unnormalize(affine_grid(theta, output_size))` for an
    input of `input_size`, but is computed from
    `keras_stn.ops.homogeneous.pixel_space_matrix`, so that the identity
    transform lands exactly on the pixel centres.

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
    theta = check_theta(theta)
    input_size = standardize_size(input_size, "input_size", rank=theta.shape[1])
    output_size = standardize_size(
        output_size, "output_size", rank=theta.shape[1]
    )
    matrix = pixel_space_matrix(theta, input_size, output_size, align_corners)
    return map_mesh(matrix, index_mesh(output_size, theta.dtype))


def check_theta(theta: Tensor) -> Tensor:
    """Check an affine `theta` and return it as a tensor.

    Args:
        theta: float tensor of shape `(batch, 2, 3)` or `(batch, 3, 4)`.

    Returns:
        `theta` as a tensor; its number of spatial axes is `theta.shape[1]`.
    """
    theta = ops.convert_to_tensor(theta)
    check_float_dtype(theta, "theta")
    rank = 3 if tuple(theta.shape[-2:]) == (3, 4) else 2
    check_shape(
        theta,
        "theta",
        rank=3,
        last_dims=(rank, rank + 1),
        description="(batch, 2, 3) for images or (batch, 3, 4) for volumes",
    )
    return theta
