"""Sampling grids of homogeneous matrices: the affine and projective maps.

A matrix maps each output point `(x, y, 1)` (or `(x, y, z, 1)` in 3-D) to
the input point it samples. Its rows are the input axes in the order
`x, y[, z]`, plus, for a projective map, the homogeneous coordinate `w`
that the others are divided by; its columns are the output axes in the same
order, then the constant 1. An affine map has no `w` row: it is `(0, ..., 0,
1)`.

Products and sums are written out elementwise rather than as a matrix
product, which GPUs may run in reduced precision (TF32).
"""

from fractions import Fraction

from keras import ops

from keras_stn.ops.constants import constant
from keras_stn.ops.coordinates import normalize_factors
from keras_stn.ops.coordinates import normalized_coordinates_tensor
from keras_stn.ops.coordinates import pixel_indices
from keras_stn.ops.coordinates import unnormalize_factors
from keras_stn.ops.validation import check_float_dtype
from keras_stn.ops.validation import check_shape
from keras_stn.ops.validation import standardize_size
from keras_stn.ops.validation import to_tensor
from keras_stn.typing import Size
from keras_stn.typing import Tensor


def check_matrix(matrix: Tensor, name: str, projective: bool) -> Tensor:
    """Check a batch of affine or projective matrices; return a tensor.

    Args:
        matrix: float tensor of shape `(batch, n, n + 1)` (affine) or
            `(batch, n + 1, n + 1)` (projective), with `n` 2 or 3 spatial
            axes.
        name: the argument's name, for the error message.
        projective: which of the two shapes is expected.

    Returns:
        `matrix` as a tensor; its number of spatial axes is
        `matrix.shape[2] - 1`.
    """
    matrix = to_tensor(matrix, name)
    check_float_dtype(matrix, name)
    extra = int(projective)
    rank = 3 if tuple(matrix.shape[-2:]) == (3 + extra, 4) else 2
    images, volumes = (f"(batch, {r + extra}, {r + 1})" for r in (2, 3))
    check_shape(
        matrix,
        name,
        rank=3,
        last_dims=(rank + extra, rank + 1),
        description=f"{images} for images or {volumes} for volumes",
    )
    return matrix


def normalized_grid(
    matrix: Tensor, output_size: Size, align_corners: bool
) -> list[Tensor]:
    """Map the normalized coordinates of the output pixels through `matrix`.

    Args:
        matrix: tensor of shape `(batch, rows, n + 1)`, `n` spatial axes.
        output_size: the `n` sizes of the output, checked here; in a graph
            traced for inputs of any size, they may be sizes only known
            when the graph runs (see `keras_stn.ops.coordinates.size_as`).
        align_corners: the convention of `keras_stn.ops.coordinates`.

    Returns:
        `rows` tensors, one per row of `matrix`, each of shape
        `(batch, *output_size)`.
    """
    rank = matrix.shape[2] - 1
    output_size = standardize_size(
        output_size, "output_size", rank=rank, allow_traced=True
    )
    mesh = [
        normalized_coordinates_tensor(size, align_corners, matrix)
        for size in reversed(output_size)
    ]
    return _map_mesh(matrix, mesh)


def pixel_grid(
    matrix: Tensor, input_size: Size, output_size: Size, align_corners: bool
) -> list[Tensor]:
    """Map the output pixels through `matrix`, in input pixel coordinates.

    The same points as `normalized_grid`, unnormalized for an input of
    `input_size`, but computed through `pixel_space_matrix` so that the
    identity lands exactly on the pixel centres.

    Args:
        matrix: tensor of shape `(batch, rows, n + 1)` in normalized
            coordinates, `n` spatial axes.
        input_size: the `n` sizes of the images to be sampled, checked here.
        output_size: the `n` sizes of the output, checked here.
        align_corners: the convention of `keras_stn.ops.coordinates`.

    Returns:
        `rows` tensors, one per row of `matrix`, each of shape
        `(batch, *output_size)`; pixel `i` has its centre at `i`.
    """
    rank = matrix.shape[2] - 1
    input_size = standardize_size(input_size, "input_size", rank=rank)
    output_size = standardize_size(output_size, "output_size", rank=rank)
    matrix = pixel_space_matrix(matrix, input_size, output_size, align_corners)
    return _map_mesh(matrix, _index_mesh(output_size, matrix))


