"""The backends' function transforms through the default sampling path.

Per-example gradients (`torch.func.vmap` of `torch.func.grad`, `jax.vmap` of
`jax.grad`, `tf.vectorized_map` of a tape's gradient), as differential
privacy and meta-learning take them, run through `grid_sample` on every
backend, whichever path samples; so does forward-mode differentiation
(`torch.func.jacfwd` and `torch.autograd.forward_ad`, `jax.jacfwd`,
`tf.autodiff.ForwardAccumulator`), and forward over reverse for
Hessian-vector products. Oracle: PyTorch's `grid_sample` and its
reverse-mode gradients (twice for the Hessian), in float64.
"""

import functools

import numpy as np
import torch
from keras import ops

from keras_stn.ops import grid_sample

from helpers import BACKEND
from helpers import float64_enabled
from helpers import random_sampling_problem

SIZE = (3, 6, 7, 2, 4, 5)


def sampling_problem():
    images, grid, upstream = random_sampling_problem(5, SIZE)
    return [a.astype("float64") for a in (images, grid, upstream)]


def torch_gradients(images, grid, upstream):
    """PyTorch's gradients of `sum(grid_sample(images, grid) * upstream)`,
    which are each example's gradients, as the examples are independent."""
    tensors = [torch.tensor(a, requires_grad=True) for a in (images, grid)]
    outputs = torch.nn.functional.grid_sample(
        tensors[0].movedim(-1, 1), tensors[1], align_corners=False
    )
    value = (outputs.movedim(1, -1) * torch.tensor(upstream)).sum()
    return [g.numpy() for g in torch.autograd.grad(value, tensors)]


def torch_jacobian(images, grid):
    """PyTorch's Jacobian of `grid_sample(images, grid)` with respect to
    the grid, by reverse mode: `(*outputs.shape, *grid.shape)`."""

    def sample(points):
        outputs = torch.nn.functional.grid_sample(
            torch.tensor(images).movedim(-1, 1), points, align_corners=False
        )
        return outputs.movedim(1, -1)

    return torch.func.jacrev(sample)(torch.tensor(grid)).numpy()


def per_example_gradients(images, grid, upstream):
    """Each example's gradients of `sum(grid_sample(x, g) * upstream)`
    with respect to its image and grid, by the backend's vectorizing
    transform."""

    def loss(x, g, u):
        return ops.sum(grid_sample(x[None], g[None]) * u[None])

    if BACKEND == "torch":
        gradients = torch.func.vmap(torch.func.grad(loss, argnums=(0, 1)))(
            *map(torch.tensor, (images, grid, upstream))
        )
    elif BACKEND == "jax":
        import jax

        gradients = jax.vmap(jax.grad(loss, argnums=(0, 1)))(
            images, grid, upstream
        )
    else:
        import tensorflow as tf

        def example_gradients(args):
            x, g, u = args
            with tf.GradientTape() as tape:
                tape.watch([x, g])
                value = loss(x, g, u)
            return tape.gradient(value, [x, g])

        gradients = tf.vectorized_map(
            example_gradients, tuple(map(tf.constant, (images, grid, upstream)))
        )
    return [np.asarray(gradient) for gradient in gradients]


def forward_mode_derivative(images, grid, tangent):
    """The derivative of `grid_sample(images, grid)` along `tangent` (of
    the grid), by the backend's forward mode."""
    if BACKEND == "torch":
        from torch.autograd import forward_ad

        with forward_ad.dual_level():
            dual = forward_ad.make_dual(
                torch.tensor(grid), torch.tensor(tangent)
            )
            outputs = grid_sample(torch.tensor(images), dual)
            derivative = forward_ad.unpack_dual(outputs).tangent
        # `None` where the sampling dropped the tangent.
        return derivative.numpy()
    if BACKEND == "jax":
        import jax

        sample = functools.partial(grid_sample, images)
        return np.asarray(jax.jvp(sample, (grid,), (tangent,))[1])
    import tensorflow as tf

    grid = tf.constant(grid)
    with tf.autodiff.ForwardAccumulator(grid, tf.constant(tangent)) as forward:
        outputs = grid_sample(tf.constant(images), grid)
    return np.asarray(forward.jvp(outputs))


