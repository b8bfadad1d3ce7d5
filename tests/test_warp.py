"""`warp` and the `Warp` layer against SciPy and PyTorch."""

import itertools

import keras
import numpy as np
import pytest
from keras import ops

import keras_stn
from keras_stn.ops import warp

from helpers import assert_gradients_match_finite_differences
from helpers import float64_enabled
from helpers import normalized_axis
from helpers import scipy_warp
from helpers import torch_grid_sample
from helpers import value_and_gradients

PADDINGS = ("zeros", "border", "reflection")
# SciPy's modes that extend an image as each padding mode does, for
# `order=0` and `order=1` (checked against PyTorch: the same numbers).
SCIPY_MODES = {"zeros": "grid-constant", "border": "nearest"}
SCIPY_MODES["reflection"] = "reflect"
SIZES = {2: (6, 7), 3: (4, 5, 6)}
CL = "channels_last"


def problem(rank, seed=0, channels=2, reach=2.5, batch=2):
    """Channels-last images and an `"xy"` field reaching past the edges."""
    rng = np.random.default_rng(seed)
    size = SIZES[rank]
    images = rng.normal(size=(batch, *size, channels)).astype("float32")
    field = rng.uniform(-reach, reach, (batch, *size, rank)).astype("float32")
    return images, field


def xy_to(field, indexing):
    return field[..., ::-1] if indexing == "ij" else field


@pytest.mark.parametrize(
    "rank,order,padding_mode",
    list(itertools.product((2, 3), (1, 0), PADDINGS)),
)
def test_matches_scipy_map_coordinates(rank, order, padding_mode):
    images, field = problem(rank, seed=order)
    mode = "bilinear" if order == 1 else "nearest"
    outputs = [
        warp(
            images,
            xy_to(field, indexing),
            mode=mode,
            padding_mode=padding_mode,
            data_format=CL,
            indexing=indexing,
        )
        for indexing in ("xy", "ij")
    ]
    expected = scipy_warp(images, field, order, SCIPY_MODES[padding_mode])
    for out in outputs:
        np.testing.assert_allclose(
            ops.convert_to_numpy(out), expected, atol=2e-5, rtol=0
        )


def torch_warp(images, field, upstream, **kwargs):
    """PyTorch's `grid_sample` at the normalized points of an `"xy"` field,
    with the gradients by the field (the grid's, times d grid / d field)."""
    size = images.shape[1:-1]
    scale = np.array([2.0 / n for n in size[::-1]])
    mesh = np.stack(
        np.meshgrid(
            *[normalized_axis(n, align_corners=False) for n in size],
            indexing="ij",
        )[::-1],
        axis=-1,
    )
    grid = mesh + field.astype("float64") * scale
    out, grad_images, grad_grid = torch_grid_sample(
        images.astype("float64"),
        grid,
        upstream.astype("float64"),
        "channels_last",
        align_corners=False,
        **kwargs,
    )
    return out, grad_images, grad_grid * scale


# Every padding mode for bilinear and bicubic sampling (which SciPy does not
# have); nearest sampling's values by padding are SciPy's test.
TORCH_CASES = [
    *[
        (2, mode, padding, CL)
        for mode in ("bilinear", "bicubic")
        for padding in PADDINGS
    ],
    *[(3, "bilinear", padding, CL) for padding in PADDINGS],
    (2, "nearest", "zeros", CL),
    (3, "nearest", "zeros", CL),
    (2, "bilinear", "zeros", "channels_first"),
    (3, "bilinear", "border", "channels_first"),
]


@pytest.mark.parametrize("rank,mode,padding_mode,data_format", TORCH_CASES)
def test_values_and_gradients_match_torch_grid_sample(
    rank, mode, padding_mode, data_format
):
    images, field = problem(rank, seed=3)
    # The fast paths (the kernels, PyTorch's, XLA) where they are cheap to
    # build here; the generic sampler, which they match, for the rest (XLA
    # takes seconds to compile each bicubic or reflection gradient).
    cheap = mode != "bicubic" and padding_mode != "reflection"
    implementation = "auto" if cheap else "keras"
    upstream = np.random.default_rng(4).normal(size=images.shape)
    upstream = upstream.astype("float32")
    expected = torch_warp(
        images, field, upstream, mode=mode, padding_mode=padding_mode
    )

    def layout(x):
        return np.moveaxis(x, -1, 1) if data_format == "channels_first" else x

    def loss(images, field):
        out = warp(
            images,
            field,
            mode=mode,
            padding_mode=padding_mode,
            data_format=data_format,
            implementation=implementation,
        )
        return ops.sum(out * ops.convert_to_tensor(layout(upstream)))

    _, (grad_images, grad_field) = value_and_gradients(
        loss, layout(images), layout(field)
    )
    out = warp(
        layout(images),
        layout(field),
        mode=mode,
        padding_mode=padding_mode,
        data_format=data_format,
        implementation=implementation,
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(out), layout(expected[0]), atol=2e-5
    )
    np.testing.assert_allclose(grad_images, layout(expected[1]), atol=2e-5)
    if mode != "nearest":  # nearest sampling has no gradient by the points
        np.testing.assert_allclose(grad_field, layout(expected[2]), atol=2e-4)


