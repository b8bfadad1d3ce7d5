"""The thin-plate spline grid generator (Jaderberg et al., 2015, sec. 3.4).

A thin-plate spline (Bookstein, 1989) maps the plane smoothly so that `K`
control points land on `K` targets: `f(p) = A @ (x, y, 1) + sum_k w_k *
U(|p - c_k|)` with the kernel `U(r) = r^2 log r`, where the affine part `A`
and the weights `w` solve a linear system built from the control points
alone. With the control points fixed, `f` is linear in the targets: every
output pixel's sampling point is a fixed combination of them, so the grid
is differentiable with respect to the targets through plain products and
sums.

The system depends on the control points alone: `spline_system` checks
and solves it once, in NumPy, and holds the result as Python numbers. Each
call combines it with the kernel of the output pixels in float64 NumPy (a
float32 evaluation of the ill-conditioned system loses up to two digits),
which `torch.compile` traces into float64 graph operations.
"""

import functools
from typing import NamedTuple

import keras
import numpy as np
from keras import ops

from keras_stn.ops.coordinates import identity_pixel_coordinates
from keras_stn.ops.coordinates import normalized_coordinates
from keras_stn.ops.coordinates import unnormalize_factors
from keras_stn.ops.exact_products import matmul
from keras_stn.ops.validation import check_float_dtype
from keras_stn.ops.validation import check_shape
from keras_stn.ops.validation import standardize_size
from keras_stn.ops.validation import to_tensor
from keras_stn.typing import Size
from keras_stn.typing import Tensor


class SplineSystem(NamedTuple):
    """The control points of a thin-plate spline and its solved system.

    Made by `spline_system`; pass it as `control_points` to `tps_grid` and
    `tps_pixel_grid` to skip checking and solving on every call.

    Attributes:
        points: the control points, a tuple of `(x, y)` Python floats.
        inverse: the columns of the system's inverse that multiply the
            targets, a tuple of `num_points + 3` rows of `num_points`
            Python floats (the weights of the kernel terms, then of the
            affine part's `1, x, y`).
    """

    points: tuple
    inverse: tuple


def spline_system(control_points) -> SplineSystem:
    """Check a set of control points and solve its thin-plate spline.

    Args:
        control_points: array-like of shape `(num_points, 2)`, at least 3
            distinct points not all on one line, as normalized `(x, y)`; or
            a `SplineSystem`, returned as it is.

    Returns:
        A `SplineSystem`.

    Example:

    >>> system = spline_system([[-1, -1], [1, -1], [-1, 1], [1, 1]])
    >>> len(system.points), len(system.inverse)
    (4, 7)
    """
    if isinstance(control_points, SplineSystem):
        return control_points
    points = _check_control_points(control_points)
    return _solve(tuple(map(tuple, points.tolist())))


def tps_grid(
    targets: Tensor,
    output_size: Size,
    control_points,
    align_corners: bool = False,
) -> Tensor:
    """Generate the sampling grid of a batch of thin-plate splines.

    The spline maps each output pixel's normalized coordinates `(x, y)` to
    the input point it samples, and maps `control_points[k]` exactly to
    `targets[:, k]`. Targets equal to the control points give the identity;
    targets that are an affine image of them give that affine map.

    Args:
        targets: float tensor of shape `(batch, num_points, 2)`: where each
            control point is sent, as normalized `(x, y)` of the input.
        output_size: `(height, width)` of the grid.
        control_points: array-like of shape `(num_points, 2)`, at least 3
            points not all on one line, as normalized `(x, y)` of the
            output. Fixed: a NumPy array or a list, not a tensor; or a
            `SplineSystem` from `spline_system`.
        align_corners: if `True`, -1 and 1 are the centres of the corner
            pixels; if `False`, their outer edges.

    Returns:
        The grid, a tensor of shape `(batch, height, width, 2)` with the
        dtype of `targets`, laid out as for `affine_grid`.

    Example:

    >>> import numpy as np
    >>> points = np.array([[-1, -1], [1, -1], [-1, 1], [1, 1]], "float32")
    >>> shifted = (points + [0.5, 0.0])[None]  # a translation
    >>> grid = tps_grid(shifted, (1, 1), points, align_corners=True)
    >>> [round(float(v), 4) for v in ops.convert_to_numpy(grid)[0, 0, 0]]
    [0.5, 0.0]
    """
    system = spline_system(control_points)
    targets = _check_targets(targets, len(system.points))
    output_size = standardize_size(output_size, "output_size")
    mesh = _normalized_mesh(output_size, align_corners)
    displacement = _displacement(targets, system, mesh)
    return _as_tensor_like(mesh, targets) + displacement


