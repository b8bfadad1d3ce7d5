"""Measure what antialiased sampling buys when a transform zooms out.

For each kind of images and each zoom-out factor `f`, a batch of images is
warped by rotations of up to 0.5 radians (`warp_affine`, bilinear, zero
padding) to outputs of `1 / f` of the input's size per axis, so that the
grid's points are `f` input pixels apart. The reference renders the same
warps at 8 times the output's resolution with plain sampling and averages
each 8x8 block (a box filter of the bilinear image over each output
pixel). Prints one JSON line per kind and factor: the root-mean-square
error against the reference of plain sampling and of `antialias=True`, and
the median times of a forward and backward pass (gradients with respect to
the images and `theta`, compiled as `fit` compiles: `timing.compiled_vjp`)
of each, with their ratio.

Images: `checkerboard`, 16 checkerboards of 64x64 pixels in 2-pixel
squares; `mnist`, 64 test digits of MNIST padded to 32x32, in [0, 1]
(`examples/mnist_data.py` loads them).

    KERAS_BACKEND=torch python benchmarks/antialiasing.py

`benchmarks/run.py --goals antialiasing --backends torch` prints the rows
as a table.
"""

import sys
from pathlib import Path

import keras
import numpy as np

from keras_stn.ops import warp_affine

from timing import BACKEND
from timing import backend_tensors
from timing import benchmark_main
from timing import compiled_vjp
from timing import median_seconds

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

from mnist_data import DEFAULT_DATA  # noqa: E402
from mnist_data import load_mnist  # noqa: E402

ZOOMS = (1, 2, 4, 8)
SUPERSAMPLING = 8


def checkerboards(count=16, size=64, square=2):
    """`count` channels-last checkerboards of `square`-pixel squares."""
    index = np.arange(size) // square
    board = ((index[:, None] + index[None, :]) % 2).astype("float32")
    return np.tile(board[None, :, :, None], (count, 1, 1, 1))


def mnist_digits(count=64, path=DEFAULT_DATA):
    """The first `count` MNIST test digits, padded to 32x32, in [0, 1]."""
    _, (x_test, _) = load_mnist(path)
    digits = x_test[:count].astype("float32") / 255
    return np.pad(digits, ((0, 0), (2, 2), (2, 2)))[..., None]


IMAGES = {"checkerboard": checkerboards, "mnist": mnist_digits}


def rotations(batch, seed=0):
    """`(batch, 2, 3)` rotations of up to 0.5 radians, float32."""
    angle = np.random.default_rng(seed).uniform(-0.5, 0.5, batch)
    cos, sin, zero = np.cos(angle), np.sin(angle), np.zeros(batch)
    theta = np.stack(
        [np.stack([cos, -sin, zero], -1), np.stack([sin, cos, zero], -1)], 1
    )
    return theta.astype("float32")


def warp(images, theta, output_size, antialias):
    """`warp_affine` of channels-last images, as a NumPy array."""
    return keras.ops.convert_to_numpy(
        warp_affine(
            images,
            theta,
            output_size,
            data_format="channels_last",
            antialias=antialias,
        )
    )


def supersampled_reference(images, theta, output_size):
    """The warp rendered at 8x the output's resolution, box-filtered down."""
    batch, channels = images.shape[0], images.shape[-1]
    large = warp(
        images, theta, tuple(SUPERSAMPLING * s for s in output_size), False
    )
    blocks = large.reshape(
        batch,
        output_size[0],
        SUPERSAMPLING,
        output_size[1],
        SUPERSAMPLING,
        channels,
    )
    return blocks.mean(axis=(2, 4))


def errors(images, theta, output_size):
    """The RMSE of plain and antialiased sampling against the reference."""
    reference = supersampled_reference(images, theta, output_size)
    return [
        float(
            np.sqrt(
                np.mean((warp(images, theta, output_size, aa) - reference) ** 2)
            )
        )
        for aa in (False, True)
    ]


def pass_step(images, theta, output_size, antialias):
    """A compiled forward and backward pass, ready to call."""

    def forward(images, theta):
        return warp_affine(
            images,
            theta,
            output_size,
            data_format="channels_last",
            antialias=antialias,
        )

    step = compiled_vjp(forward)
    batch, channels = images.shape[0], images.shape[-1]
    (upstream,) = backend_tensors(
        np.ones((batch, *output_size, channels), "float32"),
        requires_grad=False,
    )
    tensors = backend_tensors(images, theta)
    return lambda: step(*tensors, upstream)


def measure(name, repeats):
    """The rows of one kind of images, one per zoom-out factor."""
    images = IMAGES[name]()
    theta = rotations(images.shape[0])
    rows = []
    for zoom in ZOOMS:
        output_size = tuple(size // zoom for size in images.shape[1:3])
        plain, antialiased = errors(images, theta, output_size)
        times = median_seconds(
            {
                "plain": pass_step(images, theta, output_size, False),
                "antialiased": pass_step(images, theta, output_size, True),
            },
            repeats,
        )
        rows.append(
            {
                "images": name,
                "shape": list(images.shape),
                "zoom": zoom,
                "backend": BACKEND,
                "plain_rmse": plain,
                "antialiased_rmse": antialiased,
                "error_ratio": antialiased / plain,
                "plain_time": times["plain"],
                "antialiased_time": times["antialiased"],
                "time_ratio": times["antialiased"] / times["plain"],
            }
        )
    return rows


if __name__ == "__main__":
    benchmark_main(__doc__, measure, IMAGES, option="--images")
