"""Helpers shared by the benchmarks: compiled gradients, medians, the CLI.

Each benchmark process runs on one backend, the one `KERAS_BACKEND` selects,
and times keras-stn side by side with PyTorch in that same process, so that
a ratio compares two measurements taken under the same machine load.
"""

import argparse
import json
import sys
import time
from collections.abc import Callable
from collections.abc import Iterable

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


def round_seconds(
    functions, repeats, warmup=3, sample_seconds=0.02, settle_seconds=0.05
):
    """Time functions in interleaved rounds; return each one's times.

    Every round calls each function in turn, so that a change in the
    machine's load affects all of them alike. A function faster than
    `sample_seconds` is called that many times over per round (counted in
    the last warm-up round) and the time divided, so that a sample of a
    1 ms call is not one scheduler tick's worth of noise. Each sample
    starts `settle_seconds` after the previous one ends, and after one
    untimed call: PyTorch's OpenMP threads spin for milliseconds after its
    last operation, and on a 2-core CPU they took a core from whatever ran
    next in the process (TensorFlow's predict step at 128x28x28x1 took
    0.29 ms right after PyTorch's `grid_sample`, 0.15-0.16 ms without it
    or 20-50 ms later); after the pause, the first call wakes the
    function's own threads (a training step of 16x64x64x3 took 4.5 ms
    50 ms after the last op, 1.7 ms right after one).

    Args:
        functions: a dict from name to a function of no arguments whose
            return value `wait` can block on.
        repeats: the number of timed rounds.
        warmup: untimed rounds first (compilation, caches).
        sample_seconds: the least time that one round gives each function.
        settle_seconds: the pause before each sample.

    Returns:
        A dict from name to the list of `repeats` wall times of one call,
        in seconds, one per round.
    """
    calls = dict.fromkeys(functions, 1)
    times = {name: [] for name in functions}
    for round_index in range(warmup + repeats):
        for name, function in functions.items():
            time.sleep(settle_seconds)
            wait(function())
            start = time.perf_counter()
            for _ in range(calls[name]):
                wait(function())
            seconds = (time.perf_counter() - start) / calls[name]
            if round_index == warmup - 1:
                calls[name] = max(1, round(sample_seconds / seconds))
            if round_index >= warmup:
                times[name].append(seconds)
    return times


def median_seconds(functions, repeats, warmup=3, sample_seconds=0.02):
    """`round_seconds`, each function's median: a dict from name to the
    median wall time of one call, in seconds."""
    times = round_seconds(functions, repeats, warmup, sample_seconds)
    return {name: float(np.median(values)) for name, values in times.items()}


def benchmark_main(
    description: str,
    measure: Callable[[str, int], dict | list[dict]],
    names: Iterable[str],
    default: Iterable[str] | None = None,
    option: str = "--sizes",
) -> None:
    """The command line of a benchmark script: time the named cases and
    print one JSON line per row, for `run.py` to read.

    Parses `option` (which of `names` to time, `default` or all of them by
    default) and `--repeats` (timed rounds, 20 by default), then calls
    `measure(name, repeats)` for each chosen name in turn.

    Args:
        description: the script's docstring; its first line is the help.
        measure: maps a name and the number of repeats to a row (a dict
            that `json.dumps` takes) or a list of rows.
        names: the names `option` accepts.
        default: the names timed without `option`, or `None` for all.
        option: the option that selects the names, such as `"--sizes"`.
    """
    names = list(names)
    parser = argparse.ArgumentParser(description=description.split("\n")[0])
    parser.add_argument(
        option,
        dest="names",
        nargs="+",
        choices=names,
        default=list(names if default is None else default),
        help="what to time (default: %(default)s)",
    )
    add_repeats_option(parser)
    args = parser.parse_args()
    for name in args.names:
        rows = measure(name, args.repeats)
        for row in [rows] if isinstance(rows, dict) else rows:
            print(json.dumps(row), flush=True)


def add_repeats_option(
    parser: argparse.ArgumentParser,
    default: int = 20,
    help: str = "timed rounds, after warm-up",
) -> None:
    """Add the benchmarks' `--repeats` option to `parser`.

    Args:
        parser: the command line's parser.
        default: the value without the option.
        help: what the option counts; its default is added.
    """
    parser.add_argument(
        "--repeats",
        type=int,
        default=default,
        help=f"{help} (default: %(default)s)",
    )