def tps_pixel_grid(
    targets: Tensor,
    control_points,
    input_size: Size,
    output_size: Size,
    align_corners: bool = False,
) -> list[Tensor]:
    """Generate the thin-plate spline grid in input pixel coordinates.

    The same points as `tps_grid`, as the identity's exact pixel
    coordinates plus the spline's displacement, so that targets equal to
    the control points land exactly on pixel centres.

    Args:
        targets: float tensor of shape `(batch, num_points, 2)`.
        control_points: array-like of shape `(num_points, 2)`, or a
            `SplineSystem`.
        input_size: `(height, width)` of the images to be sampled.
        output_size: `(height, width)` of the grid.
        align_corners: the convention of `tps_grid`.

    Returns:
        The pixel coordinates `[x, y]` of the sampling points, each of shape
        `(batch, height, width)`.
    """
    system = spline_system(control_points)
    targets = _check_targets(targets, len(system.points))
    input_size = standardize_size(input_size, "input_size")
    output_size = standardize_size(output_size, "output_size")
    mesh = _normalized_mesh(output_size, align_corners)
    displacement = _displacement(targets, system, mesh)
    coordinates = []
    for axis, shape in ((0, (1, 1, -1)), (1, (1, -1, 1))):
        in_size, out_size = input_size[1 - axis], output_size[1 - axis]
        identity = identity_pixel_coordinates(in_size, out_size, align_corners)
        scale = float(unnormalize_factors(in_size, align_corners)[0])
        coordinates.append(
            ops.reshape(ops.convert_to_tensor(identity, targets.dtype), shape)
            + displacement[..., axis] * scale
        )
    return coordinates


def tps_map_points(targets: Tensor, control_points, points: Tensor) -> Tensor:
    """Map normalized output points to the input points that they sample.

    The spline of `tps_grid`, `p + f(p) - p`, at given points rather than
    at the output's mesh. The kernel terms are computed in the dtype of
    `points` (the grid's in float64 NumPy), so float32 points agree with
    the grid to about 1e-5.

    Args:
        targets: float tensor of shape `(batch, num_points, 2)`, checked.
        control_points: a `SplineSystem` (or control points).
        points: float tensor of shape `(batch, count, 2)`, normalized
            `(x, y)` of the output, of the dtype of `targets`.

    Returns:
        The normalized input points, of the shape of `points`.
    """
    system = spline_system(control_points)
    control = ops.convert_to_tensor(system.points, points.dtype)
    features = _features(points, control, ops)
    inverse = ops.convert_to_tensor(system.inverse, points.dtype)
    # (batch, count, K + 3) by (K + 3, K).
    basis = matmul(features, inverse)
    return points + _weighted_offsets(basis, targets, system)


def _displacement(targets, system, mesh):
    """`f(p) - p` at the points of `mesh`, `(batch, height, width, 2)`."""
    features = _features(mesh, np.array(system.points), np)
    # The weight of each target in each pixel's point, the pixels in a row.
    basis = features @ np.array(system.inverse)
    basis = _as_tensor_like(basis.reshape(1, -1, basis.shape[-1]), targets)
    displacement = _weighted_offsets(basis, targets, system)
    return ops.reshape(displacement, (-1, *mesh.shape[:-1], 2))


