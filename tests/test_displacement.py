"""The algebra of displacement fields against NumPy, SciPy and PyTorch."""

import numpy as np
import pytest
import scipy.linalg
import scipy.ndimage
import torch
from keras import ops

from keras_stn.ops import affine_to_displacement
from keras_stn.ops import compose_displacements
from keras_stn.ops import integrate_velocity
from keras_stn.ops import jacobian_determinant
from keras_stn.ops import resize_displacement
from keras_stn.ops import warp
from keras_stn.ops import warp_affine

from helpers import assert_gradients_match_finite_differences
from helpers import unnormalize

CL = "channels_last"


def mesh_xy(size):
    """Pixel indices `(x, y[, z])` of shape `(*size, rank)`."""
    axes = np.meshgrid(*map(np.arange, size), indexing="ij")
    return np.stack(axes[::-1], axis=-1).astype("float64")


def linear_field(matrix, size):
    """`v(p) = A (p - centre)` in `"xy"` order, batch of one."""
    centred = mesh_xy(size) - (np.array(size[::-1]) - 1) / 2
    return (centred @ np.asarray(matrix).T)[None]


# Negative diagonals at least as large as the rest of their rows: for
# N >= 1, `I + A / N` shrinks the max norm, so every point that scaling and
# squaring reads stays among the pixel centres, where bilinear interpolation
# of a linear field is exact.
VELOCITIES = {
    2: np.array([[-0.6, 0.35], [-0.25, -0.4]]),
    3: np.array([[-0.5, 0.2, -0.1], [0.1, -0.4, 0.2], [-0.2, 0.1, -0.45]]),
}
SIZES = {2: (9, 11), 3: (5, 6, 7)}


@pytest.mark.parametrize("rank", (2, 3))
def test_linear_velocity_integrates_to_its_exponential(rank):
    """Scaling and squaring of `v = A p` computes `(I + A / N) ** N - I`
    (N = 2 ** steps) exactly here; that differs from `expm(A) - I` by at
    most `|A| ** 2 / (2 N) * exp(|A|)` (in the operator norm), times the
    distance from the centre, a bound that halves with each step."""
    matrix, size = VELOCITIES[rank], SIZES[rank]
    velocity = linear_field(matrix, size)
    centred = mesh_xy(size) - (np.array(size[::-1]) - 1) / 2
    radius = np.linalg.norm(centred, axis=-1).max()
    norm = np.linalg.norm(matrix, 2)
    errors = []
    for steps in (2, 4, 7):
        n = 2**steps
        out = ops.convert_to_numpy(
            integrate_velocity(velocity.astype("float32"), steps, CL)
        )[0]
        power = np.linalg.matrix_power(np.eye(rank) + matrix / n, n)
        np.testing.assert_allclose(
            out, centred @ (power - np.eye(rank)).T, atol=2e-5 * radius
        )
        exact = centred @ (scipy.linalg.expm(matrix) - np.eye(rank)).T
        error = np.abs(out - exact).max()
        assert error <= norm**2 / (2 * n) * np.exp(norm) * radius + 1e-5
        errors.append(error)
    assert errors[0] > errors[1] > errors[2]


def test_constant_velocity_integrates_to_a_translation_exactly():
    velocity = np.tile(np.float32([0.75, -1.25]), (1, *SIZES[2], 1))
    out = integrate_velocity(velocity, 7, CL)
    np.testing.assert_array_equal(ops.convert_to_numpy(out), velocity)


def test_integration_is_the_same_in_ij_order_and_channels_first():
    velocity = linear_field(VELOCITIES[2], SIZES[2]).astype("float32")
    expected = ops.convert_to_numpy(integrate_velocity(velocity, 3, CL))
    ij_first = np.moveaxis(velocity[..., ::-1], -1, 1)
    out = integrate_velocity(ij_first, 3, "channels_first", indexing="ij")
    np.testing.assert_allclose(
        np.moveaxis(ops.convert_to_numpy(out), 1, -1)[..., ::-1],
        expected,
        atol=1e-6,
    )
    np.testing.assert_array_equal(
        ops.convert_to_numpy(integrate_velocity(velocity, 0, CL)), velocity
    )