def _index_mesh(output_size: Size, like: Tensor) -> list[Tensor]:
    """Return the integer indices of the output pixels, per axis.

    Args:
        output_size: `(height, width)` or `(depth, height, width)`.
        like: a tensor whose dtype (and device, on torch) the result takes.

    Returns:
        One 1-D tensor per axis, in the order `x, y[, z]`.
    """
    return [pixel_indices(size, like) for size in reversed(output_size)]


def pixel_space_matrix(
    matrix: Tensor, input_size: Size, output_size: Size, align_corners: bool
) -> Tensor:
    """Turn a map of normalized coordinates into a map of pixel indices.

    The result maps the integer indices of the output pixels to the pixel
    coordinates of the input (pixel `i` has its centre at `i`). Each entry
    of `matrix` is multiplied by constants that are exact products of the
    rational normalization factors, rounded once. At the identity (and
    `input_size == output_size`) every product and sum is exact, so the
    identity samples exactly the pixel centres on every backend and device;
    a normalized grid cannot promise this, since `(2 * i + 1) / size - 1`
    is rounded and its round trip to pixels can land one ulp below `i`,
    where `floor` picks the neighbouring pixel.

    Args:
        matrix: tensor of shape `(batch, n, n + 1)` (affine) or
            `(batch, n + 1, n + 1)` (projective), `n` spatial axes, in
            normalized coordinates.
        input_size: the `n` sizes of the images to be sampled.
        output_size: the `n` sizes of the output.
        align_corners: the convention of `keras_stn.ops.coordinates`.

    Returns:
        The pixel-space matrix, of the shape of `matrix`.
    """
    # pixel_in = A @ matrix @ B @ index_out, with A unnormalizing the input
    # and B normalizing the output, in homogeneous coordinates.
    return conjugate(
        matrix,
        [unnormalize_factors(s, align_corners) for s in reversed(input_size)],
        [normalize_factors(s, align_corners) for s in reversed(output_size)],
    )


def normalized_space_matrix(
    matrix: Tensor, input_size: Size, output_size: Size, align_corners: bool
) -> Tensor:
    """The inverse of `pixel_space_matrix`: pixel maps to normalized ones.

    Args:
        matrix: tensor of shape `(batch, n, n + 1)` (affine) or
            `(batch, n + 1, n + 1)` (projective), `n` spatial axes, mapping
            output pixel indices to input pixel coordinates.
        input_size: the `n` sizes of the images to be sampled.
        output_size: the `n` sizes of the output.
        align_corners: the convention of `keras_stn.ops.coordinates`.

    Returns:
        The map of normalized coordinates, of the shape of `matrix`. Exact
        inverse of `pixel_space_matrix` for sizes of at least 2; an axis of
        a single pixel, whose normalized coordinate is 0 whatever the
        matrix, loses its column (or row).
    """
    return conjugate(
        matrix,
        [normalize_factors(s, align_corners) for s in reversed(input_size)],
        [unnormalize_factors(s, align_corners) for s in reversed(output_size)],
    )


def conjugate(matrix: Tensor, left, right) -> Tensor:
    """`A @ matrix @ B` for diagonal-plus-offset homogeneous `A` and `B`.

    Args:
        matrix: tensor of shape `(batch, n, n + 1)` (affine: its implicit
            last row is `(0, ..., 0, 1)`) or `(batch, n + 1, n + 1)`.
        left: `n` pairs `(scale, offset)` of `fractions.Fraction`s, `A`'s
            rows `x, y[, z]`.
        right: `n` pairs likewise, `B`'s.

    Returns:
        The product, of the shape of `matrix`. Its constants are exact
        products of the factors, each rounded once.
    """
    rank = len(left)
    rows = matrix.shape[1]
    factors, offsets = _conjugation_constants(left, right, rows)
    products = matrix[:, None, None, :, :] * constant(factors, matrix)
    result = ops.sum(products, axis=(3, 4))
    if rows == rank:
        # The affine map's implicit last row, (0, ..., 0, 1).
        result = result + constant(offsets, matrix)
    return result


