"""What a new user does on their first day works, or says what to do.

The README's Quick start runs as written; every name of the documentation's
API table is reachable from `import keras_stn`; the errors a new user meets
name the argument and the remedy.
"""

import re
from pathlib import Path

import keras
import numpy as np
import pytest

import keras_stn

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
API_TABLE = ROOT / "docs" / "api" / "index.md"


def readme_section(title):
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def test_the_quick_start_runs_as_written():
    section = readme_section("Quick start")
    shell, code = re.findall(r"```(?:bash|python)\n(.*?)```", section, re.S)[:2]
    assert "export KERAS_BACKEND=" in shell
    namespace = {}
    exec(compile(code, "README quick start", "exec"), namespace)
    assert tuple(namespace["theta"].shape) == (8, 2, 3)


def test_every_name_of_the_api_table_is_reachable():
    names = set(re.findall(r"`(keras_stn(?:\.\w+)+)", API_TABLE.read_text()))
    assert "keras_stn.callbacks.TransformerSnapshot" in names
    for name in names:
        value = keras_stn
        for attribute in name.split(".")[1:]:
            value = getattr(value, attribute)


def test_compute_theta_builds_a_layer_that_was_not_called():
    layer = keras_stn.SpatialTransformer()
    theta = layer.compute_theta(np.zeros((2, 20, 20, 1), "float32"))
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(theta), np.tile(np.eye(2, 3), (2, 1, 1))
    )


def test_uint8_images_get_a_hint_to_cast_and_scale():
    images = np.zeros((1, 4, 4, 1), "uint8")
    with pytest.raises(ValueError, match=r"astype\('float32'\) / 255"):
        keras_stn.ops.grid_sample(images, np.zeros((1, 2, 2, 2), "float32"))
    layer = keras_stn.SpatialTransformer()
    with pytest.raises(ValueError, match="images.*uint8.*/ 255"):
        layer.warp(images, np.tile(np.eye(2, 3, dtype="float32"), (1, 1, 1)))


def test_a_channels_last_localization_net_on_channels_first_inputs():
    net = keras.Sequential([keras.layers.Conv2D(8, 7), keras.layers.Flatten()])
    layer = keras_stn.SpatialTransformer(net, data_format="channels_first")
    with pytest.raises(ValueError, match="channels first.*Permute"):
        layer(np.zeros((2, 1, 28, 28), "float32"))


@pytest.mark.parametrize("size", (20, 100))
def test_the_default_layer_takes_images_of_any_size(size):
    """On `keras.Input((None, None, 3))`: a 20x23 and a 100x103 batch each
    train and come out of the size they went in (the default localization
    net resizes large or unknown inputs to 64x64)."""
    model = keras.Sequential(
        [
            keras.Input((None, None, 3)),
            keras_stn.SpatialTransformer(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2),
        ]
    )
    model.compile("sgd", "mse")
    x = np.random.default_rng(0).random((4, size, size + 3, 3), "float32")
    history = model.fit(x, np.zeros((4, 2)), epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    warped = keras.ops.convert_to_numpy(model.layers[0](x))
    assert warped.shape == x.shape
    assert model.count_params() < 300_000
