"""Time `warp` (a dense displacement field) against PyTorch's `grid_sample`.

For each size, keras-stn's `warp` (bilinear, or trilinear for volumes;
zero padding; channels last) of images by a smooth random field of a few
pixels, forward alone (compiled as `predict` compiles) and forward with the
gradients for the images and the field (as `fit` compiles), both its
default path and its generic `keras.ops` path, against the same warp in
PyTorch as VoxelMorph's PyTorch `SpatialTransformer` writes it: the field
added to the pixel mesh and normalized into a grid for
`torch.nn.functional.grid_sample` (`align_corners=False`) within each call,
the gradients taken for the images and the field. Same data, same process.
Prints one JSON line per size and pass.

    KERAS_BACKEND=jax python benchmarks/warp_speed.py --sizes volume
    KERAS_BACKEND=torch python benchmarks/warp_speed.py --sizes voxelmorph

`benchmarks/run.py --goals warp` runs it on every backend.
"""

import numpy as np
import torch

from keras_stn.ops import warp

from sampler_speed import keras_stn_step
from sampler_speed import ratio_row
from sampler_speed import torch_step
from timing import benchmark_main

# name: (batch, *spatial, channels); the field is (batch, *spatial, rank).
SIZES = {
    "volume": (1, 80, 96, 112, 1),
    "images": (8, 256, 256, 1),
    # Two brain MRI volumes at VoxelMorph's resolution: timed on request
    # (`--sizes voxelmorph`), a minute or more per backend on two cores.
    "voxelmorph": (2, 160, 192, 224, 1),
}
DEFAULT_SIZES = ("volume", "images")


def random_inputs(size, seed=0, amplitude=3.0):
    """Random channels-last images, a smooth field and an upstream gradient.

    Args:
        size: `(batch, *spatial, channels)`.
        seed: seed of the draws.
        amplitude: the field's largest component, in pixels.

    Returns:
        float32 `(images, field, upstream)` as NumPy arrays, channels last;
        the field's vectors are `(x, y[, z])`: a sum of sines along each
        axis, of random phases and a period of about 20 pixels.
    """
    rng = np.random.default_rng(seed)
    batch, spatial = size[0], size[1:-1]
    rank = len(spatial)
    images = rng.standard_normal(size, "float32")
    upstream = rng.standard_normal(size, "float32")
    mesh = np.meshgrid(*map(np.arange, spatial), indexing="ij")
    # phases[k, axis]: of component k's sine along `axis`, per example.
    phases = rng.uniform(0, 2 * np.pi, (rank, rank, batch, *[1] * rank))
    field = np.stack(
        [
            sum(
                np.sin(mesh[axis] / 3.0 + phases[k, axis])
                for axis in range(rank)
            )
            for k in range(rank)
        ],
        axis=-1,
    )
    field = amplitude / rank * field
    return images, field.astype("float32"), upstream


def grid_of_field(spatial):
    """PyTorch's map of an `"xy"` field in pixels to `grid_sample`'s grid.

    Args:
        spatial: the spatial sizes, `(height, width)` or `(depth, height,
            width)`.

    Returns:
        A function of a torch field `(batch, *spatial, rank)`: the pixel
        mesh plus the field, normalized for `align_corners=False`.
    """
    sizes = torch.tensor(spatial[::-1], dtype=torch.float32)
    mesh = torch.stack(
        torch.meshgrid(
            *[torch.arange(n, dtype=torch.float32) for n in spatial],
            indexing="ij",
        )[::-1],
        dim=-1,
    )
    return lambda field: (2 * (mesh + field) + 1) / sizes - 1


def steps(size, backward, device="cpu"):
    """keras-stn's two paths and PyTorch's warp at one size, ready to call.

    Args:
        size: `(batch, *spatial, channels)`.
        backward: whether a call also computes the gradients for the
            images and the field.
        device: the torch device of PyTorch's tensors.

    Returns:
        A dict of functions of no arguments, `"keras_stn"`, `"torch"` and
        `"keras_stn_generic"`, returning the output (channels last for
        keras-stn, first for PyTorch) and with `backward` the gradients for
        the images and the field.
    """
    inputs = random_inputs(size)
    options = {"sampler": warp, "backward": backward}
    return {
        "keras_stn": keras_stn_step(*inputs, **options),
        "torch": torch_step(
            *inputs, backward, device, to_grid=grid_of_field(size[1:-1])
        ),
        "keras_stn_generic": keras_stn_step(*inputs, "keras", **options),
    }


def measure(name, repeats):
    """Time keras-stn's `warp` and PyTorch's at one named size.

    Args:
        name: a key of `SIZES`.
        repeats: timed rounds of each.

    Returns:
        Two rows of `sampler_speed.ratio_row`, with their `"pass"`: the
        forward pass alone, then with the backward pass.
    """
    rows = []
    for backward in (False, True):
        row = ratio_row(
            name, SIZES[name], steps(SIZES[name], backward), repeats
        )
        row["pass"] = "forward+backward" if backward else "forward"
        rows.append(row)
    return rows


if __name__ == "__main__":
    benchmark_main(__doc__, measure, SIZES, DEFAULT_SIZES)
