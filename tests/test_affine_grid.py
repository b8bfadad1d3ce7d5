"""`affine_grid` and `affine_pixel_grid` against PyTorch's `affine_grid`."""

import itertools

import keras
import numpy as np
import pytest
import torch
from keras import ops

from keras_stn.ops import affine_grid
from keras_stn.ops.constants import constant
from keras_stn.ops.grids.affine import affine_pixel_grid

from helpers import BACKEND
from helpers import assert_gradients_match_finite_differences
from helpers import unnormalize
from helpers import value_and_gradients

SIZES = [(1, 1), (1, 5), (4, 7), (3, 2), (28, 28)]
VOLUME_SIZES = [(1, 1, 1), (1, 4, 3), (5, 1, 2), (3, 4, 6)]


def random_theta(rng, batch=3, dtype="float32", rank=2):
    shape = (batch, rank, rank + 1)
    theta = np.eye(rank, rank + 1) + rng.normal(0.0, 0.4, shape)
    return theta.astype(dtype)


def torch_affine_grid(theta, size, align_corners, upstream=None):
    t_theta = torch.tensor(theta, requires_grad=True)
    grid = torch.nn.functional.affine_grid(
        t_theta, (theta.shape[0], 1, *size), align_corners=align_corners
    )
    if upstream is None:
        return grid.detach().numpy()
    (grid * torch.tensor(upstream)).sum().backward()
    return grid.detach().numpy(), t_theta.grad.numpy()


@pytest.mark.parametrize(
    "size,align_corners",
    list(itertools.product(SIZES + VOLUME_SIZES, (False, True))),
)
def test_matches_torch(size, align_corners):
    rank = len(size)
    rng = np.random.default_rng(size[0] * 100 + size[1])
    theta = random_theta(rng, rank=rank)
    upstream = rng.normal(size=(3, *size, rank)).astype("float32")
    expected, expected_grad = torch_affine_grid(
        theta, size, align_corners, upstream
    )

    def loss(theta):
        grid = affine_grid(theta, size, align_corners=align_corners)
        return ops.sum(ops.multiply(grid, upstream))

    grid = affine_grid(theta, size, align_corners=align_corners)
    _, (grad,) = value_and_gradients(loss, theta)
    assert tuple(grid.shape) == (3, *size, rank)
    np.testing.assert_allclose(ops.convert_to_numpy(grid), expected, atol=1e-5)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "size,align_corners",
    list(itertools.product([(1, 5), (4, 7), (1, 4, 3)], (False, True))),
)
def test_sizes_given_as_tensors_match_torch(size, align_corners):
    """Sizes known only when a graph runs arrive as scalar tensors."""
    theta = random_theta(np.random.default_rng(3), rank=len(size))
    tensor_size = tuple(ops.convert_to_tensor(n, "int32") for n in size)
    grid = affine_grid(theta, tensor_size, align_corners=align_corners)
    expected = torch_affine_grid(theta, size, align_corners)
    np.testing.assert_allclose(ops.convert_to_numpy(grid), expected, atol=1e-5)


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    theta = random_theta(rng, dtype="float64")
    upstream = rng.normal(size=(3, 4, 5, 2))

    def loss(theta):
        grid = affine_grid(theta, (4, 5))
        return ops.sum(ops.multiply(grid, upstream))

    assert_gradients_match_finite_differences(
        loss, [theta], rng, step=1e-6, rtol=1e-7
    )


@pytest.mark.parametrize(
    "input_size,output_size,align_corners",
    [
        ((28, 28), (28, 28), False),
        ((42, 42), (28, 28), False),
        ((5, 9), (7, 3), True),
        ((1, 6), (4, 1), True),
        ((1, 6), (4, 1), False),
        ((4, 5, 6), (4, 5, 6), False),
        ((3, 8, 5), (6, 2, 4), True),
        ((1, 6, 2), (3, 1, 4), False),
    ],
)
def test_pixel_grid_is_the_unnormalized_grid(
    input_size, output_size, align_corners
):
    rng = np.random.default_rng(5)
    theta = random_theta(rng, dtype="float64", rank=len(input_size))
    normalized = torch_affine_grid(theta, output_size, align_corners)
    expected = unnormalize(normalized, input_size, align_corners)
    pixels = ops.stack(
        affine_pixel_grid(
            theta.astype("float32"), input_size, output_size, align_corners
        ),
        axis=-1,
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(pixels), expected, atol=1e-5 * max(input_size)
    )


