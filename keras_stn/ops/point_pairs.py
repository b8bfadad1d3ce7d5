"""Transforms from pairs of points: four for a homography, three for affine."""

from keras import ops

from keras_stn.ops.exact_products import matmul
from keras_stn.ops.validation import check_float_dtype
from keras_stn.ops.validation import check_same_batch
from keras_stn.ops.validation import check_shape
from keras_stn.ops.validation import to_tensor
from keras_stn.typing import Tensor


def get_perspective_transform(source: Tensor, target: Tensor) -> Tensor:
    """Solve for the homographies that map four points to four points.

    As `cv2.getPerspectiveTransform(source, target)`, for a batch and
    differentiably: the `(batch, 3, 3)` matrix `H`, last entry 1, such
    that `H @ (x, y, 1)` is proportional to `(u, v, 1)` for each pair of
    points `(x, y)` of `source` and `(u, v)` of `target`. It solves the
    8x8 linear system of the eight unknown entries with
    `keras.ops.linalg.solve`, after centring and scaling each set of points
    (Hartley's normalization), so that pixel coordinates solve as well as
    normalized ones in float32.

    For the `Projective` family, whose matrix maps *output* coordinates to
    *input* coordinates, pass the output's points as `source` and the input
    points that they should sample as `target`; `H[:, :8]` (flattened) are
    then the family's parameters. Points with three of the four on one line
    have no such homography: the system is singular, and the backend's
    `solve` then raises or returns non-finite values.

    Args:
        source: float tensor of shape `(batch, 4, 2)`, points `(x, y)`.
        target: float tensor of shape `(batch, 4, 2)`.

    Returns:
        The homographies, `(batch, 3, 3)`, of `source`'s dtype.

    Example:

    >>> import numpy as np
    >>> square = np.array([[[-1.0, -1.0], [1, -1], [1, 1], [-1, 1]]])
    >>> h = get_perspective_transform(square, 0.5 * square + 0.25)
    >>> (np.round(ops.convert_to_numpy(h)[0], 6) + 0.0).tolist()
    [[0.5, 0.0, 0.25], [0.0, 0.5, 0.25], [0.0, 0.0, 1.0]]
    """
    source, target = _check_point_pairs(source, target, 4)
    source_scaling, source = _normalize(source)
    target_scaling, target = _normalize(target)
    x, y = source[..., 0], source[..., 1]
    u, v = target[..., 0], target[..., 1]
    zeros, ones = ops.zeros_like(x), ops.ones_like(x)
    # Each pair gives u * (g x + h y + 1) = a x + b y + c, and likewise v.
    rows_u = ops.stack([x, y, ones, zeros, zeros, zeros, -x * u, -y * u], -1)
    rows_v = ops.stack([zeros, zeros, zeros, x, y, ones, -x * v, -y * v], -1)
    system = ops.concatenate([rows_u, rows_v], axis=1)
    values = ops.concatenate([u, v], axis=1)[..., None]
    solution = ops.linalg.solve(system, values)[..., 0]
    homography = ops.reshape(
        ops.concatenate([solution, ops.ones_like(solution[:, :1])], -1),
        (-1, 3, 3),
    )
    # H = T_target^-1 @ H' @ T_source, scaled to a last entry of 1.
    homography = matmul(
        _inverse_scaling(*target_scaling),
        matmul(homography, _scaling(*source_scaling)),
    )
    return homography / homography[:, 2:, 2:]


def get_affine_transform(source: Tensor, target: Tensor) -> Tensor:
    """Solve for the affine transforms that map three points to three points.

    As `cv2.getAffineTransform(source, target)`, for a batch and
    differentiably: the `(batch, 2, 3)` matrix `A` with `A @ (x, y, 1) =
    (u, v)` for each pair of points `(x, y)` of `source` and `(u, v)` of
    `target`, solved with `keras.ops.linalg.solve`. As for
    `get_perspective_transform`, a `theta` that makes the output show a
    region of the input maps the output's points (`source`) to the input's
    (`target`). Three points on one line make the system singular.

    Args:
        source: float tensor of shape `(batch, 3, 2)`, points `(x, y)`.
        target: float tensor of shape `(batch, 3, 2)`.

    Returns:
        The affine matrices, `(batch, 2, 3)`, of `source`'s dtype.

    Example:

    >>> import numpy as np
    >>> points = np.array([[[-1.0, -1.0], [1, -1], [-1, 1]]])
    >>> theta = get_affine_transform(points, 0.5 * points)
    >>> (np.round(ops.convert_to_numpy(theta)[0], 6) + 0.0).tolist()
    [[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]]
    """
    source, target = _check_point_pairs(source, target, 3)
    # (x, y, 1) rows, so that rows @ A^T = target.
    rows = ops.concatenate([source, ops.ones_like(source[..., :1])], -1)
    return ops.swapaxes(ops.linalg.solve(rows, target), 1, 2)


def _check_point_pairs(source, target, count):
    """Check two batches of `count` points; return them as tensors."""
    layout = f"(batch, {count}, 2)"
    checked = []
    for value, name in ((source, "source"), (target, "target")):
        tensor = to_tensor(value, name)
        check_float_dtype(tensor, name)
        check_shape(
            tensor, name, rank=3, last_dims=(count, 2), description=layout
        )
        checked.append(tensor)
    source, target = checked
    check_same_batch(source, "source", target, "target")
    return source, ops.cast(target, source.dtype)


def _normalize(points):
    """Centre points at 0 with a mean distance of sqrt(2) (Hartley).

    Returns:
        `((scale, centre), normalized)`: `normalized = scale * (points -
        centre)`, with `scale` `(batch, 1)` and `centre` `(batch, 1, 2)`.
    """
    centre = ops.mean(points, axis=1, keepdims=True)
    distance = ops.sqrt(ops.sum(ops.square(points - centre), axis=-1))
    mean = ops.mean(distance, axis=1, keepdims=True)
    # Points that all coincide have no homography: 0 / 0 then.
    scale = 2.0**0.5 / mean
    return (scale, centre), (points - centre) * scale[..., None]


def _scaling(scale, centre):
    """The homogeneous matrix of `scale * (p - centre)`, `(batch, 3, 3)`."""
    s = scale[:, 0]
    return _scale_and_shift(s, -s * centre[:, 0, 0], -s * centre[:, 0, 1])


def _inverse_scaling(scale, centre):
    """The homogeneous matrix of `p / scale + centre`, `(batch, 3, 3)`."""
    return _scale_and_shift(1.0 / scale[:, 0], centre[:, 0, 0], centre[:, 0, 1])


def _scale_and_shift(s, shift_x, shift_y):
    """The homogeneous matrix of `s * p + shift`, `(batch, 3, 3)`."""
    zeros = ops.zeros_like(s)
    rows = [[s, zeros, shift_x], [zeros, s, shift_y]]
    rows.append([zeros, zeros, ops.ones_like(s)])
    return ops.stack([ops.stack(row, -1) for row in rows], axis=1)
