"""`tps_grid` and `tps_pixel_grid` against SciPy's thin-plate spline."""

import itertools

import numpy as np
import pytest
import torch
from keras import ops
from scipy.interpolate import RBFInterpolator

from keras_stn.ops import tps_grid
from keras_stn.ops.grids.thin_plate_spline import tps_pixel_grid

from helpers import assert_gradients_match_finite_differences
from helpers import normalized_axis
from helpers import normalized_mesh
from helpers import unnormalize

SIZES = [(1, 1), (1, 5), (4, 7), (3, 2), (16, 16)]
# A regular 4x4 grid of control points, and 7 scattered ones.
GRID_POINTS = np.stack(
    np.meshgrid(np.linspace(-1, 1, 4), np.linspace(-1, 1, 4)), axis=-1
).reshape(-1, 2)
SCATTERED_POINTS = np.random.default_rng(0).uniform(-1.0, 1.0, (7, 2))
CONTROL_POINTS = {"grid": GRID_POINTS, "scattered": SCATTERED_POINTS}


def random_targets(rng, control_points, batch=3, dtype="float32"):
    offsets = rng.normal(0.0, 0.2, (batch, *control_points.shape))
    return (control_points + offsets).astype(dtype)


def scipy_grid(targets, control_points, size, align_corners):
    mesh = normalized_mesh(size, align_corners)
    return np.stack(
        [
            RBFInterpolator(
                control_points,
                points.astype(np.float64),
                kernel="thin_plate_spline",
                degree=1,
            )(mesh.reshape(-1, 2)).reshape(mesh.shape)
            for points in targets
        ]
    )


@pytest.mark.parametrize(
    "size,rows,columns,align_corners",
    [
        ((10, 10), (0, 3, 6, 9), (0, 3, 6, 9), True),
        ((7, 10), (0, 3, 6), (0, 4, 9), True),
        ((8, 6), (1, 4, 7), (0, 2, 5), False),
    ],
)
def test_passes_through_the_targets(size, rows, columns, align_corners):
    rng = np.random.default_rng(sum(size))
    control_points = np.stack(
        np.meshgrid(
            normalized_axis(size[1], align_corners)[list(columns)],
            normalized_axis(size[0], align_corners)[list(rows)],
        ),
        axis=-1,
    )
    targets = random_targets(rng, control_points.reshape(-1, 2))
    grid = tps_grid(targets, size, control_points.reshape(-1, 2), align_corners)
    at_control_points = ops.convert_to_numpy(grid)[:, rows][:, :, columns]
    np.testing.assert_allclose(
        at_control_points.reshape(targets.shape), targets, atol=1e-5
    )


@pytest.mark.parametrize(
    "size,align_corners,points",
    list(itertools.product([(1, 5), (4, 7)], (False, True), CONTROL_POINTS)),
)
def test_affine_targets_match_torch_affine_grid(size, align_corners, points):
    rng = np.random.default_rng(size[1])
    control_points = CONTROL_POINTS[points]
    theta = np.eye(2, 3) + rng.normal(0.0, 0.4, (3, 2, 3))
    targets = control_points @ theta[:, :, :2].transpose(0, 2, 1)
    targets += theta[:, None, :, 2]
    expected = torch.nn.functional.affine_grid(
        torch.tensor(theta), (3, 1, *size), align_corners=align_corners
    )
    grid = tps_grid(
        targets.astype("float32"), size, control_points, align_corners
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(grid), expected.numpy(), atol=1e-5
    )


@pytest.mark.parametrize(
    "size,align_corners,points",
    list(itertools.product(SIZES, (False, True), CONTROL_POINTS)),
)
def test_matches_scipy(size, align_corners, points):
    rng = np.random.default_rng(sum(size))
    control_points = CONTROL_POINTS[points]
    targets = random_targets(rng, control_points)
    grid = tps_grid(targets, size, control_points, align_corners)
    assert tuple(grid.shape) == (3, *size, 2)
    np.testing.assert_allclose(
        ops.convert_to_numpy(grid),
        scipy_grid(targets, control_points, size, align_corners),
        atol=1e-5,
    )


@pytest.mark.parametrize(
    "input_size,output_size,align_corners,points",
    [
        ((28, 28), (28, 28), False, "grid"),
        ((42, 42), (28, 28), False, "scattered"),
        ((5, 9), (7, 3), True, "grid"),
        ((1, 6), (4, 1), True, "scattered"),
        ((1, 6), (4, 1), False, "grid"),
    ],
)
def test_pixel_grid_is_the_unnormalized_grid(
    input_size, output_size, align_corners, points
):
    rng = np.random.default_rng(5)
    control_points = CONTROL_POINTS[points]
    targets = random_targets(rng, control_points)
    expected = unnormalize(
        scipy_grid(targets, control_points, output_size, align_corners),
        input_size,
        align_corners,
    )
    pixels = tps_pixel_grid(
        targets, control_points, input_size, output_size, align_corners
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(ops.stack(pixels, axis=-1)),
        expected,
        atol=1e-5 * max(input_size),
    )


