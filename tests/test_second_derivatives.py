"""Second derivatives through the default sampling paths, on every backend.

Gradient penalties (WGAN-GP), Hessian-vector products and Hessians (MAML,
`jax.hessian`) differentiate the sampler's gradients. The C++ kernels
compute first derivatives only; where their gradients are differentiated in
turn, the generic sampler computes that second derivative. Oracles:
PyTorch's own double backward of `grid_sample`, and the `keras.ops` sampler
(`implementation="keras"`), each in float64.
"""

import keras
import numpy as np
import pytest
import torch
from keras import ops

from keras_stn import SpatialTransformer
from keras_stn.ops import grid_sample
from keras_stn.ops import warp_affine

from helpers import float64_enabled
from helpers import hessian
from helpers import penalty_gradients
from helpers import random_sampling_problem

IMAGES = (2, 7, 9, 3, 5, 6)
VOLUMES = (2, 4, 5, 6, 2, 3, 4, 3)
THETA = np.array(
    [[[0.9, 0.2, 0.1], [-0.1, 1.1, -0.05]], [[1.2, -0.3, 0.2], [0.25, 0.8, 0]]]
)


def sampling_problem(size):
    images, grid, upstream = random_sampling_problem(0, size)
    return [a.astype("float64") for a in (images, grid, upstream)]


def moved_grid(images, grid):
    """The grid, moved by the images: the points depend on the images, as
    those of a spatial transformer do. (A sum: Keras' `mean` of float64
    rounds to float32 on JAX and torch.)"""
    return grid * (1 + 0.001 * ops.sum(images))


def torch_penalty_gradients(images, grid, upstream, penalized, **options):
    """The oracle: the gradients of the same penalty, by PyTorch."""
    tensors = [torch.tensor(a, requires_grad=True) for a in (images, grid)]
    out = torch.nn.functional.grid_sample(
        tensors[0].movedim(-1, 1),
        tensors[1] * (1 + 0.001 * tensors[0].sum()),
        **options,
    )
    value = (out.movedim(1, -1) * torch.tensor(upstream)).sum()
    (gradient,) = torch.autograd.grad(
        value, tensors[penalized], create_graph=True
    )
    grads = torch.autograd.grad((gradient**2).sum(), tensors, allow_unused=True)
    return [
        np.zeros_like(a) if grad is None else grad.numpy()
        for a, grad in zip((images, grid), grads, strict=True)
    ]


