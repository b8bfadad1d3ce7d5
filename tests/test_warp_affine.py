"""`warp_affine` against PyTorch's `affine_grid` + `grid_sample`."""

import itertools

import numpy as np
import pytest
import torch
from keras import ops

from keras_stn.ops import warp_affine
from keras_stn.ops.coordinates import normalized_coordinates

from helpers import assert_gradients_match_finite_differences
from helpers import compile_function
from helpers import float64_enabled
from helpers import value_and_gradients

MODES = ("bilinear", "nearest")
PADDINGS = ("zeros", "border", "reflection")


def identity(batch, dtype="float32", rank=2):
    return np.tile(np.eye(rank, rank + 1, dtype=dtype), (batch, 1, 1))


@pytest.mark.parametrize(
    "size,padding_mode,align_corners,data_format",
    list(
        itertools.product(
            [(1, 1), (5, 7), (28, 28), (33, 17), (1, 1, 1), (6, 1, 9)],
            PADDINGS,
            (False, True),
            ("channels_last", "channels_first"),
        )
    ),
)
def test_identity_returns_the_input_exactly(
    size, padding_mode, align_corners, data_format
):
    rng = np.random.default_rng(0)
    shape = (2, *size, 3) if data_format == "channels_last" else (2, 3, *size)
    images = rng.normal(size=shape).astype("float32")
    out = warp_affine(
        images,
        identity(2, rank=len(size)),
        padding_mode=padding_mode,
        align_corners=align_corners,
        data_format=data_format,
    )
    np.testing.assert_array_equal(ops.convert_to_numpy(out), images)


def test_identity_is_exact_in_float64():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(1, 29, 31, 2))
    with float64_enabled():
        out = warp_affine(
            images, identity(1, "float64"), data_format="channels_last"
        )
        np.testing.assert_array_equal(ops.convert_to_numpy(out), images)


def torch_warp(images, theta, output_size, upstream, **kwargs):
    t_images = torch.tensor(images, requires_grad=True)
    t_theta = torch.tensor(theta, requires_grad=True)
    batch, channels = images.shape[0], images.shape[-1]
    grid = torch.nn.functional.affine_grid(
        t_theta,
        (batch, channels, *output_size),
        align_corners=kwargs["align_corners"],
    )
    out = torch.nn.functional.grid_sample(
        t_images.movedim(-1, 1), grid, **kwargs
    ).movedim(1, -1)
    (out * torch.tensor(upstream)).sum().backward()
    return out.detach().numpy(), t_images.grad.numpy(), t_theta.grad.numpy()


@pytest.mark.parametrize(
    "input_size,output_size", [((12, 10), (7, 9)), ((5, 4, 6), (3, 4, 5))]
)
@pytest.mark.parametrize(
    "mode,padding_mode,align_corners",
    list(itertools.product(MODES, PADDINGS, (False, True))),
)
def test_matches_torch(
    mode, padding_mode, align_corners, input_size, output_size
):
    rank = len(input_size)
    rng = np.random.default_rng(11)
    images = rng.normal(size=(3, *input_size, 2)).astype("float32")
    theta = identity(3, rank=rank) + rng.normal(0.0, 0.3, (3, rank, rank + 1))
    theta = theta.astype("float32")
    upstream = rng.normal(size=(3, *output_size, 2)).astype("float32")
    kwargs = dict(
        mode=mode, padding_mode=padding_mode, align_corners=align_corners
    )

    def loss(images, theta):
        out = warp_affine(
            images, theta, output_size, data_format="channels_last", **kwargs
        )
        return ops.sum(ops.multiply(out, upstream))

    out = warp_affine(
        images, theta, output_size, data_format="channels_last", **kwargs
    )
    _, (grad_images, grad_theta) = value_and_gradients(loss, images, theta)
    expected, expected_images, expected_theta = torch_warp(
        images, theta, output_size, upstream, **kwargs
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(out), expected, atol=1e-5, rtol=1e-5
    )
    np.testing.assert_allclose(grad_images, expected_images, atol=1e-4)
    np.testing.assert_allclose(grad_theta, expected_theta, rtol=1e-4, atol=1e-4)


