"""Time the sampler's forward and backward pass against PyTorch's kernel.

For each size, keras-stn's `grid_sample` (bilinear, or trilinear for
volumes; zero padding; channels last), with the gradients for the images
and the grid, compiled as `fit` compiles on the current backend
(`timing.compiled_vjp`), both its default path and its generic `keras.ops`
path (`implementation="keras"`), against `torch.nn.functional.grid_sample`
forward and backward on the same data (channels first, eager), in the same
process. Prints one JSON line per size.

    KERAS_BACKEND=jax python benchmarks/sampler_speed.py --sizes mnist

`benchmarks/run.py` runs it on every backend and prints the ratios.
"""

import numpy as np
import torch

from keras_stn.ops import grid_sample

from timing import BACKEND
from timing import backend_tensors
from timing import benchmark_main
from timing import compiled_forward
from timing import compiled_vjp
from timing import median_seconds

# name: (batch, *spatial, channels, *output_spatial)
SIZES = {
    "mnist": (128, 28, 28, 1, 28, 28),
    # The MNIST addition's two-digit inputs, as its transformers view them.
    "pairs": (64, 42, 42, 2, 28, 28),
    "feature_map": (32, 64, 64, 32, 64, 64),
    "volume": (8, 32, 32, 32, 8, 32, 32, 32),
}
# Output pixels x channels, for the scaling table: the input is 64x64.
SCALING_SIZES = {
    f"scaling_{side}x{side}x{channels}": (8, 64, 64, channels, side, side)
    for side in (32, 64, 128)
    for channels in (4, 16, 64)
}


def random_inputs(size, seed=0):
    """Random channels-last images, a grid over [-1.1, 1.1] and upstream.

    Args:
        size: `(batch, *spatial, channels, *output_spatial)`.
        seed: seed of the draws.

    Returns:
        float32 `(images, grid, upstream)` as NumPy arrays, channels last.
    """
    rank = (len(size) - 2) // 2
    batch, spatial = size[0], size[1 : rank + 1]
    channels, output = size[rank + 1], size[rank + 2 :]
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((batch, *spatial, channels), "float32")
    grid = rng.uniform(-1.1, 1.1, (batch, *output, rank)).astype("float32")
    upstream = rng.standard_normal((batch, *output, channels), "float32")
    return images, grid, upstream


def keras_stn_step(
    images,
    grid,
    upstream,
    implementation="auto",
    backward=True,
    sampler=grid_sample,
    **options,
):
    """keras-stn's forward (and backward) pass, compiled, ready to call.

    Args:
        images, grid, upstream: NumPy arrays, as `random_inputs` returns
            them; converted to tensors of the backend's default device.
        implementation: `grid_sample`'s `implementation`.
        backward: whether a call computes the gradients for the images and
            the grid too (compiled as `fit` compiles, `timing.compiled_vjp`),
            or the forward pass alone (as `predict` compiles).
        sampler: the function timed: `grid_sample`, or another of the same
            arguments, such as `keras_stn.ops.warp` (whose `grid` is a
            displacement field).
        **options: more arguments of `sampler`: `mode`, `padding_mode`,
            `align_corners`.

    Returns:
        A function of no arguments that returns the channels-last output,
        and with `backward` `(output, (grad_images, grad_grid))`.
    """

    def sample(x, g):
        return sampler(
            x,
            g,
            data_format="channels_last",
            implementation=implementation,
            **options,
        )

    tensors = backend_tensors(images, grid, requires_grad=backward)
    if not backward:
        forward = compiled_forward(sample)
        return lambda: forward(*tensors)
    step = compiled_vjp(sample)
    (upstream,) = backend_tensors(upstream, requires_grad=False)
    return lambda: step(*tensors, upstream)


def torch_step(
    images,
    grid,
    upstream,
    backward=True,
    device="cpu",
    to_grid=None,
    **options,
):
    """`torch.nn.functional.grid_sample` forward (and backward), eager.

    Args:
        images, grid, upstream: NumPy arrays, as `random_inputs` returns
            them (channels last; moved first here).
        backward: whether a call computes the gradients for the images and
            the grid too.
        device: the torch device of the tensors, such as `"cuda"`.
        to_grid: `None`, or a function of torch tensors computing, within
            each call, `grid_sample`'s grid from the tensor of `grid` (a
            displacement field, say), whose gradient is then computed.
        **options: more arguments of `grid_sample`: `mode`, `padding_mode`,
            `align_corners` (default `False`).

    Returns:
        A function of no arguments that returns the channels-first output,
        and with `backward` `(output, (grad_images, grad_grid))`.
    """
    options = {"align_corners": False, **options}
    images = torch.tensor(
        np.moveaxis(images, -1, 1), device=device, requires_grad=backward
    )
    grid = torch.tensor(grid, device=device, requires_grad=backward)
    upstream = torch.tensor(np.moveaxis(upstream, -1, 1), device=device)

    def step():
        points = grid if to_grid is None else to_grid(grid)
        out = torch.nn.functional.grid_sample(images, points, **options)
        if not backward:
            return out
        return out, torch.autograd.grad(out, (images, grid), upstream)

    return step


def measure_size(name, size, repeats, backward=True, device="cpu"):
    """Time keras-stn and PyTorch at one size.

    Args:
        name: the size's name, for the row.
        size: `(batch, *spatial, channels, *output_spatial)`.
        repeats: timed rounds of each.
        backward: whether to time forward and backward passes (gradients
            for the images and the grid), or forward passes alone.
        device: the torch device of PyTorch's tensors; keras-stn's are on
            the backend's default device.

    Returns:
        A dict: size name and shape, backend, median seconds of keras-stn's
        default path (`implementation="auto"`), of PyTorch and of the
        generic `keras.ops` path (`"keras"`), and their ratios to PyTorch's.
    """
    inputs = random_inputs(size)
    steps = {
        "keras_stn": keras_stn_step(*inputs, backward=backward),
        "torch": torch_step(*inputs, backward=backward, device=device),
        "keras_stn_generic": keras_stn_step(*inputs, "keras", backward),
    }
    return ratio_row(name, size, steps, repeats)


def ratio_row(name, shape, steps, repeats):
    """Time keras-stn's two paths and PyTorch; their ratios as a row.

    Args:
        name: the size's name, for the row.
        shape: the size's shape, for the row.
        steps: functions of no arguments, as `median_seconds` takes them,
            named `"keras_stn"`, `"torch"` and `"keras_stn_generic"`.
        repeats: timed rounds of each.

    Returns:
        A dict: size name and shape, backend, median seconds of each step,
        and the ratios of keras-stn's to PyTorch's (`ratio` for the
        default path, `generic_ratio` for the generic one).
    """
    seconds = median_seconds(steps, repeats)
    row = {
        "size": name,
        "shape": shape,
        "backend": BACKEND,
        **seconds,
        "ratio": seconds["keras_stn"] / seconds["torch"],
    }
    row["generic_ratio"] = seconds["keras_stn_generic"] / seconds["torch"]
    return row


def measure(name, repeats):
    """Time keras-stn and PyTorch at one named size, forward and backward.

    Args:
        name: a key of `SIZES` or `SCALING_SIZES`.
        repeats: timed rounds of each.

    Returns:
        The row of `measure_size`, on the CPU.
    """
    return measure_size(name, {**SIZES, **SCALING_SIZES}[name], repeats)


if __name__ == "__main__":
    benchmark_main(
        __doc__, measure, [*SIZES, *SCALING_SIZES], default=list(SIZES)
    )
