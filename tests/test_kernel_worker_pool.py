"""The C interface's kept worker threads (`cpp_kernel/worker_pool.h`).

torch's kernel calls split their work over threads that live between calls.
These tests call the C library directly with NumPy buffers (the same on every
backend) and check its outputs against PyTorch's `grid_sample`: from several
Python threads at once (ctypes releases the GIL, so the calls overlap and
find the workers busy), and in a process forked after the workers started,
where they do not exist.
"""

import ctypes
import pathlib
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

from keras_stn.ops.sampling.cpp_kernel import torch_ctypes
from keras_stn.ops.sampling.cpp_kernel.build import coordinates_code

from c_kernel_calls import kernel_sample

# The grid's convention: normalized, `align_corners=False`.
COORDINATES = coordinates_code(False)
# Enough points for two ranges of work: the workers take part.
BATCH, HEIGHT, WIDTH, CHANNELS = 4, 96, 96, 3


def sample_problem(seed):
    """Images, a normalized grid beyond the edges, and PyTorch's output."""
    rng = np.random.default_rng(seed)
    images = rng.random((BATCH, HEIGHT, WIDTH, CHANNELS), dtype=np.float32)
    grid = rng.uniform(-1.2, 1.2, (BATCH, HEIGHT, WIDTH, 2)).astype(np.float32)
    expected = torch.nn.functional.grid_sample(
        torch.tensor(images).permute(0, 3, 1, 2),
        torch.tensor(grid),
        align_corners=False,
    )
    return images, grid, expected.permute(0, 2, 3, 1).numpy()


@pytest.fixture(scope="module")
def library():
    path = torch_ctypes.build_kernel()
    assert path is not None, "the C++ kernel did not build"
    return ctypes.CDLL(str(path))


def test_calls_from_several_threads_at_once(library):
    problems = [sample_problem(seed) for seed in range(4)]
    errors = []

    def call_many(images, grid, expected):
        for _ in range(20):
            output = kernel_sample(library, images, grid, COORDINATES)
            errors.append(np.abs(output - expected).max())

    callers = [threading.Thread(target=call_many, args=p) for p in problems]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert len(errors) == 80
    assert max(errors) < 1e-5


FORKED_CHILD = """
import ctypes, os, signal, sys
import numpy as np
sys.path.insert(0, sys.argv[2])
from c_kernel_calls import kernel_sample
library = ctypes.CDLL(sys.argv[1])
inputs = np.load(sys.argv[3])
images, grid, coordinates = inputs["images"], inputs["grid"], int(sys.argv[4])
before = kernel_sample(library, images, grid, coordinates)  # starts workers
child = os.fork()
if child == 0:
    signal.alarm(30)  # a child that hangs ends, rather than spin on
    after = kernel_sample(library, images, grid, coordinates)
    os._exit(0 if np.array_equal(before, after) else 3)
_, status = os.waitpid(child, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_a_forked_child_samples_with_workers_of_its_own(library, tmp_path):
    images, grid, expected = sample_problem(0)
    np.savez(tmp_path / "inputs.npz", images=images, grid=grid)
    np.testing.assert_allclose(
        kernel_sample(library, images, grid, COORDINATES), expected, atol=1e-5
    )
    # A fresh interpreter, without the frameworks' threads, forks; a child
    # that waited for its parent's workers would hang until the timeout.
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            FORKED_CHILD,
            library._name,
            str(pathlib.Path(__file__).parent),
            str(tmp_path / "inputs.npz"),
            str(COORDINATES),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