def _features(points, control, xp):
    """The spline's features of `points`: kernel terms, then `1, x, y`.

    Args:
        points: `(..., 2)`, a NumPy array or a tensor.
        control: the control points `(K, 2)`, of the same kind.
        xp: the namespace that computes: `numpy` or `keras.ops`.

    Returns:
        `(..., K + 3)`.
    """
    squared = xp.sum((points[..., None, :] - control) ** 2, axis=-1)
    ones = xp.ones_like(points[..., :1])
    return xp.concatenate([_kernel(squared, xp), ones, points], axis=-1)


def _weighted_offsets(basis, targets, system):
    """`sum_k basis[:, p, k] * (targets[:, k] - control_points[k])`.

    Args:
        basis: tensor `(batch or 1, points, K)`, the weight of each target
            in each point.
        targets: tensor `(batch, K, 2)`.
        system: the `SplineSystem`.

    Returns:
        The displacements, `(batch, points, 2)`.
    """
    offsets = targets - _as_tensor_like(np.array(system.points), targets)
    return matmul(basis, offsets)


def _as_tensor_like(array, like):
    """A NumPy array as a tensor of the dtype (and device) of `like`.

    On torch this is `torch.as_tensor`, which `torch.compile` traces, where
    Keras' `convert_to_tensor` of a traced NumPy array breaks the graph.
    """
    if keras.backend.backend() == "torch":
        import torch

        return torch.as_tensor(array, dtype=like.dtype, device=like.device)
    return ops.convert_to_tensor(array, like.dtype)


@functools.lru_cache(maxsize=32)
def _solve(points):
    """The `SplineSystem` of control points given as a tuple of pairs."""
    array = np.array(points)
    count = len(array)
    system = np.zeros((count + 3, count + 3))
    squared = np.sum((array[:, None, :] - array[None, :, :]) ** 2, axis=-1)
    system[:count, :count] = _kernel(squared, np)
    system[:count, count] = 1.0
    system[:count, count + 1 :] = array
    system[count:, :count] = system[:count, count:].T
    # Columns of the inverse that multiply the targets (the right-hand side
    # is the targets, then zeros for the affine part's side conditions).
    inverse = np.linalg.inv(system)[:, :count]
    return SplineSystem(points, tuple(map(tuple, inverse.tolist())))


def _normalized_mesh(output_size, align_corners):
    """The output pixels' normalized `(x, y)`, `(height, width, 2)` float64."""
    height, width = output_size
    xs, ys = np.meshgrid(
        normalized_coordinates(width, align_corners),
        normalized_coordinates(height, align_corners),
    )
    return np.stack([xs, ys], axis=-1)


def _kernel(squared, xp):
    """`U(r) = r^2 log r` from `r^2`, with `U(0) = 0`.

    Args:
        squared: the squared distances, a NumPy array or a tensor.
        xp: the namespace that computes: `numpy` or `keras.ops`.
    """
    safe = xp.where(squared > 0, squared, 1.0)
    return 0.5 * squared * xp.log(safe)


def _check_control_points(control_points):
    try:
        points = np.asarray(control_points, dtype=np.float64)
    except (TypeError, ValueError):
        points = None
    problem = None
    if points is None or points.ndim != 2 or points.shape[1] != 2:
        problem = "an array of shape (num_points, 2)"
    elif len(points) < 3 or not np.all(np.isfinite(points)):
        problem = "at least 3 finite points"
    elif np.linalg.matrix_rank(np.c_[points, np.ones(len(points))]) < 3:
        problem = "points that are not all on one line"
    elif len(np.unique(points, axis=0)) < len(points):
        problem = "distinct points"
    if problem:
        raise ValueError(
            "Invalid value for argument `control_points`. Expected "
            f"{problem}. Received control_points={control_points!r}"
        )
    return points


def _check_targets(targets, num_points):
    targets = to_tensor(targets, "targets")
    check_float_dtype(targets, "targets")
    check_shape(
        targets,
        "targets",
        rank=3,
        last_dims=(num_points, 2),
        description=f"(batch, {num_points}, 2), one target per control point",
    )
    return targets