@pytest.mark.parametrize(
    "size,align_corners,points",
    list(
        itertools.product(
            [(1, 1), (5, 7), (28, 28), (224, 97)], (False, True), ("grid",)
        )
    )
    + [((9, 4), False, "scattered"), ((9, 4), True, "scattered")],
)
def test_pixel_grid_of_identity_is_exactly_the_pixel_centres(
    size, align_corners, points
):
    control_points = CONTROL_POINTS[points]
    identity = np.tile(control_points.astype("float32"), (2, 1, 1))
    x, y = tps_pixel_grid(identity, control_points, size, size, align_corners)
    rows, columns = np.meshgrid(
        np.arange(size[0]), np.arange(size[1]), indexing="ij"
    )
    np.testing.assert_array_equal(
        ops.convert_to_numpy(x), np.broadcast_to(columns, (2, *size))
    )
    np.testing.assert_array_equal(
        ops.convert_to_numpy(y), np.broadcast_to(rows, (2, *size))
    )


@pytest.mark.parametrize(
    "input_size,output_size,align_corners",
    [((9, 4), (5, 7), False), ((9, 4), (5, 7), True), ((1, 3), (2, 1), True)],
)
def test_pixel_grid_of_identity_between_sizes(
    input_size, output_size, align_corners
):
    identity = GRID_POINTS[None].astype("float32")
    pixels = tps_pixel_grid(
        identity, GRID_POINTS, input_size, output_size, align_corners
    )
    expected = unnormalize(
        normalized_mesh(output_size, align_corners), input_size, align_corners
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(ops.stack(pixels, axis=-1))[0],
        expected,
        rtol=1e-6,
        atol=1e-6,
    )


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    targets = random_targets(rng, SCATTERED_POINTS, dtype="float64")
    upstream = rng.normal(size=(3, 4, 5, 2))

    def loss(targets):
        grid = tps_grid(targets, (4, 5), SCATTERED_POINTS)
        return ops.sum(ops.multiply(grid, upstream))

    assert_gradients_match_finite_differences(
        loss, [targets], rng, step=1e-6, rtol=1e-7
    )


@pytest.mark.parametrize(
    "control_points",
    [
        [[0.0, 0.0], [1.0, 0.0]],
        [[0.0, 0.0], [0.5, 0.5], [1.0, 1.0], [-1.0, -1.0]],
        [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]],
        [[0.0, 0.0], [1.0, 0.0], [0.0, np.nan], [1.0, 1.0]],
        np.zeros((4, 3)),
        np.zeros((1, 4, 2)),
        [0.0, 1.0, 2.0, 3.0],
        "abcd",
    ],
)
def test_bad_control_points(control_points):
    with pytest.raises(ValueError, match="`control_points`"):
        tps_grid(np.zeros((1, 4, 2), "float32"), (4, 4), control_points)


@pytest.mark.parametrize(
    "targets,output_size,match",
    [
        (np.zeros((1, 15, 2), "float32"), (4, 4), "`targets`"),
        (np.zeros((1, 16, 3), "float32"), (4, 4), "`targets`"),
        (np.zeros((16, 2), "float32"), (4, 4), "`targets`"),
        (np.zeros((1, 16, 2), "int32"), (4, 4), "`targets`.*floating"),
        (np.zeros((1, 16, 2), "float32"), (4, 4, 4), "`output_size`"),
        (np.zeros((1, 16, 2), "float32"), (0, 4), "`output_size`"),
    ],
)
def test_bad_targets_and_output_size(targets, output_size, match):
    with pytest.raises(ValueError, match=match):
        tps_grid(targets, output_size, GRID_POINTS)


def test_pixel_grid_checks_its_arguments():
    with pytest.raises(ValueError, match="`control_points`"):
        tps_pixel_grid(
            np.zeros((1, 2, 2), "float32"), [[0, 0], [1, 0]], (4, 4), (4, 4)
        )
    with pytest.raises(ValueError, match="`targets`"):
        tps_pixel_grid(
            np.zeros((1, 15, 2), "float32"), GRID_POINTS, (4, 4), (4, 4)
        )


@pytest.mark.parametrize(
    "input_size,output_size,match",
    [
        ((4, 4, 4), (4, 4), "`input_size`"),
        ((4, 0), (4, 4), "`input_size`"),
        ((4, 4), (4, 4, 4), "`output_size`"),
    ],
)
def test_pixel_grid_checks_its_sizes(input_size, output_size, match):
    targets = GRID_POINTS[None].astype("float32")
    with pytest.raises(ValueError, match=match):
        tps_pixel_grid(targets, GRID_POINTS, input_size, output_size)