def forward_mode_jacobian(images, grid):
    """The Jacobian of `grid_sample(images, grid)` with respect to the grid,
    by the backend's forward mode: `(*outputs.shape, *grid.shape)`."""
    if BACKEND == "torch":
        return torch.func.jacfwd(
            functools.partial(grid_sample, torch.tensor(images))
        )(torch.tensor(grid)).numpy()
    if BACKEND == "jax":
        import jax

        return np.asarray(
            jax.jacfwd(functools.partial(grid_sample, images))(grid)
        )
    columns = [
        forward_mode_derivative(images, grid, tangent.reshape(grid.shape))
        for tangent in np.eye(grid.size)
    ]
    return np.stack(columns, -1).reshape(columns[0].shape + grid.shape)


def test_per_example_gradients_match_pytorch():
    images, grid, upstream = sampling_problem()
    expected = torch_gradients(images, grid, upstream)
    with float64_enabled():
        gradients = per_example_gradients(images, grid, upstream)
    for gradient, reference in zip(gradients, expected, strict=True):
        np.testing.assert_allclose(gradient, reference, rtol=1e-9, atol=1e-9)


def test_forward_mode_jacobian_matches_pytorchs_reverse_mode():
    images, grid, _ = sampling_problem()
    images, grid = images[:1], grid[:1, :2, :3]
    expected = torch_jacobian(images, grid)
    with float64_enabled():
        jacobian = forward_mode_jacobian(images, grid)
    np.testing.assert_allclose(jacobian, expected, rtol=1e-9, atol=1e-9)


def test_forward_mode_derivative_matches_pytorchs_reverse_mode():
    """Forward mode along one direction (on torch, dual tensors, whose
    tangents a call into C would drop: they take the generic sampler)."""
    images, grid, _ = sampling_problem()
    tangent = np.random.default_rng(0).normal(size=grid.shape)
    jacobian = torch_jacobian(images, grid)
    expected = np.einsum("...ijkl,ijkl->...", jacobian, tangent)
    with float64_enabled():
        derivative = forward_mode_derivative(images, grid, tangent)
    np.testing.assert_allclose(derivative, expected, rtol=1e-9, atol=1e-9)


def forward_over_reverse_hvp(images, grid, vector):
    """The Hessian of `sum(grid_sample(images, grid) ** 2)` with respect to
    the grid times `vector`, forward mode over reverse mode."""

    def loss(points):
        return ops.sum(grid_sample(images, points) ** 2)

    if BACKEND == "torch":
        _, product = torch.func.jvp(
            torch.func.grad(lambda g: loss(g)),
            (torch.tensor(grid),),
            (torch.tensor(vector),),
        )
        return product.numpy()
    if BACKEND == "jax":
        import jax

        return np.asarray(jax.jvp(jax.grad(loss), (grid,), (vector,))[1])
    import tensorflow as tf

    grid = tf.constant(grid)
    with tf.autodiff.ForwardAccumulator(grid, tf.constant(vector)) as forward:
        with tf.GradientTape() as tape:
            tape.watch(grid)
            value = loss(grid)
        gradient = tape.gradient(value, grid)
    return np.asarray(forward.jvp(gradient))


def test_hessian_vector_product_matches_pytorchs_double_backward():
    """Forward over reverse, as `jax.hessian` and TensorFlow's
    Hessian-vector products take it, against PyTorch's reverse over
    reverse."""
    images, grid, _ = sampling_problem()
    vector = np.random.default_rng(1).normal(size=grid.shape)
    points = torch.tensor(grid, requires_grad=True)
    outputs = torch.nn.functional.grid_sample(
        torch.tensor(images).movedim(-1, 1), points, align_corners=False
    )
    (gradient,) = torch.autograd.grad(
        (outputs**2).sum(), points, create_graph=True
    )
    (expected,) = torch.autograd.grad(gradient, points, torch.tensor(vector))
    with float64_enabled():
        product = forward_over_reverse_hvp(images, grid, vector)
    np.testing.assert_allclose(product, expected.numpy(), rtol=1e-9, atol=1e-9)