def _conjugation_constants(left, right, rows):
    """The constants of `conjugate`, in Python floats, for its factors.

    Returns:
        `(factors, offsets)`: `factors[r][c][k][m] = a[r][k] * b[m][c]` for
        `k < rows`, and `offsets[r][c] = a[r][n] * b[n][c]`, each exact
        product rounded once; `a` and `b` are the homogeneous matrices of
        `left` and `right` (`n` axes).
    """
    rank = len(left)
    a = _homogeneous_scaling(left)
    b = _homogeneous_scaling(right)
    axes = range(rank + 1)
    factors = [
        [
            [[_product(a[r][k], b[m][c]) for m in axes] for k in range(rows)]
            for c in axes
        ]
        for r in range(rows)
    ]
    offsets = [
        [_product(a[r][rank], b[rank][c]) for c in axes] for r in range(rows)
    ]
    return factors, offsets


def _product(a: Fraction, b: Fraction) -> float:
    """`a * b` rounded once: a ratio of Python ints, which true division
    rounds correctly, without the `Fraction`'s reduction."""
    if not (a.numerator and b.numerator):
        return 0.0
    return (a.numerator * b.numerator) / (a.denominator * b.denominator)


def _homogeneous_scaling(factors) -> list[list[Fraction]]:
    """The homogeneous matrix of `coordinate = scale * value + offset`.

    Returns:
        Nested lists of exact `fractions.Fraction`s.
    """
    rank = len(factors)
    matrix = [[Fraction(0)] * (rank + 1) for _ in range(rank + 1)]
    for axis, (scale, offset) in enumerate(factors):
        matrix[axis][axis] = scale
        matrix[axis][rank] = offset
    matrix[rank][rank] = Fraction(1)
    return matrix


def map_points(matrix: Tensor, points: Tensor) -> list[Tensor]:
    """Map a batch of points through `matrix`, as the grids map their mesh.

    The same products and sums, in the same order, as `normalized_grid`,
    so that a point of the output mesh maps to the point the grid samples.

    Args:
        matrix: tensor of shape `(batch, rows, n + 1)`.
        points: tensor of shape `(batch, num_points, n)`, `(x, y[, z])`.

    Returns:
        `rows` tensors, one per row of `matrix`, each of shape
        `(batch, num_points)`.
    """
    rank = matrix.shape[2] - 1
    # (batch, 1, num_points): a row axis, for the rows of `matrix`.
    return _map_coordinates(
        matrix, [points[:, None, :, axis] for axis in range(rank)]
    )


def _map_mesh(matrix: Tensor, mesh: list[Tensor]) -> list[Tensor]:
    """Map every point of the mesh of `mesh`'s axes through `matrix`.

    Args:
        matrix: tensor of shape `(batch, rows, n + 1)`.
        mesh: `n` 1-D tensors, the coordinates along the axes `x, y[, z]`.

    Returns:
        `rows` tensors, one per row of `matrix`, each of shape
        `(batch, *output_size)` (the sizes of `mesh`'s axes, reversed).
    """
    rank = len(mesh)
    coordinates = []
    for column, axis in enumerate(mesh):
        # (1, 1, *output_size) with the axis's size, and ones elsewhere.
        index = [None] * (rank + 2)
        index[rank + 1 - column] = slice(None)
        coordinates.append(axis[tuple(index)])
    return _map_coordinates(matrix, coordinates)


def _map_coordinates(matrix: Tensor, coordinates: list[Tensor]) -> list[Tensor]:
    """`matrix @ (x, y[, z], 1)`, elementwise, every row at once.

    Args:
        matrix: tensor of shape `(batch, rows, n + 1)`.
        coordinates: `n` tensors, the coordinates `x, y[, z]`, of shape
            `(batch or 1, 1, *points)`, where they broadcast against each
            other (the second axis stands for the rows).

    Returns:
        `rows` tensors, one per row of `matrix`, of shape `(batch,
        *points)`.
    """
    rank = len(coordinates)
    ones = (None,) * (len(coordinates[0].shape) - 2)
    # (batch, rows, n + 1, 1, ...): each entry against the points' axes.
    entries = matrix[(slice(None),) * 3 + ones]
    value = entries[:, :, 0] * coordinates[0]
    for column in range(1, rank):
        value = value + entries[:, :, column] * coordinates[column]
    value = value + entries[:, :, rank]
    return [value[:, row] for row in range(matrix.shape[1])]
