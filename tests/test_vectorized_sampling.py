"""The kernel's vectorized blocks: 2-D float32 images, every backend.

Where the images have up to seven channels in float32 (grey and colour
images, pairs of them, small feature maps), the C++ kernel samples blocks
of points with vectors across the points (16 with AVX-512, 8 with AVX2).
These tests call each backend's binding of the kernel (TensorFlow's op,
JAX's FFI call, torch's C function) with the grids a transformer makes and
with points past every edge: against PyTorch's `grid_sample` in float64,
and, for NaN and infinite points, against the kernel's scalar path, which
samples the same channels among eight with the same arithmetic.
"""

import importlib

import numpy as np
import pytest
from keras import ops

from keras_stn.ops.sampling.options import SamplingOptions

from helpers import BACKEND
from helpers import random_sampling_problem
from helpers import torch_grid_sample
from helpers import value_and_gradients

# The C++ kernel's binding on this backend.
kernel = importlib.import_module(
    "keras_stn.ops.sampling.cpp_kernel."
    + {
        "tensorflow": "tensorflow_ops",
        "jax": "jax_ffi",
        "torch": "torch_ctypes",
    }[BACKEND]
)

# 11 x 29 points per example: blocks of 16 (or 8) and a remainder.
SIZE = (3, 13, 21, 1, 11, 29)
# The counts that blocks take (up to seven), the extremes and the two
# commonest.
CHANNELS = (1, 2, 3, 7)
# Channels that the scalar path samples: the kernel's `kMaxBlockChannels`
# and one more.
SCALAR_CHANNELS = 8


def sizes_of(channels):
    """`SIZE` with `channels` channels."""
    return (*SIZE[:3], channels, *SIZE[4:])


def pytorch_in_float64(images, grid, upstream, padding_mode, align_corners):
    """PyTorch's `grid_sample` and its gradients, in float64."""
    return torch_grid_sample(
        images.astype("float64"),
        grid.astype("float64"),
        upstream.astype("float64"),
        "channels_last",
        padding_mode=padding_mode,
        align_corners=align_corners,
    )


def kernel_gradients(images, points, upstream, padding_mode, align_corners):
    """The kernel's output and gradients on this backend.

    `points` a normalized grid (for `align_corners` `False` or `True`), or
    a list of pixel coordinates per axis (for `align_corners=None`). The
    output is the loss's gradient with respect to `upstream`, so that it
    comes from the differentiated call, the one that runs the kernel.
    """

    normalized = align_corners is not None

    def loss(images, upstream, *points):
        points = list(points) if len(points) > 1 else points[0]
        options = SamplingOptions(
            "bilinear", padding_mode, bool(align_corners), normalized
        )
        output = kernel.sample(images, points, options)
        return ops.sum(output * upstream)

    arrays = points if isinstance(points, list) else [points]
    _, (grad_images, output, *grad_points) = value_and_gradients(
        loss, images, upstream, *arrays
    )
    return output, [grad_images, *grad_points]


@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("padding_mode", ("zeros", "border"))
@pytest.mark.parametrize("align_corners", (False, True))
def test_blocks_match_pytorch(channels, padding_mode, align_corners):
    images, grid, upstream = random_sampling_problem(0, sizes_of(channels))
    # A transformer's grid, zoomed out past the edges, beside the random
    # points: whole blocks inside, outside, and across the edges.
    grid[0] = np.stack(
        np.meshgrid(np.linspace(-1.5, 1.5, 29), np.linspace(-1, 1, 11)), -1
    )
    expected = pytorch_in_float64(
        images, grid, upstream, padding_mode, align_corners
    )
    output, gradients = kernel_gradients(
        images, grid, upstream, padding_mode, align_corners
    )
    np.testing.assert_allclose(output, expected[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gradients[0], expected[1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gradients[1], expected[2], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("channels", CHANNELS)
def test_points_per_axis_in_pixels_match_pytorch(channels):
    images, grid, upstream = random_sampling_problem(1, sizes_of(channels))
    expected = pytorch_in_float64(images, grid, upstream, "zeros", False)
    sizes = np.array([SIZE[2], SIZE[1]], "float64")
    pixels = ((grid.astype("float64") + 1) * sizes - 1) / 2
    points = [
        pixels[..., 0].astype("float32"),
        pixels[..., 1].astype("float32"),
    ]
    output, gradients = kernel_gradients(
        images, points, upstream, "zeros", None
    )
    np.testing.assert_allclose(output, expected[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gradients[0], expected[1], rtol=1e-5, atol=1e-5)
    # d(pixel) / d(grid) is size / 2 along each axis.
    grad_grid = np.stack(gradients[1:], -1) * sizes / 2
    np.testing.assert_allclose(grad_grid, expected[2], rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("padding_mode", ("zeros", "border"))
def test_nan_and_infinite_points_as_the_scalar_path(channels, padding_mode):
    images, grid, upstream = random_sampling_problem(2, sizes_of(channels))
    grid[0, 0, :8] = np.nan
    grid[0, 1, 3, 1] = np.nan
    grid[1, 0, :9, 0] = np.inf
    grid[1, 1, 2:12, 1] = -np.inf
    grid[2, 2, 5:21, 0] = 1e30
    output, gradients = kernel_gradients(
        images, grid, upstream, padding_mode, False
    )
    # With `SCALAR_CHANNELS` channels the scalar path runs; the channels
    # added, zero images under zero upstream, add exact zeros to the grid's
    # gradient.
    extra = [(0, 0)] * 3 + [(0, SCALAR_CHANNELS - channels)]
    more_images = np.pad(images, extra)
    more_upstream = np.pad(upstream, extra)
    scalar_output, scalar_gradients = kernel_gradients(
        more_images, grid, more_upstream, padding_mode, False
    )
    assert np.isnan(output).any()
    np.testing.assert_array_equal(output, scalar_output[..., :channels])
    np.testing.assert_array_equal(
        gradients[0], scalar_gradients[0][..., :channels]
    )
    np.testing.assert_array_equal(gradients[1], scalar_gradients[1])