@pytest.mark.parametrize(
    "size,align_corners",
    list(
        itertools.product(
            [(1, 1), (5, 7), (28, 28), (224, 97), (1, 1, 1), (12, 1, 31)],
            (0, 1),
        )
    ),
)
def test_pixel_grid_of_identity_is_exactly_the_pixel_centres(
    size, align_corners
):
    rank = len(size)
    identity = np.tile(np.eye(rank, rank + 1, dtype="float32"), (2, 1, 1))
    pixels = affine_pixel_grid(identity, size, size, bool(align_corners))
    indices = np.meshgrid(*[np.arange(n) for n in size], indexing="ij")
    # The grid's axes are x, y[, z]: the mesh's in reverse.
    for axis, index in zip(pixels, indices[::-1], strict=True):
        np.testing.assert_array_equal(
            ops.convert_to_numpy(axis), np.broadcast_to(index, (2, *size))
        )


@pytest.mark.parametrize(
    "theta_shape,output_size,match",
    [
        ((2, 3), (4, 4), "`theta`"),
        ((1, 3, 3), (4, 4), "`theta`"),
        ((1, 2, 3, 1), (4, 4), "`theta`"),
        ((1, 2, 3), (0, 4), "`output_size`"),
        ((1, 2, 3), (4,), "`output_size`"),
        ((1, 2, 3), "ab", "`output_size`"),
        ((1, 2, 3), (2.5, 4), "`output_size`"),
        ((1, 2, 3), None, "`output_size`"),
        ((1, 2, 3), (True, 4), "`output_size`"),
        ((1, 2, 3), (np.array([2, 3]), 4), "`output_size`"),
        ((1, 2, 3), (ops.ones((2,), "int32"), 4), "`output_size`"),
        ((1, 3, 4), (4, 4), "`output_size`"),
        ((1, 2, 3), (2, 4, 4), "`output_size`"),
        ((1, 3, 3, 4), (2, 4, 4), "`theta`"),
        ((1, 4, 5), (2, 2, 4, 4), "`theta`"),
    ],
)
def test_bad_arguments(theta_shape, output_size, match):
    with pytest.raises(ValueError, match=match):
        affine_grid(np.zeros(theta_shape, "float32"), output_size)


def test_integer_theta_is_rejected():
    with pytest.raises(ValueError, match="`theta`.*floating-point"):
        affine_grid(np.zeros((1, 2, 3), "int32"), (4, 4))


@pytest.mark.parametrize(
    "input_size,output_size,match",
    [
        ((4, 4, 4), (4, 4), "`input_size`"),
        ((4, 4), (2.5, 4), "`output_size`"),
    ],
)
def test_pixel_grid_checks_its_sizes(input_size, output_size, match):
    theta = np.eye(2, 3, dtype="float32")[None]
    with pytest.raises(ValueError, match=match):
        affine_pixel_grid(theta, input_size, output_size)


def test_grid_constants_take_the_matrix_dtype_and_device():
    """The grids' exact constants are made beside their matrix: its dtype
    on every backend and, on torch, its device (a GPU's; here PyTorch's
    "meta" device, which every build has), without reading it."""
    like = ops.zeros((2,), "float16")
    out = constant([[0.25, 1.0], [2.0, 3.0]], like)
    assert ops.convert_to_numpy(out).tolist() == [[0.25, 1.0], [2.0, 3.0]]
    assert keras.backend.standardize_dtype(out.dtype) == (
        keras.backend.standardize_dtype(like.dtype)
    )
    if BACKEND == "torch":
        out = constant(list(range(3)), torch.empty(1, device="meta"))
        assert out.device.type == "meta" and tuple(out.shape) == (3,)
