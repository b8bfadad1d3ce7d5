"""The affine grid generator (Jaderberg et al., 2015, section 3.2)."""

import numpy as np
from keras import ops

from keras_stn.ops.coordinates import normalize_factors
from keras_stn.ops.coordinates import normalized_coordinates
from keras_stn.ops.coordinates import unnormalize_factors
from keras_stn.ops.validation import check_float_dtype
from keras_stn.ops.validation import check_shape
from keras_stn.ops.validation import standardize_size
from keras_stn.typing import Size
from keras_stn.typing import Tensor


def affine_grid(
    theta: Tensor, output_size: Size, align_corners: bool = False
) -> Tensor:
    """Generate the sampling grid of a batch of 2-D affine transforms.

    Each output pixel's normalized coordinates `(x, y)` are mapped through
    `theta` to the point `theta @ (x, y, 1)` of the input that it samples.

    Convention: `theta` maps *output* coordinates to *input* coordinates
    (the inverse of the warp that one sees), coordinates are normalized to
    `[-1, 1]` as described in `keras_stn.ops.coordinates`, and the last axis
    of the grid is `(x, y)`: exactly `torch.nn.functional.affine_grid`.

    Args:
        theta: float tensor of shape `(batch, 2, 3)`.
        output_size: `(height, width)` of the grid.
        align_corners: if `True`, -1 and 1 are the centres of the corner
            pixels; if `False`, their outer edges.

    Returns:
        The grid, a tensor of shape `(batch, height, width, 2)` with the
        dtype of `theta`.

    Example:

    >>> import numpy as np
    >>> theta = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]], "float32")
    >>> grid = affine_grid(theta, output_size=(2, 2))
    >>> [float(v) for v in ops.convert_to_numpy(grid)[0, 0, 0]]
    [-0.5, -0.5]
    """
    theta = _check_theta(theta)
    height, width = standardize_size(output_size, "output_size")
    xs = ops.convert_to_tensor(
        normalized_coordinates(width, align_corners), dtype=theta.dtype
    )
    ys = ops.convert_to_tensor(
        normalized_coordinates(height, align_corners), dtype=theta.dtype
    )
    return _apply_affine(theta, xs, ys)


def affine_pixel_grid(
    theta: Tensor,
    input_size: Size,
    output_size: Size,
    align_corners: bool = False,
) -> Tensor:
    """Generate the affine sampling grid directly in input pixel coordinates.

    The result equals `unnormalize(affine_grid(theta, output_size))` for an
    input of `input_size`, but `theta` is first folded into a pixel-space
    matrix with exact rational constants, and that matrix is applied to the
    integer pixel indices of the output. At the identity transform (and
    `input_size == output_size`) every product and sum is exact, so each
    sampling point lands exactly on a pixel centre on every backend and
    device. A normalized grid cannot promise this: `(2 * i + 1) / size - 1`
    is rounded, the round trip back to pixels can land one ulp below `i`,
    and `floor` then picks the neighbouring pixel, which changes the
    gradient with respect to `theta` at the kink of bilinear interpolation.

    Args:
        theta: float tensor of shape `(batch, 2, 3)`, in normalized
            coordinates as for `affine_grid`.
        input_size: `(height, width)` of the images to be sampled.
        output_size: `(height, width)` of the grid.
        align_corners: the convention of `affine_grid`.

    Returns:
        Pixel coordinates `(x, y)` of shape `(batch, height, width, 2)`,
        where pixel `i` has its centre at `i`.
    """
    theta = _check_theta(theta)
    in_height, in_width = standardize_size(input_size, "input_size")
    out_height, out_width = standardize_size(output_size, "output_size")
    # Row r of theta produces input axis r (x, then y); column c multiplies
    # the output axis c (x, then y) or the constant 1. With
    # pixel_in = scale_in * normalized_in + offset_in and
    # normalized_out = scale_out * index_out + offset_out (per axis):
    #   pixel_in[r] = sum_c theta[r, c] * scale_in[r] * scale_out[c] * index[c]
    #               + sum_c theta[r, c] * scale_in[r] * offset_out[c]
    #               + offset_in[r]
    # with scale_out = 0 and offset_out = 1 for the constant column.
    unnormalize = [
        unnormalize_factors(size, align_corners)
        for size in (in_width, in_height)
    ]
    normalize = [
        normalize_factors(size, align_corners)
        for size in (out_width, out_height)
    ] + [(0, 1)]
    linear = np.array(
        [
            [float(s_in * s_out) for s_out, _ in normalize[:2]]
            for s_in, _ in unnormalize
        ]
    )
    shift = np.array(
        [
            [float(s_in * o_out) for _, o_out in normalize]
            for s_in, _ in unnormalize
        ]
    )
    offset = np.array([float(o_in) for _, o_in in unnormalize])
    dtype = theta.dtype
    matrix_linear = theta[:, :, :2] * ops.convert_to_tensor(linear, dtype)
    matrix_offset = ops.sum(
        theta * ops.convert_to_tensor(shift, dtype), axis=-1
    ) + ops.convert_to_tensor(offset, dtype)
    matrix = ops.concatenate([matrix_linear, matrix_offset[..., None]], -1)
    xs = ops.arange(out_width, dtype=dtype)
    ys = ops.arange(out_height, dtype=dtype)
    return _apply_affine(matrix, xs, ys)


def _check_theta(theta):
    theta = ops.convert_to_tensor(theta)
    check_float_dtype(theta, "theta")
    check_shape(
        theta, "theta", rank=3, last_dims=(2, 3), description="(batch, 2, 3)"
    )
    return theta


def _apply_affine(matrix, xs, ys):
    """Map every `(x, y)` of the mesh of `xs` and `ys` through `matrix`.

    Products and sums are written out elementwise rather than as a matrix
    product, which GPUs may run in reduced precision (TF32).

    Args:
        matrix: tensor of shape `(batch, 2, 3)`.
        xs: tensor of shape `(width,)`.
        ys: tensor of shape `(height,)`.

    Returns:
        Tensor of shape `(batch, height, width, 2)`.
    """
    m = matrix[:, :, :, None, None]
    mapped = m[:, :, 0] * xs[None, :] + m[:, :, 1] * ys[:, None] + m[:, :, 2]
    return ops.transpose(mapped, (0, 2, 3, 1))