@pytest.mark.parametrize("penalized", (0, 1))
@pytest.mark.parametrize(
    "padding_mode,align_corners",
    (("zeros", False), ("border", True), ("reflection", False)),
)
def test_gradient_penalty_of_grid_sample_matches_pytorch(
    padding_mode, align_corners, penalized
):
    images, grid, upstream = sampling_problem(IMAGES)
    options = {"padding_mode": padding_mode, "align_corners": align_corners}

    def value(images, grid):
        out = grid_sample(
            images,
            moved_grid(images, grid),
            data_format="channels_last",
            **options,
        )
        return ops.sum(ops.multiply(out, upstream))

    with float64_enabled():
        grads = penalty_gradients(value, [images, grid], penalized)
    expected = torch_penalty_gradients(
        images, grid, upstream, penalized, **options
    )
    assert np.abs(expected[1]).max() > 1e-3
    for grad, want in zip(grads, expected, strict=True):
        np.testing.assert_allclose(grad, want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("penalized", (0, 1))
def test_gradient_penalty_of_volumes_matches_the_generic_sampler(penalized):
    images, grid, upstream = sampling_problem(VOLUMES)

    def value(implementation):
        def value(images, grid):
            out = grid_sample(
                images,
                moved_grid(images, grid),
                data_format="channels_last",
                implementation=implementation,
            )
            return ops.sum(ops.multiply(out, upstream))

        return value

    with float64_enabled():
        grads = penalty_gradients(value("auto"), [images, grid], penalized)
        expected = penalty_gradients(value("keras"), [images, grid], penalized)
    assert np.abs(expected[1]).max() > 1e-3
    for grad, want in zip(grads, expected, strict=True):
        np.testing.assert_allclose(grad, want, rtol=1e-9, atol=1e-9)


def test_hessian_of_warp_affine_matches_the_generic_sampler():
    images, _, _ = sampling_problem(IMAGES)

    def loss(implementation):
        def loss(theta):
            out = warp_affine(
                images,
                theta,
                data_format="channels_last",
                implementation=implementation,
            )
            return ops.sum(out**2)

        return loss

    with float64_enabled():
        result = hessian(loss("auto"), THETA)
        expected = hessian(loss("keras"), THETA)
    assert result.shape == THETA.shape * 2
    assert np.abs(expected).max() > 1e-3
    np.testing.assert_allclose(result, expected, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize(
    "transform,shape",
    (
        ("affine", (2, 9, 8, 3)),
        ("attention", (2, 9, 8, 3)),
        ("similarity", (2, 9, 8, 3)),
        ("projective", (2, 9, 8, 3)),
        ("tps", (2, 9, 8, 3)),
        ("affine", (2, 5, 6, 4, 2)),
    ),
)
def test_gradient_penalty_of_the_layer_matches_the_generic_sampler(
    transform, shape
):
    """The penalty on the inputs' gradient, differentiated with respect to
    the layer's weights (a small localization net's and the regressor's,
    set to random values) and its inputs, in training (where TensorFlow's
    layer samples with the kernel or XLA)."""
    rng = np.random.default_rng(1)
    inputs = rng.random(shape)
    with float64_enabled():
        layers = {
            implementation: SpatialTransformer(
                keras.Sequential(
                    [keras.layers.Flatten(), keras.layers.Dense(4, "tanh")]
                ),
                transform=transform,
                implementation=implementation,
                dtype="float64",
            )
            for implementation in ("auto", "keras")
        }
        for layer in layers.values():
            layer.build(shape)
        weights = [
            0.1 * rng.normal(size=w.shape) for w in layers["auto"].weights
        ]
        upstream = rng.normal(size=layers["auto"].compute_output_shape(shape))

        def value(layer):
            def value(inputs, *weights):
                outputs, _ = layer.stateless_call(
                    list(weights), [], inputs, training=True
                )
                return ops.sum(ops.multiply(outputs, upstream))

            return value

        grads = penalty_gradients(value(layers["auto"]), [inputs, *weights], 0)
        expected = penalty_gradients(
            value(layers["keras"]), [inputs, *weights], 0
        )
    for grad, want in zip(grads, expected, strict=True):
        np.testing.assert_allclose(grad, want, rtol=1e-7, atol=1e-9)
    assert np.abs(expected[-2]).max() > 1e-3, "no gradient for the regressor"


def test_gradient_penalty_through_a_model_with_the_default_layer():
    """A WGAN-GP critic's penalty: the gradient of its output with respect
    to its inputs, differentiated with respect to its weights, through the
    default localization net and the default sampling path."""
    rng = np.random.default_rng(0)
    images = rng.random((4, 12, 12, 2)).astype("float32")
    critic = keras.Sequential(
        [
            keras.Input((12, 12, 2)),
            SpatialTransformer(),
            keras.layers.Flatten(),
            keras.layers.Dense(1),
        ]
    )
    weights = [ops.convert_to_numpy(w) for w in critic.weights]
    grads = penalty_gradients(
        lambda x, *w: ops.sum(critic.stateless_call(list(w), [], x)[0]),
        [images, *weights],
        0,
    )
    assert all(np.isfinite(g).all() for g in grads)
    regressor_kernel = grads[-4]
    assert regressor_kernel.shape == (50, 6)
    assert np.abs(regressor_kernel).max() > 0, "no second derivative"
