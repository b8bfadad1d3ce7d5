"""Time what second derivatives through the sampler cost.

For each size, a batch of channels-last images warped by a batch of affine
transforms (`warp_affine`, bilinear, zero padding, the input's size) with
the loss `mean((warped - targets) ** 2)`, three steps side by side in one
process, compiled as `fit` compiles on the current backend (`tf.function`
without XLA, `jax.jit`, eager torch; `timing.compiled_vjp`):

- `first_order`: the loss and its gradients with respect to the images and
  `theta`, on the default path (`implementation="auto"`);
- `penalty`: a gradient penalty, as WGAN-GP's: the gradient of the loss
  with respect to the images, its squared norm, and that penalty's
  gradient with respect to `theta` (a second derivative, each backend's
  nested autodiff: `tf.GradientTape` in a `tf.GradientTape`, `jax.grad` of
  `jax.grad`, `torch.autograd.grad` with `create_graph=True`), on the
  default path, where the C++ kernels' gradients are differentiated
  through the generic sampler;
- `penalty_generic`: the same penalty step on the generic `keras.ops`
  sampler (`implementation="keras"`).

Prints one JSON line per size with each median time and the ratios
`penalty / first_order` and `penalty / penalty_generic`.

    KERAS_BACKEND=jax python benchmarks/second_derivatives.py --sizes mnist

`benchmarks/run.py --goals second_order` runs it on every backend and
prints the ratios as a table.
"""

import keras
import numpy as np

from keras_stn.ops import warp_affine

from timing import BACKEND
from timing import backend_tensors
from timing import benchmark_main
from timing import compiled_vjp
from timing import median_seconds

# name: (batch, height, width, channels)
SIZES = {
    "mnist": (64, 28, 28, 1),
    "cifar": (64, 32, 32, 3),
}


def random_inputs(size, seed=0):
    """Random images and targets, and transforms near the identity.

    Args:
        size: `(batch, height, width, channels)`.
        seed: seed of the draws.

    Returns:
        float32 `(images, targets, theta)` as NumPy arrays: images and
        targets in [0, 1), channels last; `theta` of shape `(batch, 2, 3)`,
        rotations of up to 0.3 radians, scales of 0.8 to 1.2 and shifts of
        up to 0.2, as a spatial transformer's early in training.
    """
    rng = np.random.default_rng(seed)
    images = rng.uniform(size=size).astype("float32")
    targets = rng.uniform(size=size).astype("float32")
    batch = size[0]
    angle = rng.uniform(-0.3, 0.3, batch)
    scale = rng.uniform(0.8, 1.2, batch)
    cos, sin = scale * np.cos(angle), scale * np.sin(angle)
    shift = rng.uniform(-0.2, 0.2, (batch, 2))
    theta = np.stack(
        [
            np.stack([cos, -sin, shift[:, 0]], axis=-1),
            np.stack([sin, cos, shift[:, 1]], axis=-1),
        ],
        axis=1,
    )
    return images, targets, theta.astype("float32")


def loss_function(targets, implementation="auto"):
    """The loss of warped images, a function of backend tensors: `images`
    and `theta`; `targets` is a backend tensor too."""

    def loss(images, theta):
        warped = warp_affine(
            images,
            theta,
            data_format="channels_last",
            implementation=implementation,
        )
        return keras.ops.mean(keras.ops.square(warped - targets))

    return loss


def compiled_penalty_gradient(fn):
    """Compile a gradient penalty's gradient the way `fit` compiles a step.

    As `timing.compiled_vjp`: `tf.function` without XLA on TensorFlow,
    `jax.jit` on JAX and eager autograd on torch, each with its own nested
    autodiff.

    Args:
        fn: maps `(images, theta)` backend tensors to a scalar tensor,
            using `keras.ops`.

    Returns:
        A function of the same tensors returning the penalty `sum(d fn /
        d images) ** 2)` and its gradient with respect to `theta`.
    """
    if BACKEND == "tensorflow":
        import tensorflow as tf

        def tensorflow_penalty(images, theta):
            with tf.GradientTape() as outer:
                outer.watch(theta)
                with tf.GradientTape() as inner:
                    inner.watch(images)
                    value = fn(images, theta)
                penalty = tf.reduce_sum(inner.gradient(value, images) ** 2)
            return penalty, outer.gradient(penalty, theta)

        return tf.function(tensorflow_penalty)
    if BACKEND == "jax":
        import jax

        def jax_penalty(images, theta):
            return jax.numpy.sum(jax.grad(fn)(images, theta) ** 2)

        return jax.jit(jax.value_and_grad(jax_penalty, argnums=1))
    import torch

    def torch_penalty(images, theta):
        (gradient,) = torch.autograd.grad(
            fn(images, theta), images, create_graph=True
        )
        penalty = (gradient**2).sum()
        (grad_theta,) = torch.autograd.grad(penalty, theta)
        return penalty.detach(), grad_theta

    return torch_penalty


def first_order_step(images, targets, theta):
    """The loss and its gradients, default path, compiled, ready to call."""
    targets, one = backend_tensors(targets, np.float32(1), requires_grad=False)
    step = compiled_vjp(loss_function(targets))
    tensors = backend_tensors(images, theta)
    return lambda: step(*tensors, one)


def penalty_step(images, targets, theta, implementation="auto"):
    """The gradient penalty's gradient for `theta`, compiled, ready to
    call."""
    (targets,) = backend_tensors(targets, requires_grad=False)
    step = compiled_penalty_gradient(loss_function(targets, implementation))
    tensors = backend_tensors(images, theta)
    return lambda: step(*tensors)


def measure(name, repeats):
    """Time the three steps at one named size.

    Args:
        name: a key of `SIZES`.
        repeats: timed rounds of each.

    Returns:
        A dict: size name and shape, backend, median seconds of each step
        and the ratios of the penalty step's to the first-order step's and
        to the generic penalty step's.
    """
    inputs = random_inputs(SIZES[name])
    seconds = median_seconds(
        {
            "first_order": first_order_step(*inputs),
            "penalty": penalty_step(*inputs),
            "penalty_generic": penalty_step(*inputs, "keras"),
        },
        repeats,
    )
    return {
        "size": name,
        "shape": SIZES[name],
        "backend": BACKEND,
        **seconds,
        "penalty_over_first_order": seconds["penalty"] / seconds["first_order"],
        "penalty_over_generic": seconds["penalty"] / seconds["penalty_generic"],
    }


if __name__ == "__main__":
    benchmark_main(__doc__, measure, SIZES)
