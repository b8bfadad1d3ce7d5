"""Shared set-up of the example scripts' tests.

`examples/` and `benchmarks/` go on the import path, so that the tests
import the scripts by module name, as the scripts import each other.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
sys.path.insert(0, str(ROOT / "benchmarks"))


def fake_digits(count, seed=0):
    """uint8 images `(count, 28, 28)`: random strokes in the central box."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, 28, 28), "uint8")
    images[:, 4:24, 8:20] = rng.integers(0, 256, (count, 20, 12))
    images[images < 160] = 0
    return images


@pytest.fixture
def fake_mnist(tmp_path):
    """An `.npz` file shaped like MNIST: 300 training, 100 test images."""
    path = tmp_path / "fake_mnist.npz"
    labels = np.random.default_rng(1).integers(0, 10, 400).astype("uint8")
    np.savez(
        path,
        x_train=fake_digits(300, seed=2),
        y_train=labels[:300],
        x_test=fake_digits(100, seed=3),
        y_test=labels[300:],
    )
    return path


def pytest_addoption(parser):
    parser.addoption(
        "--full-sweep",
        action="store_true",
        help="test_exact_edges: sweep every image size from 1 to 256.",
    )
