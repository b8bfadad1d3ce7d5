"""Between `theta` and the pixel matrices that OpenCV and others take."""

from keras import ops

from keras_stn.ops.grids.homogeneous import check_matrix
from keras_stn.ops.grids.homogeneous import normalized_space_matrix
from keras_stn.ops.grids.homogeneous import pixel_space_matrix
from keras_stn.ops.validation import check_float_dtype
from keras_stn.ops.validation import standardize_size
from keras_stn.ops.validation import to_tensor
from keras_stn.typing import Size
from keras_stn.typing import Tensor


def theta_to_pixel_matrix(
    theta: Tensor,
    input_size: Size,
    output_size: Size,
    align_corners: bool = False,
) -> Tensor:
    """Turn normalized transforms into matrices of pixel coordinates.

    The result maps an output pixel `(column, row, 1)` (pixel centres at
    integers) to the homogeneous input pixel coordinates that it samples,
    for an input of `input_size` and an output of `output_size`: what
    `cv2.warpAffine(image, matrix[:2], (width, height),
    flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)` and `cv2.warpPerspective(
    image, matrix, (width, height), flags=... | cv2.WARP_INVERSE_MAP)` take,
    and `skimage.transform.warp`'s `inverse_map`. The matrix is formed with
    the exact constants of `warp_affine`'s pixel-space grid, so its points
    are the points that `warp_affine` (and the `SpatialTransformer` layer)
    sample.

    Args:
        theta: float tensor mapping normalized output coordinates to
            normalized input coordinates: affine `(batch, 2, 3)` (as
            `affine_grid`) or projective `(batch, 3, 3)` (as
            `projective_grid`; the `Projective` family's parameters become
            one through `Projective().to_homography`); for volumes
            `(batch, 3, 4)` or `(batch, 4, 4)`, acting on `(column, row,
            slice)`.
        input_size: `(height, width)` (or `(depth, height, width)`) of the
            input.
        output_size: the sizes of the output likewise.
        align_corners: the convention of `affine_grid`.

    Returns:
        A float tensor of shape `(batch, 3, 3)` (`(batch, 4, 4)` for
        volumes) of `theta`'s dtype. For affine `theta` its last row is
        `(0, 0, 1)`; a projective one is not rescaled (OpenCV takes it up to
        scale). An output axis of one pixel gives a zero column: that pixel
        sits at normalized 0 whatever its index.

    Example:

    >>> import numpy as np
    >>> identity = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    >>> matrix = theta_to_pixel_matrix(identity, (4, 4), (2, 2))
    >>> ops.convert_to_numpy(matrix)[0].tolist()
    [[2.0, 0.0, 0.5], [0.0, 2.0, 0.5], [0.0, 0.0, 1.0]]
    """
    theta = to_tensor(theta, "theta")
    projective = len(theta.shape) == 3 and theta.shape[1] == theta.shape[2]
    theta = check_matrix(theta, "theta", projective=projective)
    rank = theta.shape[2] - 1
    input_size = standardize_size(input_size, "input_size", rank=rank)
    output_size = standardize_size(output_size, "output_size", rank=rank)
    matrix = pixel_space_matrix(theta, input_size, output_size, align_corners)
    if projective:
        return matrix
    return _with_last_row(matrix)


def pixel_matrix_to_theta(
    matrix: Tensor,
    input_size: Size,
    output_size: Size,
    align_corners: bool = False,
    projective: bool = False,
) -> Tensor:
    """Turn matrices of pixel coordinates into normalized transforms.

    The inverse of `theta_to_pixel_matrix`: `matrix` maps an output pixel
    `(column, row, 1)` (pixel centres at integers) to the input pixel that
    it samples, as the matrices that `cv2.warpAffine` and
    `cv2.warpPerspective` take with `cv2.WARP_INVERSE_MAP`. (OpenCV's
    `cv2.getAffineTransform(src, dst)` and `cv2.getPerspectiveTransform(src,
    dst)` map `src` to `dst`: the `theta` that makes an output show `src`'s
    quadrilateral of the input needs the map from the output's points to
    the input's, `getPerspectiveTransform(output_points, input_points)`.)
    For sizes of at least 2, `pixel_matrix_to_theta(theta_to_pixel_matrix(
    theta, ...), ...)` gives back `theta` up to float rounding.

    Args:
        matrix: float tensor of shape `(batch, 3, 3)`, or `(batch, 2, 3)`
            (OpenCV's affine matrices); for volumes `(batch, 4, 4)` or
            `(batch, 3, 4)`, acting on `(column, row, slice)`.
        input_size: `(height, width)` (or `(depth, height, width)`) of the
            input.
        output_size: the sizes of the output likewise.
        align_corners: the convention of `affine_grid`.
        projective: `False` returns an affine `theta` and ignores the last
            row of a square `matrix`, which should then be `(0, 0, 1)`;
            `True` returns the homography, scaled so that its last entry is
            1, as the `Projective` family's matrix (its first 8 entries are
            the family's parameters). A homography whose last entry comes
            out as 0 cannot be scaled so: its result is not finite.

    Returns:
        `theta`, a float tensor of shape `(batch, 2, 3)` (`(batch, 3, 4)`
        for volumes), or with `projective=True` `(batch, 3, 3)` (`(batch,
        4, 4)`), of `matrix`'s dtype.

    Example:

    >>> import numpy as np
    >>> matrix = np.array([[[2.0, 0.0, 0.5], [0.0, 2.0, 0.5], [0, 0, 1]]])
    >>> theta = pixel_matrix_to_theta(matrix, (4, 4), (2, 2))
    >>> ops.convert_to_numpy(theta)[0].tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    """
    matrix = to_tensor(matrix, "matrix")
    check_float_dtype(matrix, "matrix")
    shape = tuple(matrix.shape)
    rank = 3 if shape[-1:] == (4,) else 2
    layouts = [
        " or ".join(f"(batch, {r}, {n + 1})" for r in _rows(n, projective))
        for n in (2, 3)
    ]
    if len(shape) != 3 or shape[1:] not in [
        (r, rank + 1) for r in _rows(rank, projective)
    ]:
        raise ValueError(
            "Invalid shape for argument `matrix`. Expected a tensor of shape "
            f"{layouts[0]} for images or {layouts[1]} for volumes (with "
            f"projective={projective}). Received matrix.shape={shape}"
        )
    input_size = standardize_size(input_size, "input_size", rank=rank)
    output_size = standardize_size(output_size, "output_size", rank=rank)
    if not projective:
        matrix = matrix[:, :rank]
    theta = normalized_space_matrix(
        matrix, input_size, output_size, align_corners
    )
    if projective:
        theta = theta / theta[:, rank : rank + 1, rank : rank + 1]
    return theta


def _rows(rank: int, projective: bool) -> tuple[int, ...]:
    """The numbers of rows that a pixel matrix of `rank` axes may have."""
    return (rank + 1,) if projective else (rank, rank + 1)


def _with_last_row(matrix: Tensor) -> Tensor:
    """An affine `(batch, n, n + 1)` matrix with its row `(0, ..., 0, 1)`."""
    rank = matrix.shape[1]
    row = ops.zeros_like(matrix[:, :1, :])
    last = ops.convert_to_tensor([0.0] * rank + [1.0], matrix.dtype)
    return ops.concatenate([matrix, row + last], axis=1)
