"""Samplings that run side by side finish, with right outputs.

A compiled step may run independent samplings at the same time (two
transformers on one input, the forward of one beside the backward of the
other), and JAX keeps the next step in flight while the callbacks read the
last one's logs. On JAX the C++ kernel splits its work over the thread pool
that XLA runs these samplings on: it once waited for ranges that no free
thread could start, and `fit` stalled without an error. The child process
here trains a model with more transformers than it has CPUs (two; the
pool's size follows the CPUs the process may use), predicts with it, and
saves each transformer's theta and output, which the test checks against
PyTorch's `affine_grid` and `grid_sample`.
"""

import os
import subprocess
import sys

import numpy as np
import torch

from helpers import BACKEND

CPUS = 2
TRANSFORMERS = 2 * CPUS
# Batch and size enough that the kernel splits every sampling over threads.
BATCH, SIZE, CHANNELS = 16, 64, 3
# A step takes well under a second here; the stall never ended.
TIMEOUT_SECONDS = 300

CHILD = f"""
import os, sys
cpus = sorted(os.sched_getaffinity(0))[:{CPUS}]
os.sched_setaffinity(0, cpus)  # before the backend starts its threads
import numpy as np
import keras
from keras_stn import SpatialTransformer

inputs = keras.Input(({SIZE}, {SIZE}, {CHANNELS}))
transformers = [SpatialTransformer() for _ in range({TRANSFORMERS})]
warped = [transformer(inputs) for transformer in transformers]
scores = keras.layers.Dense(2)(
    keras.layers.Concatenate()([keras.layers.Flatten()(w) for w in warped])
)
model = keras.Model(inputs, scores)
model.compile("adam", "mse")
rng = np.random.default_rng(0)
images = rng.random(({BATCH}, {SIZE}, {SIZE}, {CHANNELS}), dtype="float32")
targets = rng.random(({BATCH}, 2), dtype="float32")
model.fit(images, targets, batch_size={BATCH // 2}, epochs=3, verbose=0)
outputs = keras.Model(inputs, warped).predict(images, verbose=0)
thetas = [
    keras.ops.convert_to_numpy(transformer.compute_theta(images))
    for transformer in transformers
]
np.savez(sys.argv[1], images=images, thetas=np.stack(thetas),
         outputs=np.stack(outputs))
"""


def test_more_transformers_than_threads_train_and_predict(tmp_path):
    results = tmp_path / "results.npz"
    try:
        process = subprocess.run(
            [sys.executable, "-c", CHILD, str(results)],
            env=dict(os.environ, KERAS_BACKEND=BACKEND),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired as stall:
        raise AssertionError(
            f"training {TRANSFORMERS} transformers on {CPUS} CPUs stalled "
            f"(no result in {TIMEOUT_SECONDS} s)"
        ) from stall
    assert process.returncode == 0, process.stderr[-3000:]
    with np.load(results) as data:
        images, thetas, outputs = (
            data[k] for k in ("images", "thetas", "outputs")
        )
    # Training moved each transformer away from the identity.
    identity = np.array([[1, 0, 0], [0, 1, 0]], "float32")
    thetas = thetas.reshape(TRANSFORMERS, BATCH, 2, 3)
    assert np.abs(thetas - identity).max() > 1e-4
    channels_first = torch.tensor(images).permute(0, 3, 1, 2)
    for theta, output in zip(thetas, outputs, strict=True):
        grid = torch.nn.functional.affine_grid(
            torch.tensor(theta),
            channels_first.shape,
            align_corners=False,
        )
        expected = torch.nn.functional.grid_sample(
            channels_first, grid, align_corners=False
        )
        np.testing.assert_allclose(
            output, expected.permute(0, 2, 3, 1).numpy(), atol=2e-5
        )
