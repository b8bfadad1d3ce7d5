"""Timing helpers shared by the benchmarks: compiled gradients and medians.

Each benchmark process runs on one backend, the one `KERAS_BACKEND` selects,
and times keras-stn side by side with PyTorch in that same process, so that
a ratio compares two measurements taken under the same machine load.
"""

import sys
import time

import keras
import numpy as np

BACKEND = keras.backend.backend()


def compiled_vjp(fn):
    """Compile `fn` and its backward pass the way each backend's `fit` does.

    That is `tf.function` without XLA on TensorFlow (Keras' `jit_compile=
    "auto"` gives no XLA on a CPU), `jax.jit` on JAX and eager autograd on
    torch.

    Args:
        fn: maps backend tensors to one tensor, using `keras.ops`.

    Returns:
        A function of the same tensors and an upstream gradient (shaped as
        `fn`'s output) returning `fn`'s output and the gradients with
        respect to every argument, as `torch.autograd.grad` with
        `grad_outputs` does (zeros for an argument that the output does
        not depend on, such as the grid of nearest sampling).
    """
    if BACKEND == "tensorflow":
        import tensorflow as tf

        def tensorflow_vjp(*tensors_and_upstream):
            *tensors, upstream = tensors_and_upstream
            with tf.GradientTape() as tape:
                tape.watch(tensors)
                output = fn(*tensors)
            gradients = tape.gradient(
                output,
                tensors,
                upstream,
                unconnected_gradients=tf.UnconnectedGradients.ZERO,
            )
            return output, gradients

        return tf.function(tensorflow_vjp)
    if BACKEND == "jax":
        import jax

        def jax_vjp(*tensors_and_upstream):
            *tensors, upstream = tensors_and_upstream
            output, backward = jax.vjp(fn, *tensors)
            return output, backward(upstream)

        return jax.jit(jax_vjp)
    import torch

    def torch_vjp(*tensors_and_upstream):
        *tensors, upstream = tensors_and_upstream
        output = fn(*tensors)
        gradients = torch.autograd.grad(
            output,
            tensors,
            upstream,
            allow_unused=True,
            materialize_grads=True,
        )
        return output, gradients

    return torch_vjp


def compiled_forward(fn):
    """Compile `fn` the way each backend's `predict` does.

    That is `tf.function` on TensorFlow, `jax.jit` on JAX and eager calls
    on torch.

    Args:
        fn: maps backend tensors to one tensor, using `keras.ops`.

    Returns:
        The compiled function, of the same tensors.
    """
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.function(fn)
    if BACKEND == "jax":
        import jax

        return jax.jit(fn)
    return fn


def backend_tensors(*arrays, requires_grad=True):
    """Convert NumPy arrays to backend tensors.

    Args:
        *arrays: the arrays.
        requires_grad: on torch, whether autograd tracks the tensors.

    Returns:
        A list of backend tensors.
    """
    tensors = [keras.ops.convert_to_tensor(a) for a in arrays]
    if BACKEND == "torch":
        tensors = [t.detach().requires_grad_(requires_grad) for t in tensors]
    return tensors


def wait(results):
    """Block until every array in `results` (nested lists) is computed.

    JAX arrays are waited for, and where PyTorch has started working on a
    GPU, every CUDA kernel queued so far (PyTorch's and, on the torch
    backend, keras-stn's): CUDA calls return before their kernels run.
    """
    if BACKEND == "jax":
        import jax

        jax.block_until_ready(results)
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def median_seconds(functions, repeats, warmup=3, sample_seconds=0.02):
    """Time functions in interleaved rounds; return each one's median.

    Every round calls each function in turn, so that a change in the
    machine's load affects all of them alike. A function faster than
    `sample_seconds` is called that many times over per round (counted in
    the last warm-up round) and the time divided, so that a sample of a
    1 ms call is not one scheduler tick's worth of noise.

    Args:
        functions: a dict from name to a function of no arguments whose
            return value `wait` can block on.
        repeats: the number of timed rounds.
        warmup: untimed rounds first (compilation, caches).
        sample_seconds: the least time that one round gives each function.

    Returns:
        A dict from name to the median wall time of one call, in seconds.
    """
    calls = dict.fromkeys(functions, 1)
    times = {name: [] for name in functions}
    for round_index in range(warmup + repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            for _ in range(calls[name]):
                wait(function())
            seconds = (time.perf_counter() - start) / calls[name]
            if round_index == warmup - 1:
                calls[name] = max(1, round(sample_seconds / seconds))
            if round_index >= warmup:
                times[name].append(seconds)
    return {name: float(np.median(values)) for name, values in times.items()}
