"""`grid_sample` against PyTorch's, and against finite differences."""

import itertools

import numpy as np
import pytest
from keras import ops

from keras_stn.ops import grid_sample
from keras_stn.ops.coordinates import normalized_coordinates

from helpers import assert_gradients_match_finite_differences
from helpers import float64_enabled
from helpers import random_images_and_upstream
from helpers import torch_grid_sample
from helpers import value_and_gradients

MODES = ("bilinear", "nearest", "bicubic")
VOLUME_MODES = ("bilinear", "nearest")  # bicubic samples images only
PADDINGS = ("zeros", "border", "reflection")
DATA_FORMATS = ("channels_last", "channels_first")
# (batch, height, width, channels, out_height, out_width)
SIZES = [(2, 5, 7, 3, 4, 6), (1, 8, 8, 1, 8, 8), (3, 1, 4, 4, 3, 2)]
# (batch, depth, height, width, channels, out_depth, out_height, out_width)
VOLUME_SIZES = [(2, 4, 5, 6, 3, 3, 4, 5), (1, 3, 1, 4, 2, 2, 3, 2)]


def make_grid(rng, size, corners):
    """Points inside, outside, on the border and on pixel centres."""
    rank = (len(size) - 2) // 2
    batch, input_size, output_size = size[0], size[1 : rank + 1], size[-rank:]
    grid = rng.uniform(-1.3, 1.3, (batch, *output_size, rank))
    flat = grid.reshape(batch, -1, rank)
    centres = [normalized_coordinates(n, corners) for n in input_size[::-1]]
    xs, ys = centres[:2]
    special = [(-1.0, -1.0), (1.0, 1.0), (-1.0, 0.3), (0.2, 1.0)]
    special += [(xs[0], ys[-1]), (xs[-1], ys[0]), (xs[len(xs) // 2], 0.0)]
    if rank == 3:
        zs = centres[2]
        depths = [-1.0, 1.0, 1.0, -0.4, zs[len(zs) // 2], zs[-1], zs[0]]
        special = [(*xy, z) for xy, z in zip(special, depths, strict=True)]
    count = min(len(special), flat.shape[1])
    flat[:, :count] = special[:count]
    return grid.astype("float32")


def sampler_cases(modes, sizes):
    return list(
        itertools.product(modes, PADDINGS, (False, True), DATA_FORMATS, sizes)
    )


@pytest.mark.parametrize(
    "mode,padding_mode,align_corners,data_format,size",
    sampler_cases(MODES, SIZES) + sampler_cases(VOLUME_MODES, VOLUME_SIZES),
)
def test_matches_torch(mode, padding_mode, align_corners, data_format, size):
    rng = np.random.default_rng(sum(size))
    grid = make_grid(rng, size, align_corners)
    images, upstream = random_images_and_upstream(rng, size, data_format)
    kwargs = dict(
        mode=mode, padding_mode=padding_mode, align_corners=align_corners
    )

    def loss(images, grid):
        out = grid_sample(images, grid, data_format=data_format, **kwargs)
        return ops.sum(ops.multiply(out, upstream))

    out = grid_sample(images, grid, data_format=data_format, **kwargs)
    _, (grad_images, grad_grid) = value_and_gradients(loss, images, grid)
    expected, expected_images, expected_grid = torch_grid_sample(
        images, grid, upstream, data_format, **kwargs
    )
    assert out.shape == expected.shape
    np.testing.assert_allclose(
        ops.convert_to_numpy(out), expected, atol=1e-5, rtol=1e-5
    )
    np.testing.assert_allclose(grad_images, expected_images, atol=1e-4)
    np.testing.assert_allclose(grad_grid, expected_grid, atol=1e-4, rtol=1e-4)


def off_kink_grid(rng, shape, input_size, align_corners):
    """A float64 grid whose pixel coordinates keep 0.1 px from any kink.

    Kinks of the sampled function (or, for bicubic, of its derivative) lie
    on integer pixel coordinates and on the mirror lines of reflection
    padding, which are integers or half-integers, so fractional parts are
    drawn from (0.1, 0.4) and (0.6, 0.9).
    """
    sizes = input_size[::-1]
    shape = (*shape, len(sizes))
    fraction = rng.uniform(0.1, 0.4, shape) + 0.5 * rng.integers(0, 2, shape)
    pixels = (
        np.stack(
            [rng.integers(-n - 2, 2 * n + 2, shape[:-1]) for n in sizes],
            axis=-1,
        )
        + fraction
    )
    sizes = np.array(sizes, dtype=np.float64)
    if align_corners:
        return pixels * 2.0 / (sizes - 1) - 1.0
    return (2.0 * pixels + 1.0) / sizes - 1.0


@pytest.mark.parametrize(
    "mode,input_size,output_size",
    [
        ("bilinear", (5, 6), (4, 3)),
        ("bilinear", (3, 5, 4), (2, 4, 3)),
        ("bicubic", (5, 6), (4, 3)),
    ],
)
@pytest.mark.parametrize(
    "padding_mode,align_corners",
    list(itertools.product(PADDINGS, (False, True))),
)
def test_gradients_match_finite_differences(
    mode, input_size, output_size, padding_mode, align_corners
):
    rng = np.random.default_rng(7)
    batch, channels = 2, 3
    images = rng.normal(size=(batch, *input_size, channels))
    grid = off_kink_grid(rng, (batch, *output_size), input_size, align_corners)
    upstream = rng.normal(size=(batch, *output_size, channels))

    def loss(images, grid):
        out = grid_sample(
            images,
            grid,
            mode=mode,
            padding_mode=padding_mode,
            align_corners=align_corners,
            data_format="channels_last",
        )
        return ops.sum(ops.multiply(out, upstream))

    # Central differences err by O(step**2) times the third derivative,
    # which is zero for (tri)linear weights but not for cubic ones (about
    # 1e-7 relative at this step).
    rtol = 1e-6 if mode == "bicubic" else 1e-7
    assert_gradients_match_finite_differences(
        loss, [images, grid], rng, step=1e-5, rtol=rtol
    )


def test_float64_matches_torch():
    rng = np.random.default_rng(3)
    images = rng.normal(size=(2, 6, 5, 2))
    grid = rng.uniform(-1.2, 1.2, (2, 3, 4, 2))
    upstream = np.ones((2, 3, 4, 2))
    with float64_enabled():
        out = grid_sample(images, grid, data_format="channels_last")
        assert ops.convert_to_numpy(out).dtype == np.float64
    expected, _, _ = torch_grid_sample(
        images, grid, upstream, "channels_last", align_corners=False
    )
    np.testing.assert_allclose(ops.convert_to_numpy(out), expected, atol=1e-12)


def test_default_data_format_follows_keras_config():
    images = np.arange(6, dtype="float32").reshape(1, 2, 3, 1)
    grid = np.zeros((1, 1, 1, 2), "float32")
    out = grid_sample(images, grid)
    assert tuple(out.shape) == (1, 1, 1, 1)
    np.testing.assert_allclose(ops.convert_to_numpy(out)[0, 0, 0, 0], 2.5)


@pytest.mark.parametrize(
    "images_shape,grid_shape,kwargs,match",
    [
        ((2, 4, 4), (2, 3, 3, 2), {}, "`images`.*rank|shape"),
        ((2, 4, 4, 1), (2, 3, 3, 3), {}, "`grid`"),
        ((2, 4, 4, 1), (2, 9, 2), {}, "`grid`"),
        ((2, 4, 4, 1), (3, 3, 3, 2), {}, "same batch size"),
        ((2, 4, 4, 1), (2, 3, 3, 2), {"mode": "area"}, "`mode`"),
        ((2, 4, 4, 1), (2, 3, 3, 2), {"padding_mode": "wrap"}, "padding_mode"),
        ((2, 4, 4, 1), (2, 3, 3, 2), {"data_format": "NHWC"}, "data_format"),
        ((2, 3, 4, 4, 1), (2, 2, 3, 3, 3), {"mode": "bicubic"}, "`mode`"),
        ((2, 3, 4, 4, 1), (2, 2, 3, 3, 2), {}, "`grid`"),
        ((2, 3, 4, 4, 1), (2, 3, 3, 3), {}, "`grid`"),
        ((2, 3, 4, 4, 1, 1), (2, 2, 3, 3, 3), {}, "`images`"),
    ],
)
def test_bad_arguments(images_shape, grid_shape, kwargs, match):
    images = np.zeros(images_shape, "float32")
    grid = np.zeros(grid_shape, "float32")
    with pytest.raises(ValueError, match=match):
        grid_sample(images, grid, **kwargs)


@pytest.mark.parametrize("argument", ["images", "grid"])
def test_integer_dtype_is_rejected(argument):
    arrays = {
        "images": np.zeros((1, 4, 4, 1), "float32"),
        "grid": np.zeros((1, 2, 2, 2), "float32"),
    }
    arrays[argument] = arrays[argument].astype("int32")
    with pytest.raises(ValueError, match=f"`{argument}`.*floating-point"):
        grid_sample(arrays["images"], arrays["grid"])