def test_integration_gradients_match_finite_differences():
    rng = np.random.default_rng(0)
    velocity = rng.uniform(-1.2, 1.2, (1, *SIZES[2], 2))
    weights = rng.normal(size=velocity.shape)

    def loss(velocity):
        out = integrate_velocity(velocity, 3, CL)
        return ops.sum(out * ops.convert_to_tensor(weights))

    assert_gradients_match_finite_differences(
        loss, [velocity], rng, step=1e-6, rtol=1e-5
    )


def smooth_field(rng, size, amplitude):
    """A random smooth `"xy"` field (batch of one)."""
    coarse = rng.normal(size=(*(max(2, n // 3) for n in size), len(size)))
    zoom = [n / c for n, c in zip(size, coarse.shape[:-1], strict=True)]
    field = scipy.ndimage.zoom(
        coarse, [*zoom, 1], order=3, mode="nearest", grid_mode=True
    )
    return (amplitude * field / np.abs(field).max())[None]


@pytest.mark.parametrize("rank", (2, 3))
def test_compose_equals_warping_twice(rank):
    """On an image linear in the coordinates, bilinear sampling is exact,
    so warping twice and warping once with the composition agree exactly
    wherever every point read stays inside the image."""
    size = SIZES[rank]
    rng = np.random.default_rng(rank)
    first = smooth_field(rng, size, 0.9).astype("float32")
    second = smooth_field(rng, size, 0.9).astype("float32")
    slope = rng.normal(size=rank)
    images = (mesh_xy(size) @ slope + 0.5)[None, ..., None].astype("float32")
    twice = warp(warp(images, first, data_format=CL), second, data_format=CL)
    composed = compose_displacements(first, second, CL)
    once = warp(images, composed, data_format=CL)
    inner = (slice(None),) + (slice(2, -2),) * rank
    np.testing.assert_allclose(
        ops.convert_to_numpy(once)[inner],
        ops.convert_to_numpy(twice)[inner],
        atol=1e-4,
    )
    # The composition's vectors themselves, by NumPy: second + first there.
    points = mesh_xy(size) + second[0]
    first_there = np.stack(
        [
            scipy.ndimage.map_coordinates(
                first[0, ..., k].astype("float64"),
                np.moveaxis(points[..., ::-1], -1, 0),
                order=1,
                mode="nearest",
            )
            for k in range(rank)
        ],
        axis=-1,
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(composed)[0], second[0] + first_there, atol=1e-5
    )


@pytest.mark.parametrize(
    "old,new", [((9, 11), (18, 7)), ((5, 6, 7), (7, 3, 7))]
)
def test_resize_matches_scipy_zoom(old, new):
    rng = np.random.default_rng(1)
    field = rng.normal(size=(2, *old, len(old))).astype("float32")
    out = resize_displacement(field, new, CL, indexing="ij")
    factors = np.array(new) / np.array(old)
    expected = np.stack(
        [
            np.stack(
                [
                    factors[k]
                    * scipy.ndimage.zoom(
                        field[b, ..., k].astype("float64"),
                        factors,
                        order=1,
                        mode="nearest",
                        grid_mode=True,
                    )
                    for k in range(len(old))
                ],
                axis=-1,
            )
            for b in range(2)
        ]
    )
    np.testing.assert_allclose(ops.convert_to_numpy(out), expected, atol=1e-5)


@pytest.mark.parametrize("align_corners", (False, True))
@pytest.mark.parametrize("size", (SIZES[2], SIZES[3]))
def test_affine_to_displacement_matches_torch_affine_grid(size, align_corners):
    rank = len(size)
    rng = np.random.default_rng(2)
    theta = np.eye(rank, rank + 1) + rng.normal(0, 0.2, (2, rank, rank + 1))
    theta = theta.astype("float32")
    grid = torch.nn.functional.affine_grid(
        torch.tensor(theta, dtype=torch.float64),
        (2, 1, *size),
        align_corners=align_corners,
    ).numpy()
    expected = unnormalize(grid, size, align_corners) - mesh_xy(size)
    field = affine_to_displacement(theta, size, align_corners, CL)
    np.testing.assert_allclose(ops.convert_to_numpy(field), expected, atol=2e-5)
    # Warping with the field is warp_affine.
    images = rng.normal(size=(2, *size, 3)).astype("float32")
    np.testing.assert_allclose(
        ops.convert_to_numpy(warp(images, field, data_format=CL)),
        ops.convert_to_numpy(
            warp_affine(
                images, theta, align_corners=align_corners, data_format=CL
            )
        ),
        atol=2e-5,
    )


def test_affine_identity_is_a_zero_field():
    identity = np.eye(2, 3, dtype="float32")[None]
    field = affine_to_displacement(identity, (5, 7), data_format=CL)
    np.testing.assert_array_equal(ops.convert_to_numpy(field), 0.0)


def numpy_jacobian_determinant(field_xy):
    """`det(I + grad u)` with `numpy.gradient`, for one `"xy"` field."""
    rank = field_xy.shape[-1]
    jacobian = np.empty((*field_xy.shape[:-1], rank, rank))
    for i in range(rank):
        for j in range(rank):
            gradient = np.gradient(field_xy[..., i], axis=rank - 1 - j)
            jacobian[..., i, j] = gradient
    return np.linalg.det(jacobian + np.eye(rank))


@pytest.mark.parametrize("rank", (2, 3))
def test_jacobian_determinant_matches_numpy(rank):
    size = SIZES[rank]
    p = mesh_xy(size) / 4.0
    # An analytic, non-linear field: u_i = sin of a mix of the coordinates.
    mix = np.random.default_rng(3).normal(size=(rank, rank))
    field = np.sin(p @ mix.T)[None].astype("float32")
    det = ops.convert_to_numpy(jacobian_determinant(field, CL))
    np.testing.assert_allclose(
        det[0], numpy_jacobian_determinant(field[0]), atol=1e-5
    )
    det_ij = jacobian_determinant(field[..., ::-1], CL, indexing="ij")
    np.testing.assert_allclose(ops.convert_to_numpy(det_ij), det, atol=1e-6)


def test_jacobian_determinant_of_special_fields():
    size = SIZES[2]
    translation = np.tile(np.float32([2.5, -1.0]), (1, *size, 1))
    np.testing.assert_allclose(
        ops.convert_to_numpy(jacobian_determinant(translation, CL)), 1.0
    )
    matrix = VELOCITIES[2]
    linear = linear_field(matrix, size).astype("float32")
    np.testing.assert_allclose(
        ops.convert_to_numpy(jacobian_determinant(linear, CL)),
        np.linalg.det(np.eye(2) + matrix),
        rtol=1e-5,
    )
    # x -> -x folds the image onto itself: determinant -1.
    fold = np.zeros((1, *size, 2), "float32")
    fold[..., 0] = -2 * mesh_xy(size)[..., 0]
    np.testing.assert_allclose(
        ops.convert_to_numpy(jacobian_determinant(fold, CL)), -1.0
    )


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: integrate_velocity(np.zeros((1, 4, 4, 2)), -1), "`steps`"),
        (
            lambda: integrate_velocity(np.zeros((1, 4, 4, 3)), 2, CL),
            "`velocity`",
        ),
        (
            lambda: compose_displacements(
                np.zeros((1, 4, 4, 2)), np.zeros((1, 4, 5, 2)), CL
            ),
            "same spatial sizes",
        ),
        (
            lambda: resize_displacement(np.zeros((1, 4, 4, 2)), (3, 3, 3), CL),
            "`size`",
        ),
        (
            lambda: affine_to_displacement(np.zeros((1, 2, 2)), (4, 4)),
            "`theta`",
        ),
        (
            lambda: jacobian_determinant(np.zeros((1, 4, 4, 2)), CL, "yx"),
            "`indexing`",
        ),
    ],
)
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()
