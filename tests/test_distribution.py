"""Data-parallel training matches training on one device.

Each backend's run tests its own engine, in a subprocess
(`distribution_worker.py`), since the devices must be set up before the
backend starts: `keras.distribution.DataParallel` over two virtual CPU
devices on JAX, `tf.distribute.MirroredStrategy` over two logical CPU
devices on TensorFlow, and `DistributedDataParallel` in two processes over
gloo on torch. The same ST-CNN, from the same initial weights, takes the
same SGD steps on the same global batches on one device and on two; the
mean loss of a global batch split in two has the same gradient, so the two
runs differ only by float rounding.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from distribution_worker import GLOBAL_BATCH
from distribution_worker import REPLICAS
from helpers import BACKEND

WORKER = Path(__file__).with_name("distribution_worker.py")
# Largest difference from the one-device run, relative to the largest
# magnitude of each array: weights and theta (measured: at most 2.3e-6,
# the theta regressor's kernel on JAX), and the transformer's outputs, in
# which a bright edge moves with theta (measured: at most 4.6e-6, torch).
TOLERANCE = 1e-5
OUTPUTS_TOLERANCE = 3e-5


@pytest.fixture(scope="module")
def results_folder(tmp_path_factory):
    """Train on one device and data-parallel, with this backend's engine."""
    folder = tmp_path_factory.mktemp("distribution")
    env = dict(
        os.environ,
        KERAS_BACKEND=BACKEND,
        XLA_FLAGS=" ".join(
            [
                os.environ.get("XLA_FLAGS", ""),
                f"--xla_force_host_platform_device_count={REPLICAS}",
            ]
        ),
    )
    process = subprocess.run(
        [sys.executable, WORKER, folder],
        env=env,
        capture_output=True,
        text=True,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    return folder


def load(folder, name):
    """The arrays of `folder/name.npz` as a dict."""
    with np.load(folder / f"{name}.npz") as data:
        return dict(data)


def weights_of(values, part):
    """The weights of one part of the model, by name.

    Args:
        values: results as `distribution_worker.results` returns them.
        part: `"localization_net"`, `"theta_regressor"` or `"head"` (the
            layers after the transformer).
    """
    selected = {}
    for key, value in values.items():
        if not key.startswith("weight/"):
            continue
        path = key.split("/", 2)[2]
        in_transformer = path.startswith("transformer/")
        if (part == "head" and not in_transformer) or f"/{part}/" in path:
            selected[key] = value
    assert selected, part
    return selected


def test_data_parallel_run_used_two_replicas(results_folder):
    replicas = json.loads((results_folder / "replicas.json").read_text())
    per_replica = GLOBAL_BATCH // REPLICAS
    if BACKEND == "jax":
        assert replicas["mesh_devices"] == REPLICAS
        # The variables are replicated on both devices, and `fit` compiled
        # its step for a batch split between them.
        assert replicas["kernel_devices"] == REPLICAS
        assert replicas["input_devices"]
        assert set(replicas["input_devices"]) == {REPLICAS}
        assert set(replicas["per_replica_batch"]) == {per_replica}
    elif BACKEND == "tensorflow":
        assert replicas["replicas_in_sync"] == REPLICAS
        assert len(set(replicas["kernel_devices"])) == REPLICAS
        # One trace of the step per replica, each on its half of the batch
        # and its own device.
        traces = replicas["replica_traces"]
        assert {tuple(trace[:2]) for trace in traces} == {
            (REPLICAS, per_replica)
        }
        devices = {trace[2] for trace in traces}
        assert len(devices) == REPLICAS, devices
    else:
        processes = replicas["processes"]
        assert [p["rank"] for p in processes] == list(range(REPLICAS))
        for process in processes:
            assert process["world_size"] == REPLICAS
            assert set(process["batch_sizes"]) == {per_replica}
        # Each process trained on other examples; averaged gradients keep
        # their weights identical.
        first = load(results_folder, "parallel_rank0")
        for rank in range(1, REPLICAS):
            other = load(results_folder, f"parallel_rank{rank}")
            for key, value in first.items():
                if key.startswith("weight/"):
                    np.testing.assert_array_equal(other[key], value, key)


def test_training_moved_the_transformer(results_folder):
    """The comparisons below are not vacuous: training changed theta."""
    initial = load(results_folder, "initial")
    single = load(results_folder, "single")
    change = np.abs(single["theta"] - initial["theta"]).max()
    assert change > 0.1, change
    for part in ("localization_net", "theta_regressor"):
        before = weights_of(initial, part)
        for key, value in weights_of(single, part).items():
            change = np.abs(value - before[key]).max()
            assert change > 1000 * TOLERANCE * np.abs(value).max(), key


@pytest.mark.parametrize(
    "part", ["localization_net", "theta_regressor", "head", "theta", "outputs"]
)
def test_data_parallel_training_matches_one_device(results_folder, part):
    single = load(results_folder, "single")
    parallel = load(results_folder, "parallel")
    if part in ("theta", "outputs"):
        pairs = {part: (single[part], parallel[part])}
    else:
        pairs = {
            key: (value, parallel[key])
            for key, value in weights_of(single, part).items()
        }
    tolerance = OUTPUTS_TOLERANCE if part == "outputs" else TOLERANCE
    for key, (expected, actual) in pairs.items():
        scale = np.abs(expected).max()
        np.testing.assert_allclose(
            actual,
            expected,
            rtol=0,
            atol=tolerance * scale,
            err_msg=f"{key}: {BACKEND}, {REPLICAS} replicas vs one device",
        )