def identity_theta_gradient(images, upstream, padding_mode, align_corners):
    """The gradient with respect to theta at the identity, in NumPy.

    At the identity every sampling point is a pixel centre, where bilinear
    interpolation takes the difference towards the next pixel (PyTorch's
    convention: `floor` of an integer is the integer itself). Outside
    pixels are zero for `"zeros"` padding; `"border"` and `"reflection"`
    clamp the first and last pixel, whose coordinate gradient is zero.
    """
    _, height, width, _ = images.shape
    padded = np.pad(images, ((0, 0), (0, 1), (0, 1), (0, 0)))
    grad_x = np.sum(upstream * (padded[:, :-1, 1:] - images), axis=-1)
    grad_y = np.sum(upstream * (padded[:, 1:, :-1] - images), axis=-1)
    if padding_mode != "zeros":
        grad_x[:, :, [0, -1]] = 0.0
        grad_y[:, [0, -1], :] = 0.0
    xs = np.array(normalized_coordinates(width, align_corners))[None, None]
    ys = np.array(normalized_coordinates(height, align_corners))[None, :, None]
    scale_x = (width - 1) / 2 if align_corners else width / 2
    scale_y = (height - 1) / 2 if align_corners else height / 2
    rows = []
    for grad, scale in ((grad_x, scale_x), (grad_y, scale_y)):
        rows.append(
            [
                np.sum(grad * factor, axis=(1, 2)) * scale
                for factor in (xs, ys, 1)
            ]
        )
    return np.stack([np.stack(row, axis=-1) for row in rows], axis=1)


@pytest.mark.parametrize(
    "padding_mode,align_corners", list(itertools.product(PADDINGS, (0, 1)))
)
def test_theta_gradient_at_identity(padding_mode, align_corners):
    rng = np.random.default_rng(2)
    images = rng.normal(size=(2, 28, 28, 3)).astype("float32")
    upstream = rng.normal(size=images.shape).astype("float32")

    def loss(theta):
        out = warp_affine(
            images,
            theta,
            padding_mode=padding_mode,
            align_corners=bool(align_corners),
            data_format="channels_last",
        )
        return ops.sum(ops.multiply(out, upstream))

    _, (grad,) = value_and_gradients(loss, identity(2))
    expected = identity_theta_gradient(
        images.astype("float64"), upstream, padding_mode, bool(align_corners)
    )
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-3)


def test_theta_gradient_matches_finite_differences():
    rng = np.random.default_rng(4)
    images = rng.normal(size=(2, 12, 10, 2))
    theta = identity(2, "float64") + rng.normal(0.0, 0.2, (2, 2, 3))
    upstream = rng.normal(size=(2, 9, 8, 2))

    def loss(theta):
        out = warp_affine(
            images,
            theta,
            (9, 8),
            padding_mode="border",
            data_format="channels_last",
        )
        return ops.sum(ops.multiply(out, upstream))

    assert_gradients_match_finite_differences(
        loss, [theta], rng, step=1e-7, rtol=1e-6
    )


def test_compiled_matches_eager():
    """Under XLA (TensorFlow), jax.jit or torch.compile: the same numbers."""
    rng = np.random.default_rng(6)
    images = rng.normal(size=(3, 16, 16, 2)).astype("float32")
    theta = (identity(3) + rng.normal(0.0, 0.2, (3, 2, 3))).astype("float32")
    upstream = rng.normal(size=(3, 12, 12, 2)).astype("float32")

    def loss(images, theta):
        out = warp_affine(images, theta, (12, 12), data_format="channels_last")
        return ops.sum(ops.multiply(out, upstream))

    eager = value_and_gradients(loss, images, theta)
    compiled = value_and_gradients(compile_function(loss), images, theta)
    np.testing.assert_allclose(compiled[0], eager[0], rtol=1e-5)
    for compiled_grad, eager_grad in zip(compiled[1], eager[1], strict=True):
        # Sums over many pixels, reordered by the compiler: compare relative
        # to the largest entry.
        scale = np.abs(eager_grad).max()
        np.testing.assert_allclose(compiled_grad, eager_grad, atol=1e-5 * scale)


@pytest.mark.parametrize(
    "images_shape,theta_shape,output_size,match",
    [
        ((2, 8, 8, 1), (3, 2, 3), None, "same batch size"),
        ((2, 8, 8, 1), (2, 3, 3), None, "`theta`"),
        ((8, 8, 1), (2, 2, 3), None, "`images`"),
        ((2, 8, 8, 1), (2, 2, 3), (0, 3), "`output_size`"),
        ((2, 8, 8, 1), (2, 2, 3), (3, 3, 3), "`output_size`"),
        ((2, 8, 8, 1), (2, 3, 4), None, "`theta`"),
        ((2, 4, 8, 8, 1), (2, 2, 3), None, "`theta`"),
        ((2, 4, 8, 8, 1), (2, 3, 4), (3, 3), "`output_size`"),
    ],
)
def test_bad_arguments(images_shape, theta_shape, output_size, match):
    with pytest.raises(ValueError, match=match):
        warp_affine(
            np.zeros(images_shape, "float32"),
            np.zeros(theta_shape, "float32"),
            output_size,
        )
