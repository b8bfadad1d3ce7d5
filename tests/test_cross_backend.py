"""The same saved models give the same numbers on all three backends.

Spatial transformer models, and models of dense fields (`Warp`,
`IntegrateVelocity`).

Initial weights differ per backend for the same seed, so the models are
built and saved here, on the backend under test, and loaded by the other two
backends in subprocesses (`cross_backend_worker.py`), one per backend for
all the models.
"""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops

from keras_stn import SpatialTransformer
from keras_stn.layers import IntegrateVelocity
from keras_stn.layers import Warp

from cross_backend_worker import evaluate
from helpers import BACKEND

OTHER_BACKENDS = [b for b in ("tensorflow", "jax", "torch") if b != BACKEND]
WORKER = Path(__file__).with_name("cross_backend_worker.py")
# (name, SpatialTransformer arguments, input shape, random regressor)
CASES = [
    ("affine_identity", {"output_size": (24, 20)}, (28, 28, 2), False),
    (
        "affine_border",
        {"output_size": (24, 20), "padding_mode": "border", "align_corners": 1},
        (28, 28, 2),
        True,
    ),
    (
        "tps_bicubic_two",
        {"transform": "tps", "mode": "bicubic", "num_transformers": 2},
        (20, 20, 2),
        True,
    ),
    (
        "projective_stacked",
        {
            "transform": "projective",
            "num_transformers": 2,
            "merge_mode": "stack",
        },
        (20, 20, 1),
        True,
    ),
    (
        "similarity_reflection",
        {"transform": "similarity", "padding_mode": "reflection"},
        (20, 20, 1),
        True,
    ),
    (
        "attention_volume",
        {"transform": "attention", "output_size": (6, 7, 8)},
        (8, 8, 8, 1),
        True,
    ),
]


def velocity_model():
    """Images warped by the integral of a convolution of a velocity field
    (`"ij"` vectors, border padding), and its inputs' shapes."""
    images, velocity = keras.Input((10, 12, 2)), keras.Input((10, 12, 2))
    smoothed = keras.layers.Conv2D(2, 3, padding="same")(velocity)
    field = IntegrateVelocity(4, "channels_last", "ij")(smoothed)
    moved = Warp(
        padding_mode="border", data_format="channels_last", indexing="ij"
    )([images, field])
    return keras.Model([images, velocity], moved), ((10, 12, 2), (10, 12, 2))


def volume_model():
    """Volumes warped by a field, channels first, reflection padding."""
    volumes, field = keras.Input((1, 6, 7, 5)), keras.Input((3, 6, 7, 5))
    moved = Warp(padding_mode="reflection", data_format="channels_first")(
        [volumes, field]
    )
    return keras.Model([volumes, field], moved), ((1, 6, 7, 5), (3, 6, 7, 5))


# name: a function returning a model of `[images, field]` and their shapes.
DENSE_CASES = {"dense_velocity": velocity_model, "dense_volume": volume_model}


@pytest.fixture(scope="module")
def cases_folder(tmp_path_factory):
    """Save every case's model and inputs, and evaluate them everywhere."""
    folder = tmp_path_factory.mktemp("cases")
    rng = np.random.default_rng(0)
    for name, build in DENSE_CASES.items():
        model, (images_shape, field_shape) = build()
        images = rng.random((3, *images_shape)).astype("float32")
        field = rng.uniform(-2.5, 2.5, (3, *field_shape)).astype("float32")
        upstream = rng.normal(size=images.shape).astype("float32")
        case = folder / name
        case.mkdir()
        model.save(case / "model.keras")
        np.savez(
            case / "inputs.npz", images=images, field=field, upstream=upstream
        )
    for name, kwargs, input_shape, randomize in CASES:
        layer = SpatialTransformer(**kwargs)
        model = keras.Sequential([keras.Input(input_shape), layer])
        if randomize:
            regressor = layer.theta_regressor
            kernel = rng.normal(0.0, 0.02, regressor.kernel.shape)
            bias = ops.convert_to_numpy(regressor.bias)
            bias = bias + rng.normal(0.0, 0.1, bias.shape)
            regressor.set_weights([kernel, bias])
        images = rng.random((4, *input_shape)).astype("float32")
        output_shape = ops.shape(model(images))
        upstream = rng.normal(size=output_shape).astype("float32")
        case = folder / name
        case.mkdir()
        model.save(case / "model.keras")
        np.savez(case / "inputs.npz", images=images, upstream=upstream)
    for backend in OTHER_BACKENDS:
        env = dict(os.environ, KERAS_BACKEND=backend)
        process = subprocess.run(
            [sys.executable, WORKER, folder, backend],
            env=env,
            capture_output=True,
            text=True,
        )
        assert process.returncode == 0, process.stderr[-3000:]
    return folder


@pytest.mark.parametrize("name", [case[0] for case in CASES])
def test_same_numbers_on_every_backend(cases_folder, name):
    case = cases_folder / name
    expected = evaluate(case / "model.keras", case / "inputs.npz")
    layer = keras.models.load_model(case / "model.keras").layers[0]
    identity = np.broadcast_to(
        layer.transform.identity(2 if "volume" not in name else 3),
        expected["theta"].shape,
    )
    if name == "affine_identity":
        np.testing.assert_array_equal(expected["theta"], identity)
    else:
        assert not np.allclose(expected["theta"], identity, atol=0.05)
    assert_same_on_other_backends(case, expected, name)


@pytest.mark.parametrize("name", DENSE_CASES)
def test_dense_fields_same_numbers_on_every_backend(cases_folder, name):
    case = cases_folder / name
    expected = evaluate(case / "model.keras", case / "inputs.npz")
    images = np.load(case / "inputs.npz")["images"]
    # The fields move the pixels: the outputs are not the images.
    assert np.abs(expected["outputs"] - images).mean() > 0.1
    assert np.abs(expected["field_gradient"]).max() > 0.1
    assert_same_on_other_backends(case, expected, name)


def assert_same_on_other_backends(case, expected, name):
    """The other backends' results of a case are `expected`, to 1e-5."""
    for backend in OTHER_BACKENDS:
        results = dict(np.load(case / f"{backend}.npz"))
        assert results.keys() == expected.keys()
        for key, value in expected.items():
            scale = np.abs(value).max()
            np.testing.assert_allclose(
                results[key],
                value,
                rtol=1e-5,
                atol=1e-5 * scale,
                err_msg=f"{name}, {key}: {BACKEND} vs {backend}",
            )
