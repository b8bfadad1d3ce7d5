"""`projective_grid` and `projective_pixel_grid` against scikit-image."""

import itertools

import numpy as np
import pytest
import torch
from keras import ops
from skimage.transform import ProjectiveTransform

from keras_stn.ops import projective_grid
from keras_stn.ops.grids.projective import projective_pixel_grid

from helpers import assert_gradients_match_finite_differences
from helpers import normalized_axis
from helpers import normalized_mesh
from helpers import unnormalize
from helpers import value_and_gradients

SIZES = [(1, 1), (1, 5), (4, 7), (3, 2), (16, 16)]
VOLUME_SIZES = [(1, 1, 1), (2, 3, 4), (5, 1, 3)]


def random_homography(rng, rank=2, batch=3, dtype="float32"):
    """Homographies with `w >= 1 - 0.2 * rank` on the whole square."""
    homography = np.eye(rank + 1) + rng.normal(
        0.0, 0.3, (batch, rank + 1, rank + 1)
    )
    homography[:, rank, :rank] = rng.uniform(-0.2, 0.2, (batch, rank))
    homography[:, rank, rank] = 1.0
    return homography.astype(dtype)


def skimage_grid(homography, size, align_corners):
    mesh = normalized_mesh(size, align_corners)
    points = mesh.reshape(-1, len(size))
    return np.stack(
        [
            ProjectiveTransform(
                matrix=matrix.astype(np.float64), dimensionality=len(size)
            )(points).reshape(mesh.shape)
            for matrix in homography
        ]
    )


