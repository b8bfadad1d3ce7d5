"""Test helpers: per-backend gradients and the PyTorch oracle.

The backend under test is chosen by `KERAS_BACKEND`; one pytest run tests
one backend. PyTorch is installed whatever the backend, as the oracle.
"""

import contextlib

import keras
import numpy as np
import scipy.ndimage
import torch

from keras_stn.ops.sampling import dispatch
from keras_stn.ops.sampling.options import SamplingOptions

BACKEND = keras.backend.backend()


@contextlib.contextmanager
def float64_enabled():
    """Let the backend compute in float64 (JAX needs a switch for it)."""
    if BACKEND == "jax":
        import jax

        with jax.enable_x64(True):
            yield
    else:
        yield


def compile_function(fn):
    """Compile `fn` with the backend's compiler: XLA, `jax.jit` or Inductor."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, jit_compile=True)
    if BACKEND == "jax":
        import jax

        return jax.jit(fn)
    return torch.compile(fn)


def value_and_gradients(fn, *args):
    """Evaluate `fn(*args)` and its gradients with the backend's autodiff.

    Args:
        fn: maps backend tensors to a scalar tensor, using `keras.ops`.
        *args: NumPy arrays, the points at which to differentiate.

    Returns:
        `(value, gradients)`: NumPy arrays; a missing gradient (an argument
        on which the value does not depend) is returned as zeros.
    """
    if BACKEND == "tensorflow":
        import tensorflow as tf

        tensors = [tf.convert_to_tensor(a) for a in args]
        with tf.GradientTape() as tape:
            tape.watch(tensors)
            value = fn(*tensors)
        grads = tape.gradient(value, tensors)
    elif BACKEND == "jax":
        import jax

        tensors = [jax.numpy.asarray(a) for a in args]
        value, grads = jax.value_and_grad(fn, argnums=tuple(range(len(args))))(
            *tensors
        )
    elif BACKEND == "torch":
        tensors = [torch.tensor(a, requires_grad=True) for a in args]
        value = fn(*tensors)
        grads = torch.autograd.grad(value, tensors, allow_unused=True)
    else:
        raise ValueError(f"Unsupported backend {BACKEND}")
    grads = [
        np.zeros_like(a) if g is None else keras.ops.convert_to_numpy(g)
        for a, g in zip(args, grads, strict=True)
    ]
    return keras.ops.convert_to_numpy(value), grads


def _backend_tensors(args, requires_grad=False):
    """NumPy arrays as tensors of the backend under test."""
    if BACKEND == "torch":
        return [torch.tensor(a, requires_grad=requires_grad) for a in args]
    return [keras.ops.convert_to_tensor(a) for a in args]


def penalty_gradients(fn, args, penalized):
    """The gradients of a gradient penalty, as WGAN-GP computes it.

    Args:
        fn: maps backend tensors to a scalar tensor, using `keras.ops`.
        args: NumPy arrays, the point at which to differentiate.
        penalized: the index of the argument whose gradient is penalized.

    Returns:
        The gradients of `sum(d fn / d args[penalized]) ** 2)` with respect
        to every argument, as NumPy arrays (zeros where it does not
        depend on one), computed with the backend's nested autodiff.
    """
    if BACKEND == "tensorflow":
        import tensorflow as tf

        tensors = _backend_tensors(args)
        with tf.GradientTape() as outer:
            outer.watch(tensors)
            with tf.GradientTape() as inner:
                inner.watch(tensors[penalized])
                value = fn(*tensors)
            penalty = tf.reduce_sum(
                inner.gradient(value, tensors[penalized]) ** 2
            )
        grads = outer.gradient(penalty, tensors)
    elif BACKEND == "jax":
        import jax

        def penalty(*tensors):
            gradient = jax.grad(fn, argnums=penalized)(*tensors)
            return jax.numpy.sum(gradient**2)

        grads = jax.jit(jax.grad(penalty, argnums=tuple(range(len(args)))))(
            *_backend_tensors(args)
        )
    else:
        tensors = _backend_tensors(args, requires_grad=True)
        (gradient,) = torch.autograd.grad(
            fn(*tensors), tensors[penalized], create_graph=True
        )
        grads = torch.autograd.grad(
            (gradient**2).sum(), tensors, allow_unused=True
        )
    return [
        np.zeros_like(a) if g is None else keras.ops.convert_to_numpy(g)
        for a, g in zip(args, grads, strict=True)
    ]


def hessian(fn, x):
    """The Hessian of `fn` at `x`, by the backend's own Hessian API.

    `jax.hessian` (forward over reverse) on JAX,
    `torch.autograd.functional.hessian` on torch, and a tape's `jacobian` of
    a tape's gradient on TensorFlow.

    Args:
        fn: maps a backend tensor to a scalar tensor, using `keras.ops`.
        x: NumPy array.

    Returns:
        NumPy array of shape `x.shape + x.shape`.
    """
    if BACKEND == "tensorflow":
        import tensorflow as tf

        tensor = tf.convert_to_tensor(x)
        with tf.GradientTape() as outer:
            outer.watch(tensor)
            with tf.GradientTape() as inner:
                inner.watch(tensor)
                value = fn(tensor)
            gradient = inner.gradient(value, tensor)
        result = outer.jacobian(gradient, tensor)
    elif BACKEND == "jax":
        import jax

        result = jax.jit(jax.hessian(fn))(jax.numpy.asarray(x))
    else:
        result = torch.autograd.functional.hessian(fn, torch.tensor(x))
    return keras.ops.convert_to_numpy(result)


def assert_gradients_match_finite_differences(fn, args, rng, step, rtol):
    """Check the backend's gradients of `fn` by central differences.

    For each argument, the gradient's component along a random direction
    must equal `(fn(x + step * d) - fn(x - step * d)) / (2 * step)`. Runs in
    float64; keep the points away from kinks by more than `step`.

    Args:
        fn: maps backend tensors to a scalar tensor, using `keras.ops`.
        args: float64 NumPy arrays, the point at which to differentiate.
        rng: a `numpy.random.Generator` for the directions.
        step: the finite-difference step.
        rtol: the relative tolerance of the comparison.
    """
    with float64_enabled():
        _, grads = value_and_gradients(fn, *args)
        for index, point in enumerate(args):
            direction = rng.normal(size=point.shape)
            shifted = list(args)
            shifted[index] = point + step * direction
            forward = keras.ops.convert_to_numpy(fn(*shifted))
            shifted[index] = point - step * direction
            backward = keras.ops.convert_to_numpy(fn(*shifted))
            numeric = (forward - backward) / (2 * step)
            analytic = np.sum(grads[index] * direction)
            np.testing.assert_allclose(analytic, numeric, rtol=rtol)
            assert abs(numeric) > 1e-3, "a vacuous check: no gradient"


def takes_path(module, images, points, mode, padding_mode, normalized=False):
    """Whether the sampler's dispatch samples these points (pixels, one
    tensor per axis; or a normalized grid) with the path of `module`
    (`keras_stn.ops.sampling.dispatch.choose_path`)."""
    options = SamplingOptions(mode, padding_mode, False, normalized)
    return dispatch.choose_path(images, points, options) is module


def random_images_and_upstream(rng, size, data_format):
    """Random float32 images and an upstream gradient for a sampler test.

    Args:
        rng: a `numpy.random.Generator`.
        size: `(batch, height, width, channels, out_height, out_width)`, or
            `(batch, depth, height, width, channels, out_depth, out_height,
            out_width)` for volumes.
        data_format: `"channels_last"` or `"channels_first"`.

    Returns:
        `(images, upstream)`, laid out as `data_format` says: `upstream`
        is shaped like the sampler's output.
    """
    rank = (len(size) - 2) // 2
    batch, channels = size[0], size[rank + 1]
    images = rng.normal(size=(batch, *size[1 : rank + 1], channels))
    upstream = rng.normal(size=(batch, *size[rank + 2 :], channels))
    if data_format == "channels_first":
        images = np.moveaxis(images, -1, 1)
        upstream = np.moveaxis(upstream, -1, 1)
    return images.astype("float32"), upstream.astype("float32")


def random_sampling_problem(seed, size):
    """Channels-last images, a grid reaching past their edges, and upstream.

    Args:
        seed: the seed of the draws.
        size: as for `random_images_and_upstream`.

    Returns:
        float32 `(images, grid, upstream)`, the grid uniform in
        `[-1.2, 1.2]`.
    """
    rng = np.random.default_rng(seed)
    images, upstream = random_images_and_upstream(rng, size, "channels_last")
    rank = len(size) // 2 - 1
    grid = rng.uniform(-1.2, 1.2, (size[0], *size[-rank:], rank))
    return images, grid.astype("float32"), upstream


def torch_grid_sample(images, grid, upstream, data_format, **kwargs):
    """PyTorch's `grid_sample` with its gradients, in our layouts.

    Args:
        images: NumPy array, 4-D images or 5-D volumes, channels last or
            first as `data_format` says.
        grid: NumPy array `(batch, out_height, out_width, 2)`, or
            `(batch, out_depth, out_height, out_width, 3)` for volumes.
        upstream: NumPy array shaped like the output: the gradient of the
            loss `sum(output * upstream)` with respect to the output.
        data_format: `"channels_last"` or `"channels_first"`.
        **kwargs: `mode`, `padding_mode`, `align_corners`.

    Returns:
        `(output, grad_images, grad_grid)` as NumPy arrays.
    """
    channels_last = data_format == "channels_last"
    t_images = torch.tensor(images, requires_grad=True)
    t_grid = torch.tensor(grid, requires_grad=True)
    channels_first = t_images.movedim(-1, 1) if channels_last else t_images
    out = torch.nn.functional.grid_sample(channels_first, t_grid, **kwargs)
    if channels_last:
        out = out.movedim(1, -1)
    (out * torch.tensor(upstream)).sum().backward()
    return (
        out.detach().numpy(),
        t_images.grad.numpy(),
        t_grid.grad.numpy(),
    )


def normalized_axis(size, align_corners):
    """The normalized centres of `size` pixels (PyTorch's conventions)."""
    if size == 1:
        return np.zeros(1)
    index = np.arange(size)
    if align_corners:
        return 2 * index / (size - 1) - 1
    return (2 * index + 1) / size - 1


def normalized_mesh(size, align_corners):
    """The output pixels' `(x, y[, z])`, of shape `(*size, len(size))`."""
    axes = [normalized_axis(n, align_corners) for n in size]
    return np.stack(np.meshgrid(*axes, indexing="ij")[::-1], axis=-1)


def unnormalize(grid, size, align_corners):
    """PyTorch's `grid_sampler_unnormalize` along each axis of `grid`.

    Args:
        grid: normalized `(x, y[, z])` in the last axis.
        size: the input's `(height, width)` or `(depth, height, width)`.
        align_corners: PyTorch's convention.
    """
    sizes = np.array(size[::-1], dtype=np.float64)
    if align_corners:
        return (grid + 1.0) / 2.0 * (sizes - 1)
    return ((grid + 1.0) * sizes - 1.0) / 2.0


def scipy_warp(images, field, order=1, mode="nearest"):
    """`keras_stn.ops.warp` by `scipy.ndimage.map_coordinates`, in float64.

    Args:
        images: NumPy array `(batch, *spatial, channels)`.
        field: NumPy array `(batch, *spatial, rank)`, `"xy"` vectors in
            pixels.
        order: the spline order: 1 (bilinear) or 0 (nearest).
        mode: SciPy's mode beyond the edges (`"nearest"`: border padding).

    Returns:
        The warped images, channels last.
    """
    size = field.shape[1:-1]
    mesh = np.stack(np.meshgrid(*map(np.arange, size), indexing="ij"), -1)
    points = np.moveaxis(mesh + field[..., ::-1].astype("float64"), -1, 1)
    return np.stack(
        [
            np.stack(
                [
                    scipy.ndimage.map_coordinates(
                        example[..., c].astype("float64"),
                        example_points,
                        order=order,
                        mode=mode,
                    )
                    for c in range(images.shape[-1])
                ],
                axis=-1,
            )
            for example, example_points in zip(images, points, strict=True)
        ]
    )
