"""Inverses and compositions of affine and projective matrices.

Determinants and adjugates are written out as products and sums of the
entries (cofactor expansion), which every backend differentiates, runs in
full precision on GPUs (no TF32 matrix products), and traces for any batch.
"""

from keras import ops

from keras_stn.ops.grids.homogeneous import check_matrix
from keras_stn.ops.validation import check_same_batch
from keras_stn.typing import Tensor


def invert_affine(theta: Tensor) -> Tensor:
    """Invert a batch of 2-D or 3-D affine transforms.

    `theta` maps normalized output coordinates to normalized input
    coordinates, as in `affine_grid`; its inverse maps input coordinates
    back to output ones, so warping with `theta` and then with its inverse
    (at the same sizes) gives back the original wherever no padding is
    involved. The inverse of `[A | t]` is `[A^-1 | -A^-1 t]`, computed in
    closed form (adjugate over determinant), differentiably.

    A singular `theta` (`det(A) == 0`, for example a scale of 0) has no
    inverse: its result holds non-finite entries (`inf` or `nan`), and no
    error is raised, since the values are only known when the graph runs.
    Check `keras.ops.isfinite` where that may happen.

    Args:
        theta: float tensor of shape `(batch, 2, 3)`, or `(batch, 3, 4)` for
            volumes.

    Returns:
        The inverses, of the shape and dtype of `theta`.

    Example:

    >>> import numpy as np
    >>> theta = np.array([[[2.0, 0.0, 0.5], [0.0, 4.0, -1.0]]])
    >>> inverse = ops.convert_to_numpy(invert_affine(theta))[0]
    >>> (inverse + 0.0).tolist()  # + 0.0 turns -0.0 into 0.0
    [[0.5, 0.0, -0.25], [0.0, 0.25, 0.25]]
    """
    theta = check_matrix(theta, "theta", projective=False)
    rank = theta.shape[1]
    linear = _entries(theta, rank, rank)
    adjugate = _adjugate(linear)
    determinant = sum(linear[0][k] * adjugate[k][0] for k in range(rank))
    inverse = [[entry / determinant for entry in row] for row in adjugate]
    translation = [theta[:, row, rank] for row in range(rank)]
    rows = [
        [*inverse[row], -_dot(inverse[row], translation)] for row in range(rank)
    ]
    return _stack(rows)


def compose_affine(first: Tensor, second: Tensor) -> Tensor:
    """Compose two batches of affine transforms: warp by `first`, then `second`.

    Returns the `theta` of warping with `first` and then warping the result
    with `second`: `warp_affine(warp_affine(x, first), second)` equals
    `warp_affine(x, compose_affine(first, second))` up to interpolation,
    wherever no padding is involved (the two warps interpolate twice; on an
    image that is linear in its coordinates, they agree exactly). Since
    `theta` maps output coordinates to input coordinates, an output point
    `p` of the second warp samples its input at `second(p)`, which samples
    `x` at `first(second(p))`: the result is the matrix product
    `first @ second` of the homogeneous matrices.

    Args:
        first: float tensor of shape `(batch, 2, 3)` (or `(batch, 3, 4)`),
            the transform applied first.
        second: float tensor of the same shape, applied to the result.

    Returns:
        The composed `theta`, of the shape and dtype of `first`.

    Example:

    >>> import numpy as np
    >>> zoom = np.array([[[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]]])
    >>> shift = np.array([[[1.0, 0.0, 0.5], [0.0, 1.0, 0.0]]])
    >>> ops.convert_to_numpy(compose_affine(zoom, shift))[0].tolist()
    [[0.5, 0.0, 0.25], [0.0, 0.5, 0.0]]
    """
    first = check_matrix(first, "first", projective=False)
    second = check_matrix(second, "second", projective=False)
    if tuple(first.shape[1:]) != tuple(second.shape[1:]):
        raise ValueError(
            "Arguments `first` and `second` must both be 2-D transforms "
            "(batch, 2, 3) or both 3-D (batch, 3, 4). Received "
            f"first.shape={tuple(first.shape)} and "
            f"second.shape={tuple(second.shape)}"
        )
    check_same_batch(first, "first", second, "second")
    second = ops.cast(second, first.dtype)
    rank = first.shape[1]
    a = _entries(first, rank, rank + 1)
    b = _entries(second, rank, rank + 1)
    rows = []
    for row in range(rank):
        entries = []
        for column in range(rank + 1):
            value = _dot(a[row][:rank], [b[k][column] for k in range(rank)])
            if column == rank:
                value = value + a[row][rank]
            entries.append(value)
        rows.append(entries)
    return _stack(rows)


def invert_homography(homography: Tensor) -> Tensor:
    """Invert a batch of homographies, scaled so the last entry is 1.

    The inverse of `H` is its adjugate over its determinant; scaled to a
    last entry of 1, the determinant cancels, so the result is the
    adjugate over its last entry (the determinant of `H` without its last
    row and column). Where that is 0 the inverse maps some finite point to
    infinity with a last entry of 0, which the scaling cannot keep at 1:
    the result holds non-finite entries there, as for a singular `H`.

    Args:
        homography: float tensor of shape `(batch, 3, 3)` or
            `(batch, 4, 4)`, checked by the caller.

    Returns:
        The inverses, of the shape and dtype of `homography`, with a last
        entry of 1.
    """
    size = homography.shape[1]
    adjugate = _adjugate(_entries(homography, size, size))
    last = adjugate[-1][-1]
    return _stack([[entry / last for entry in row] for row in adjugate])


def _entries(matrix, rows, columns):
    """The entries `matrix[:, i, j]` as nested lists of `(batch,)` tensors."""
    return [[matrix[:, i, j] for j in range(columns)] for i in range(rows)]


def _stack(rows):
    """Nested lists of `(batch,)` tensors as a `(batch, rows, columns)` one."""
    return ops.stack([ops.stack(row, axis=-1) for row in rows], axis=1)


def _dot(a, b):
    """`sum(a[k] * b[k])`, elementwise tensors."""
    value = a[0] * b[0]
    for x, y in zip(a[1:], b[1:], strict=True):
        value = value + x * y
    return value


def _minor(entries, row, column):
    """`entries` without `row` and `column`."""
    return [
        [value for j, value in enumerate(line) if j != column]
        for i, line in enumerate(entries)
        if i != row
    ]


def _determinant(entries):
    """The determinant of a square matrix of elementwise tensors."""
    if len(entries) == 1:
        return entries[0][0]
    terms = [
        entries[0][j] * _determinant(_minor(entries, 0, j))
        for j in range(len(entries))
    ]
    value = terms[0]
    for j, term in enumerate(terms[1:], start=1):
        value = value - term if j % 2 else value + term
    return value


def _adjugate(entries):
    """The adjugate (transposed cofactors) of a square matrix."""
    size = len(entries)
    if size == 1:
        return [[ops.ones_like(entries[0][0])]]
    cofactors = [
        [_determinant(_minor(entries, i, j)) for j in range(size)]
        for i in range(size)
    ]
    return [
        [
            cofactors[j][i] if (i + j) % 2 == 0 else -cofactors[j][i]
            for j in range(size)
        ]
        for i in range(size)
    ]