@pytest.mark.parametrize(
    "size,align_corners",
    list(itertools.product(SIZES + VOLUME_SIZES, (False, True))),
)
def test_matches_skimage(size, align_corners):
    rng = np.random.default_rng(sum(size) * 10 + len(size))
    homography = random_homography(rng, rank=len(size))
    grid = projective_grid(homography, size, align_corners=align_corners)
    assert tuple(grid.shape) == (3, *size, len(size))
    np.testing.assert_allclose(
        ops.convert_to_numpy(grid),
        skimage_grid(homography, size, align_corners),
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize(
    "size,align_corners", [((5, 9), True), ((4, 8), False)]
)
def test_four_point_correspondence(size, align_corners):
    rng = np.random.default_rng(4)
    rows, columns = np.array([0, 1, 3, 2]), np.array([1, 6, 7, 0])
    outputs = np.stack(
        [
            normalized_axis(size[1], align_corners)[columns],
            normalized_axis(size[0], align_corners)[rows],
        ],
        axis=-1,
    )
    inputs = outputs + rng.uniform(-0.3, 0.3, (2, 4, 2))
    homography = np.stack(
        [
            ProjectiveTransform.from_estimate(outputs, points).params
            for points in inputs
        ]
    )
    grid = projective_grid(
        homography.astype("float32"), size, align_corners=align_corners
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(grid)[:, rows, columns], inputs, atol=1e-5
    )


@pytest.mark.parametrize(
    "input_size,output_size,align_corners",
    [
        ((28, 28), (28, 28), False),
        ((42, 42), (28, 28), False),
        ((5, 9), (7, 3), True),
        ((1, 6), (4, 1), True),
        ((1, 6), (4, 1), False),
        ((4, 5, 6), (3, 4, 2), False),
        ((4, 5, 6), (3, 4, 2), True),
    ],
)
def test_pixel_grid_is_the_unnormalized_grid(
    input_size, output_size, align_corners
):
    rng = np.random.default_rng(5)
    homography = random_homography(rng, rank=len(input_size))
    expected = unnormalize(
        skimage_grid(homography, output_size, align_corners),
        input_size,
        align_corners,
    )
    pixels = projective_pixel_grid(
        homography, input_size, output_size, align_corners
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(ops.stack(pixels, axis=-1)),
        expected,
        atol=1e-5 * max(input_size),
    )


@pytest.mark.parametrize(
    "size,align_corners",
    list(
        itertools.product(
            [(1, 1), (5, 7), (28, 28), (224, 97), (3, 4, 5)], (False, True)
        )
    ),
)
def test_pixel_grid_of_identity_is_exactly_the_pixel_centres(
    size, align_corners
):
    identity = np.tile(np.eye(len(size) + 1, dtype="float32"), (2, 1, 1))
    pixels = projective_pixel_grid(identity, size, size, align_corners)
    indices = np.meshgrid(*map(np.arange, size), indexing="ij")[::-1]
    assert len(pixels) == len(size)
    for coordinate, index in zip(pixels, indices, strict=True):
        np.testing.assert_array_equal(
            ops.convert_to_numpy(coordinate),
            np.broadcast_to(index, (2, *size)),
        )


@pytest.mark.parametrize(
    "size,align_corners",
    list(itertools.product([(1, 5), (4, 7), (2, 3, 4)], (False, True))),
)
def test_affine_homography_matches_torch_affine_grid(size, align_corners):
    rng = np.random.default_rng(len(size))
    rank = len(size)
    theta = np.eye(rank, rank + 1) + rng.normal(0.0, 0.4, (3, rank, rank + 1))
    homography = np.zeros((3, rank + 1, rank + 1))
    homography[:, :rank] = theta
    homography[:, rank, rank] = 1.0
    expected = torch.nn.functional.affine_grid(
        torch.tensor(theta), (3, 1, *size), align_corners=align_corners
    )
    grid = projective_grid(
        homography.astype("float32"), size, align_corners=align_corners
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(grid), expected.numpy(), atol=1e-5
    )


def test_zero_denominator_gives_finite_values_and_gradients():
    # w = 1 - x - y is exactly 0 on the anti-diagonal x + y = 1 of the
    # 5x5 mesh and negative beyond it.
    homography = np.array([[[1.0, 0, 0.5], [0, 1, 0], [-1, -1, 1]]], "float32")
    x, y = np.moveaxis(normalized_mesh((5, 5), True), -1, 0)
    w = 1 - x - y
    assert np.sum(w == 0) == 3 and np.any(w < 0)
    upstream = np.random.default_rng(6).normal(size=(1, 5, 5, 2))

    def loss(homography):
        grid = projective_grid(homography, (5, 5), align_corners=True)
        return ops.sum(ops.multiply(grid, upstream.astype("float32")))

    grid = ops.convert_to_numpy(
        projective_grid(homography, (5, 5), align_corners=True)
    )
    _, (grad,) = value_and_gradients(loss, homography)
    assert np.all(np.isfinite(grid)) and np.all(np.isfinite(grad))
    # Off the zeros, u / w and v / w; on them, divided by 1e-6 instead.
    expected = (
        np.stack([x + 0.5, y], axis=-1) / np.where(w == 0, 1e-6, w)[..., None]
    )
    np.testing.assert_allclose(grid[0], expected, rtol=1e-6)


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    homography = random_homography(rng, dtype="float64")
    upstream = rng.normal(size=(3, 4, 5, 2))

    def loss(homography):
        grid = projective_grid(homography, (4, 5))
        return ops.sum(ops.multiply(grid, upstream))

    assert_gradients_match_finite_differences(
        loss, [homography], rng, step=1e-6, rtol=1e-6
    )


@pytest.mark.parametrize(
    "homography_shape,output_size,match",
    [
        ((3, 3), (4, 4), "`homography`"),
        ((1, 2, 3), (4, 4), "`homography`"),
        ((1, 3, 4), (4, 4), "`homography`"),
        ((1, 4, 3), (4, 4, 4), "`homography`"),
        ((1, 3, 3, 1), (4, 4), "`homography`"),
        ((1, 3, 3), (4, 4, 4), "`output_size`"),
        ((1, 4, 4), (4, 4), "`output_size`"),
        ((1, 3, 3), (0, 4), "`output_size`"),
    ],
)
def test_bad_arguments(homography_shape, output_size, match):
    with pytest.raises(ValueError, match=match):
        projective_grid(np.zeros(homography_shape, "float32"), output_size)


def test_integer_homography_is_rejected():
    homography = np.tile(np.eye(3, dtype="int32"), (1, 1, 1))
    with pytest.raises(ValueError, match="`homography`.*floating-point"):
        projective_grid(homography, (4, 4))
    with pytest.raises(ValueError, match="`homography`.*floating-point"):
        projective_pixel_grid(homography, (4, 4), (4, 4))


@pytest.mark.parametrize(
    "input_size,output_size,match",
    [
        ((4, 4, 4), (4, 4), "`input_size`"),
        ((4, 4), (0, 4), "`output_size`"),
        ((4, 4), (2.5, 4), "`output_size`"),
    ],
)
def test_pixel_grid_checks_its_sizes(input_size, output_size, match):
    homography = np.eye(3, dtype="float32")[None]
    with pytest.raises(ValueError, match=match):
        projective_pixel_grid(homography, input_size, output_size)
