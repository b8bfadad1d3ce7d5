"""Print the largest differences between keras-stn and PyTorch's sampler.

For every mode, padding mode, `align_corners` and data format, samples
random images at random grids (inside, on and outside the border) and
compares the output and the gradients with respect to the images and the
grid against `torch.nn.functional.grid_sample`; then the same for the
gradient with respect to theta of `warp_affine` against `affine_grid` +
`grid_sample`. Runs on the backend that `KERAS_BACKEND` selects:

    KERAS_BACKEND=jax python benchmarks/oracle_errors.py
"""

import itertools
import sys
from pathlib import Path

import keras
import numpy as np
import torch
from keras import ops

from keras_stn.ops import grid_sample
from keras_stn.ops import warp_affine

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import random_images_and_upstream  # noqa: E402
from helpers import torch_grid_sample  # noqa: E402
from helpers import value_and_gradients  # noqa: E402

# (batch, height, width, channels, out_height, out_width)
SIZES = [(4, 28, 28, 1, 28, 28), (2, 17, 23, 5, 31, 9), (2, 64, 64, 8, 32, 32)]


def grid_sample_errors(mode, padding_mode, align_corners, data_format, rng):
    """Largest absolute errors of output and gradients over `SIZES`."""
    worst = np.zeros(3)
    for size in SIZES:
        images, upstream = random_images_and_upstream(rng, size, data_format)
        batch, _, _, _, out_h, out_w = size
        grid = rng.uniform(-1.2, 1.2, (batch, out_h, out_w, 2)).astype(
            "float32"
        )
        kwargs = dict(
            mode=mode, padding_mode=padding_mode, align_corners=align_corners
        )

        def loss(images, grid, kwargs=kwargs, upstream=upstream):
            out = grid_sample(images, grid, data_format=data_format, **kwargs)
            return ops.sum(ops.multiply(out, upstream))

        out = grid_sample(images, grid, data_format=data_format, **kwargs)
        _, grads = value_and_gradients(loss, images, grid)
        expected = torch_grid_sample(
            images, grid, upstream, data_format, **kwargs
        )
        ours = [ops.convert_to_numpy(out), *grads]
        errors = [
            np.abs(a - b).max() for a, b in zip(ours, expected, strict=True)
        ]
        worst = np.maximum(worst, errors)
    return worst


def theta_gradient_errors(padding_mode, align_corners, rng):
    """Relative errors of the theta gradient of `warp_affine`.

    Returns the largest difference of keras-stn's float32 gradient from
    PyTorch's in float32 and in float64, and of PyTorch's float32 gradient
    from its float64 one, each divided by the largest float64 value. A
    sampling point within rounding of an integer pixel coordinate sits on
    the kink of bilinear interpolation, where the two float32 computations
    may take different sides; float64 says which side is right.
    """
    images = rng.normal(size=(4, 28, 28, 3)).astype("float32")
    theta = (np.eye(2, 3) + rng.normal(0, 0.2, (4, 2, 3))).astype("float32")
    upstream = rng.normal(size=(4, 20, 20, 3)).astype("float32")

    def loss(theta):
        out = warp_affine(
            images,
            theta,
            (20, 20),
            padding_mode=padding_mode,
            align_corners=align_corners,
            data_format="channels_last",
        )
        return ops.sum(ops.multiply(out, upstream))

    _, (grad,) = value_and_gradients(loss, theta)
    torch_grads = []
    for dtype in (torch.float32, torch.float64):
        t_theta = torch.tensor(theta, dtype=dtype, requires_grad=True)
        t_grid = torch.nn.functional.affine_grid(
            t_theta, (4, 3, 20, 20), align_corners=align_corners
        )
        t_out = torch.nn.functional.grid_sample(
            torch.tensor(images, dtype=dtype).permute(0, 3, 1, 2),
            t_grid,
            padding_mode=padding_mode,
            align_corners=align_corners,
        ).permute(0, 2, 3, 1)
        (t_out * torch.tensor(upstream, dtype=dtype)).sum().backward()
        torch_grads.append(t_theta.grad.numpy())
    torch32, torch64 = torch_grads
    scale = np.abs(torch64).max()
    pairs = [(grad, torch32), (grad, torch64), (torch32, torch64)]
    return [np.abs(a - b).max() / scale for a, b in pairs]


def main():
    rng = np.random.default_rng(0)
    print(f"backend: {keras.backend.backend()}, float32")
    print("grid_sample: max |ours - torch| over sizes", SIZES)
    print(
        f"{'mode':9} {'padding':11} {'corners':8} {'format':15} "
        f"{'output':>9} {'d images':>9} {'d grid':>9}"
    )
    worst = np.zeros(3)
    for mode, padding_mode, corners, data_format in itertools.product(
        ("bilinear", "nearest"),
        ("zeros", "border", "reflection"),
        (False, True),
        ("channels_last", "channels_first"),
    ):
        errors = grid_sample_errors(
            mode, padding_mode, corners, data_format, rng
        )
        worst = np.maximum(worst, errors)
        print(
            f"{mode:9} {padding_mode:11} {corners!s:8} {data_format:15} "
            + " ".join(f"{e:9.2e}" for e in errors)
        )
    print("worst:", " ".join(f"{e:.2e}" for e in worst))
    print("warp_affine: max |d theta difference| / max |d theta|")
    print(
        f"{'padding':11} {'corners':8} {'vs torch32':>11} {'vs torch64':>11} "
        f"{'torch32 vs 64':>14}"
    )
    for padding_mode, corners in itertools.product(
        ("zeros", "border", "reflection"), (False, True)
    ):
        errors = theta_gradient_errors(padding_mode, corners, rng)
        print(
            f"{padding_mode:11} {corners!s:8} "
            + " ".join(f"{e:11.2e}" for e in errors)
        )


if __name__ == "__main__":
    main()
