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
from timing import compiled_vjp
from timing import median_seconds

# name: (batch, *spatial, channels, *output_spatial)
SIZES = {
    "mnist": (128, 28, 28, 1, 28, 28),
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


def keras_stn_step(images, grid, upstream, implementation="auto"):
    """keras-stn's forward and backward pass, compiled, ready to call."""
    step = compiled_vjp(
        lambda x, g: grid_sample(
            x, g, data_format="channels_last", implementation=implementation
        )
    )
    tensors = backend_tensors(images, grid)
    (upstream,) = backend_tensors(upstream, requires_grad=False)
    return lambda: step(*tensors, upstream)


def torch_step(images, grid, upstream):
    """`torch.nn.functional.grid_sample` forward and backward, eager."""
    images = torch.tensor(np.moveaxis(images, -1, 1), requires_grad=True)
    grid = torch.tensor(grid, requires_grad=True)
    upstream = torch.tensor(np.moveaxis(upstream, -1, 1))

    def step():
        out = torch.nn.functional.grid_sample(images, grid, align_corners=False)
        return torch.autograd.grad(out, (images, grid), upstream)

    return step


def measure(name, repeats):
    """Time keras-stn and PyTorch at one named size.

    Args:
        name: a key of `SIZES` or `SCALING_SIZES`.
        repeats: timed rounds of each.

    Returns:
        A dict: size name and shape, backend, median seconds of keras-stn's
        default path (`implementation="auto"`), of PyTorch and of the
        generic `keras.ops` path (`"keras"`), and their ratios to
        PyTorch's.
    """
    size = {**SIZES, **SCALING_SIZES}[name]
    inputs = random_inputs(size)
    steps = {
        "keras_stn": keras_stn_step(*inputs),
        "torch": torch_step(*inputs),
        "keras_stn_generic": keras_stn_step(*inputs, "keras"),
    }
    seconds = median_seconds(steps, repeats)
    return {
        "size": name,
        "shape": size,
        "backend": BACKEND,
        **seconds,
        "ratio": seconds["keras_stn"] / seconds["torch"],
        "generic_ratio": seconds["keras_stn_generic"] / seconds["torch"],
    }


if __name__ == "__main__":
    benchmark_main(
        __doc__, measure, [*SIZES, *SCALING_SIZES], default=list(SIZES)
    )
