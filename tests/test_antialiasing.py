"""Antialiased sampling (`antialias=True`) against NumPy and PyTorch."""

import keras
import numpy as np
import pytest
import torch
from keras import ops

from keras_stn import SpatialTransformer
from keras_stn.ops import affine_grid
from keras_stn.ops import grid_sample
from keras_stn.ops import warp_affine
from keras_stn.ops.sampling.antialiasing import sampling_level

from helpers import assert_gradients_match_finite_differences
from helpers import value_and_gradients


def affine(scale_x, scale_y=None, angle=0.0, shift=(0.0, 0.0), batch=1):
    """A batch of `theta`: scales (above 1 zooms out), a rotation, a shift."""
    scale_y = scale_x if scale_y is None else scale_y
    cos, sin = np.cos(angle), np.sin(angle)
    theta = [
        [scale_x * cos, -scale_y * sin, shift[0]],
        [scale_x * sin, scale_y * cos, shift[1]],
    ]
    return np.tile(np.array(theta, "float32"), (batch, 1, 1))


def block_means(images, factor):
    """The mean of each `factor`-sized block of channels-last images."""
    shape = [images.shape[0]]
    for size in images.shape[1:-1]:
        shape.extend((size // factor, factor))
    means = images.reshape(*shape, images.shape[-1])
    return means.mean(axis=tuple(range(2, 2 * images.ndim - 3, 2)))


def checkerboard(size, square):
    """A `(1, size, size, 1)` checkerboard of `square`-pixel squares."""
    index = np.arange(size) // square
    board = (index[:, None] + index[None, :]) % 2
    return board.astype("float32")[None, :, :, None]


def torch_warp(images, theta, output_size):
    """PyTorch's affine_grid + grid_sample of channels-last images."""
    x = torch.from_numpy(np.moveaxis(images, -1, 1))
    grid = torch.nn.functional.affine_grid(
        torch.from_numpy(theta),
        (x.shape[0], x.shape[1], *output_size),
        align_corners=False,
    )
    out = torch.nn.functional.grid_sample(x, grid, align_corners=False)
    return np.moveaxis(out.numpy(), 1, -1)


@pytest.mark.parametrize(
    "mode,align_corners",
    [
        ("bilinear", False),
        ("bilinear", True),
        ("nearest", False),
        ("bicubic", True),
    ],
)
def test_identity_and_zooming_in_sample_as_without_antialiasing(
    mode, align_corners
):
    images = np.random.default_rng(0).random((2, 9, 12, 3)).astype("float32")
    for theta in (affine(1.0, batch=2), affine(0.6, 0.8, 0.3, batch=2)):
        plain, antialiased = (
            ops.convert_to_numpy(
                warp_affine(
                    images,
                    theta,
                    mode=mode,
                    align_corners=align_corners,
                    data_format="channels_last",
                    antialias=antialias,
                )
            )
            for antialias in (False, True)
        )
        np.testing.assert_array_equal(antialiased, plain)
        grid = affine_grid(theta, (9, 12), align_corners=align_corners)
        plain, antialiased = (
            ops.convert_to_numpy(
                grid_sample(
                    images,
                    grid,
                    mode=mode,
                    align_corners=align_corners,
                    data_format="channels_last",
                    antialias=antialias,
                )
            )
            for antialias in (False, True)
        )
        # Equal up to the rounding of the normalized grid (float32 tolerance:
        # the spacing of the identity's grid in pixels is 1 +- 4e-7).
        np.testing.assert_allclose(antialiased, plain, atol=1e-5)


@pytest.mark.parametrize("factor", [2, 4])
@pytest.mark.parametrize("spatial", [(8, 16), (8, 4, 8)])
def test_zooming_out_by_a_power_of_two_gives_block_means(factor, spatial):
    """Points on the centres of level `log2(factor)`'s pixels read them."""
    rng = np.random.default_rng(1)
    images = rng.random((2, *spatial, 2)).astype("float32")
    rank = len(spatial)
    theta = np.tile(np.eye(rank, rank + 1, dtype="float32"), (2, 1, 1))
    output_size = tuple(size // factor for size in spatial)
    out = warp_affine(
        images,
        theta,
        output_size,
        data_format="channels_last",
        antialias=True,
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(out), block_means(images, factor), atol=1e-6
    )


def test_channels_first_matches_channels_last():
    images = np.random.default_rng(2).random((2, 8, 8, 3)).astype("float32")
    grid = affine_grid(affine(1.7, 1.2, 0.4, batch=2), (5, 3))
    channels_last = grid_sample(
        images, grid, data_format="channels_last", antialias=True
    )
    channels_first = grid_sample(
        np.moveaxis(images, -1, 1),
        grid,
        data_format="channels_first",
        antialias=True,
    )
    np.testing.assert_allclose(
        np.moveaxis(ops.convert_to_numpy(channels_first), 1, -1),
        ops.convert_to_numpy(channels_last),
        atol=1e-6,
    )


def test_zooming_out_reduces_the_error_against_a_supersampled_reference():
    """A 64x64 checkerboard of 2-pixel squares, rotated, zoomed out 4x.

    The reference renders the output at 8x its resolution with PyTorch's
    bilinear `grid_sample` and averages each 8x8 block. Measured ratio of
    the errors: 0.07 (plain RMSE 0.34, antialiased 0.025).
    """
    images = checkerboard(64, 2)
    theta = affine(1.0, angle=0.3)
    reference = block_means(torch_warp(images, theta, (128, 128)), 8)

    def error(antialias):
        out = warp_affine(
            images,
            theta,
            (16, 16),
            data_format="channels_last",
            antialias=antialias,
        )
        return np.sqrt(np.mean((ops.convert_to_numpy(out) - reference) ** 2))

    assert error(True) < 0.3 * error(False)


def test_sampling_level_against_numpy():
    """Central differences (one-sided at the ends) as `np.gradient`."""
    rng = np.random.default_rng(3)
    # A smooth grid, from zooming in (left) to zooming out (right), in
    # input pixels.
    rows, columns = np.meshgrid(np.arange(5.0), np.arange(6.0), indexing="ij")
    x = 0.4 * columns + 0.25 * columns**2 + rng.normal(0, 0.05, rows.shape)
    y = 0.3 * rows + 0.05 * rows * columns
    points = [x[None], y[None]]
    derivatives = [
        np.stack([np.gradient(p[0], axis=axis) for p in points])
        for axis in (0, 1)
    ]
    footprint = np.sqrt(
        np.maximum(*(np.sum(d**2, axis=0) for d in derivatives))
    )
    expected = np.clip(np.log2(footprint), 0, 1)
    level = sampling_level([ops.convert_to_tensor(p) for p in points], 1)
    np.testing.assert_allclose(
        ops.convert_to_numpy(level)[0], expected, rtol=1e-6
    )
    assert expected.min() == 0 and expected.max() == 1
    assert np.any((expected > 0) & (expected < 1))


def test_sampling_level_of_an_affine_zoom_out_in_closed_form():
    """Input pixels per output pixel: theta's columns scaled by the sizes."""
    theta = affine(1.3, 0.8, 0.2)
    (height, width), (out_height, out_width) = (16, 20), (8, 10)
    grid = ops.convert_to_numpy(affine_grid(theta, (out_height, out_width)))
    points = [
        ((grid[..., 0] + 1) * width - 1) / 2,
        ((grid[..., 1] + 1) * height - 1) / 2,
    ]
    along_x = np.hypot(theta[0, 0, 0] * width, theta[0, 1, 0] * height)
    along_y = np.hypot(theta[0, 0, 1] * width, theta[0, 1, 1] * height)
    footprint = max(along_x / out_width, along_y / out_height)
    level = sampling_level([ops.convert_to_tensor(p) for p in points], 5)
    np.testing.assert_allclose(
        ops.convert_to_numpy(level), np.log2(footprint), rtol=1e-5
    )


def test_sampling_level_is_zero_where_the_grid_is_dense():
    points = np.zeros((2, 3, 4))  # every point the same: no spacing
    points[1] = np.arange(4.0) * 0.5
    level = sampling_level([ops.convert_to_tensor(points)] * 2, 5)
    np.testing.assert_array_equal(ops.convert_to_numpy(level), 0.0)


def test_a_nan_point_spoils_its_own_output_only():
    """As without antialiasing (`keras_stn.ops.sampling.nonfinite`): its
    neighbours' spacing leaves it out."""
    images = np.random.default_rng(7).random((1, 16, 16, 2)).astype("float32")
    grid = ops.convert_to_numpy(affine_grid(affine(1.5), (4, 4)))
    grid[0, 1, 2, 0] = np.nan
    outputs = [
        ops.convert_to_numpy(
            grid_sample(
                images, grid, data_format="channels_last", antialias=antialias
            )
        )
        for antialias in (False, True)
    ]
    np.testing.assert_array_equal(*(np.isnan(out) for out in outputs))
    assert np.isnan(outputs[1]).sum() == 2


def test_gradients_match_finite_differences():
    rng = np.random.default_rng(4)
    images = rng.random((1, 8, 8, 1))
    theta = affine(1.15, 0.9, 0.1, (0.05, 0.02)).astype("float64")
    grid = ops.convert_to_numpy(affine_grid(theta, (4, 4)))
    grid = grid + rng.normal(0, 0.01, grid.shape)

    def loss(images, grid):
        # The `keras.ops` sampler at each level, uncompiled: XLA's clusters
        # (TensorFlow's "auto") would compile once per level and gradient.
        out = grid_sample(
            images,
            grid,
            data_format="channels_last",
            implementation="keras",
            antialias=True,
        )
        return ops.sum(out * ops.sin(ops.arange(16.0, dtype=out.dtype)))

    assert_gradients_match_finite_differences(
        loss, [images, grid], rng, step=1e-6, rtol=1e-5
    )


def test_the_gradient_is_finite_where_the_grid_collapses():
    images = np.random.default_rng(5).random((1, 8, 8, 1)).astype("float32")

    def loss(theta):
        return ops.sum(
            warp_affine(
                images,
                theta,
                (4, 4),
                data_format="channels_last",
                antialias=True,
            )
        )

    _, (gradient,) = value_and_gradients(loss, np.zeros((1, 2, 3), "float32"))
    assert np.all(np.isfinite(gradient))


def test_layer_config_round_trip_and_a_training_step():
    layer = SpatialTransformer(
        keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(4)]),
        output_size=(4, 4),
        antialias=True,
        data_format="channels_last",
    )
    config = layer.get_config()
    assert config["antialias"] is True
    assert SpatialTransformer.from_config(config).antialias is True
    del config["antialias"]
    assert SpatialTransformer.from_config(config).antialias is False
    model = keras.Sequential(
        [
            keras.Input((12, 12, 1)),
            layer,
            keras.layers.Flatten(),
            keras.layers.Dense(2),
        ]
    )
    model.compile("sgd", "mse")
    rng = np.random.default_rng(6)
    x = rng.random((4, 12, 12, 1)).astype("float32")
    history = model.fit(x, rng.random((4, 2)), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_antialias_must_be_a_bool(value):
    images = np.zeros((1, 4, 4, 1), "float32")
    with pytest.raises(ValueError, match="`antialias`.*antialias="):
        grid_sample(images, np.zeros((1, 2, 2, 2), "float32"), antialias=value)
    with pytest.raises(ValueError, match="`antialias`"):
        warp_affine(images, affine(1.0), antialias=value)
    with pytest.raises(ValueError, match="`antialias`"):
        SpatialTransformer(antialias=value)
