"""The same saved model gives the same numbers on all three backends.

Initial weights differ per backend for the same seed, so the model is built
and saved here, on the backend under test, and loaded by the other two
backends in subprocesses (`cross_backend_worker.py`).
"""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_stn import SpatialTransformer

from cross_backend_worker import evaluate
from helpers import BACKEND

OTHER_BACKENDS = [b for b in ("tensorflow", "jax", "torch") if b != BACKEND]
WORKER = Path(__file__).with_name("cross_backend_worker.py")


def run_worker(backend, model_path, inputs_path, results_path):
    env = dict(os.environ, KERAS_BACKEND=backend)
    process = subprocess.run(
        [sys.executable, WORKER, model_path, inputs_path, results_path],
        env=env,
        capture_output=True,
        text=True,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    return dict(np.load(results_path))


@pytest.mark.parametrize(
    "start,padding_mode,align_corners",
    [("identity", "zeros", False), ("random", "border", True)],
)
def test_same_numbers_on_every_backend(
    tmp_path, start, padding_mode, align_corners
):
    rng = np.random.default_rng(0)
    layer = SpatialTransformer(
        output_size=(24, 20),
        padding_mode=padding_mode,
        align_corners=align_corners,
    )
    model = keras.Sequential([keras.Input((28, 28, 2)), layer])
    if start == "random":
        regressor = layer.theta_regressor
        kernel = rng.normal(0.0, 0.02, regressor.kernel.shape)
        bias = np.eye(2, 3).flatten() + rng.normal(0.0, 0.2, 6)
        regressor.set_weights([kernel, bias])
    images = rng.random((4, 28, 28, 2)).astype("float32")
    upstream = rng.normal(size=(4, 24, 20, 2)).astype("float32")
    model_path = tmp_path / "model.keras"
    inputs_path = tmp_path / "inputs.npz"
    model.save(model_path)
    np.savez(inputs_path, images=images, upstream=upstream)

    expected = evaluate(model_path, inputs_path)
    identity = np.broadcast_to(np.eye(2, 3), expected["theta"].shape)
    if start == "identity":
        np.testing.assert_array_equal(expected["theta"], identity)
    else:
        assert not np.allclose(expected["theta"], identity, atol=0.05)
    for backend in OTHER_BACKENDS:
        results = run_worker(
            backend, model_path, inputs_path, tmp_path / f"{backend}.npz"
        )
        for key, value in expected.items():
            scale = np.abs(value).max()
            np.testing.assert_allclose(
                results[key],
                value,
                rtol=1e-5,
                atol=1e-5 * scale,
                err_msg=f"{key}: {BACKEND} vs {backend}",
            )