@pytest.mark.parametrize(
    "rank,mode,padding_mode",
    [(2, "bilinear", "zeros"), (2, "bicubic", "reflection")]
    + [(3, "bilinear", "border")],
)
def test_gradients_match_finite_differences(rank, mode, padding_mode):
    images, field = problem(rank, seed=5, reach=1.5, batch=1)

    def loss(images, field):
        out = warp(
            images,
            field,
            mode=mode,
            padding_mode=padding_mode,
            data_format="channels_last",
            indexing="ij",
            implementation="auto" if mode == "bilinear" else "keras",
        )
        return ops.sum(out * out)

    assert_gradients_match_finite_differences(
        loss,
        [images.astype("float64"), field.astype("float64")],
        np.random.default_rng(6),
        step=1e-6,
        rtol=1e-5,
    )


@pytest.mark.parametrize("rank", (2, 3))
def test_zero_field_returns_the_images_exactly(rank):
    images, field = problem(rank)
    out = warp(images, np.zeros_like(field), data_format="channels_last")
    np.testing.assert_array_equal(ops.convert_to_numpy(out), images)


@pytest.mark.parametrize(
    "field_shape,kwargs,match",
    [
        ((2, 6, 7, 3), {}, "`displacement`"),
        ((2, 6, 6, 2), {}, "same spatial sizes"),
        ((1, 6, 7, 2), {}, "same batch size"),
        ((2, 6, 7, 2), {"indexing": "yx"}, "`indexing`"),
        ((2, 6, 7, 1, 3), {}, "`displacement`"),
        ((2, 2, 6, 7), {"data_format": "channels_first"}, "`displacement`"),
    ],
)
def test_bad_input_raises(field_shape, kwargs, match):
    images = np.zeros((2, 6, 7, 1), "float32")
    kwargs = {"data_format": "channels_last", **kwargs}
    with pytest.raises(ValueError, match=match):
        warp(images, np.zeros(field_shape, "float32"), **kwargs)


def test_layer_matches_the_op_and_reloads(tmp_path):
    images, field = problem(2)
    moving = keras.Input(images.shape[1:])
    displacement = keras.Input(field.shape[1:])
    velocity = keras.layers.Identity()(displacement)
    integrated = keras_stn.layers.IntegrateVelocity(
        steps=3, data_format="channels_last"
    )(velocity)
    moved = keras_stn.layers.Warp(
        padding_mode="border", data_format="channels_last", indexing="ij"
    )([moving, integrated])
    model = keras.Model([moving, displacement], moved)
    assert model.output_shape == (None, *images.shape[1:])
    expected = warp(
        images,
        keras_stn.ops.integrate_velocity(field, 3, "channels_last"),
        padding_mode="border",
        data_format="channels_last",
        indexing="ij",
    )
    out = model.predict_on_batch([images, field])
    np.testing.assert_allclose(
        ops.convert_to_numpy(out), ops.convert_to_numpy(expected), atol=1e-6
    )
    path = tmp_path / "warp.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    layers = {type(layer).__name__: layer for layer in reloaded.layers}
    assert layers["Warp"].get_config()["indexing"] == "ij"
    assert layers["IntegrateVelocity"].steps == 3
    np.testing.assert_array_equal(
        ops.convert_to_numpy(reloaded.predict_on_batch([images, field])),
        ops.convert_to_numpy(out),
    )


def test_layers_reject_bad_arguments():
    with pytest.raises(ValueError, match="`indexing`"):
        keras_stn.layers.Warp(indexing="ji")
    with pytest.raises(ValueError, match="`padding_mode`"):
        keras_stn.layers.Warp(padding_mode="wrap")
    with pytest.raises(ValueError, match="`steps`"):
        keras_stn.layers.IntegrateVelocity(steps=-1)
    with pytest.raises(ValueError, match="`inputs`"):
        keras_stn.layers.Warp()(np.zeros((1, 4, 4, 1), "float32"))


def test_float64_values_match_torch():
    images, field = problem(3, seed=8)
    upstream = np.ones_like(images)
    expected, _, _ = torch_warp(images, field, upstream, mode="bilinear")
    with float64_enabled():
        out = warp(
            images.astype("float64"),
            field.astype("float64"),
            data_format="channels_last",
        )
        np.testing.assert_allclose(
            ops.convert_to_numpy(out), expected, atol=1e-12
        )


@pytest.mark.parametrize(
    "images_shape,field_shape,match",
    [
        ((16, 16, 1), (16, 12, 2), "same spatial sizes"),
        ((16, 16, 1), (16, 16, 3), "`displacement`"),
        ((8, 16, 16, 1), (8, 16, 16, 2), "`displacement`"),
    ],
)
def test_layers_reject_bad_shapes_when_the_model_is_built(
    images_shape, field_shape, match
):
    """Symbolic calls check the shapes: a wrong field fails at once."""
    images = keras.Input(images_shape)
    field = keras.Input(field_shape)
    with pytest.raises(ValueError, match=match):
        keras_stn.layers.Warp(data_format="channels_last")([images, field])
    with pytest.raises(ValueError, match="`velocity`"):
        keras_stn.layers.IntegrateVelocity(data_format="channels_last")(
            keras.Input((16, 16, 3))
        )
