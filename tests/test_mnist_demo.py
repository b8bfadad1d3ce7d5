"""The MNIST demo, `examples/mnist_demo.py`: a fast end-to-end run on a tiny
fake data set, the distortion, and the data loader's fallback."""

import importlib.util
import json
import re
from pathlib import Path

import keras
import numpy as np
import pytest

from helpers import BACKEND

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mnist_demo.py"
_spec = importlib.util.spec_from_file_location("mnist_demo", EXAMPLE)
mnist_demo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mnist_demo)


def fake_digits(count, seed=0):
    """uint8 images `(count, 28, 28)`: random strokes in the central box."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, 28, 28), "uint8")
    images[:, 4:24, 8:20] = rng.integers(0, 256, (count, 20, 12))
    images[images < 160] = 0
    return images


def bars(count):
    """uint8 images `(count, 28, 28)` of a vertical bar, 16x4, off-centre."""
    images = np.zeros((count, 28, 28), "uint8")
    images[:, 5:21, 9:13] = 255
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


def test_main_trains_and_saves_everything(fake_mnist, tmp_path, capsys):
    output_dir = tmp_path / "outputs"
    argv = ["--data", str(fake_mnist), "--train-samples", "256"]
    argv += ["--test-samples", "64", "--epochs", "1", "--batch-size", "64"]
    argv += ["--seed", "3", "--output-dir", str(output_dir), "--verbose", "0"]
    results = mnist_demo.main(argv)

    assert "Test accuracy" in capsys.readouterr().out
    saved = json.loads((output_dir / "results.json").read_text())
    assert saved == results
    assert 0.0 <= saved["accuracy"] <= 1.0
    assert saved["backend"] == BACKEND
    assert saved["epochs"] == 1
    assert saved["train_samples"] == 256
    assert saved["test_samples"] == 64
    assert saved["seed"] == 3

    # The saved model loads without custom objects and is the trained one:
    # it reproduces the reported test accuracy and loss.
    model = keras.models.load_model(output_dir / "st_cnn.keras")
    _, (x_test, y_test) = mnist_demo.prepare_data(fake_mnist, 3, 256, 64)
    probabilities = model.predict(x_test, batch_size=64, verbose=0)
    assert probabilities.shape == (64, 10)
    accuracy = np.mean(probabilities.argmax(axis=1) == y_test)
    loss = -np.mean(np.log(probabilities[np.arange(64), y_test]))
    assert accuracy == pytest.approx(saved["accuracy"], abs=1e-6)
    assert loss == pytest.approx(saved["loss"], rel=1e-4)
    transformer = model.get_layer("spatial_transformer")
    assert tuple(transformer(x_test[:8]).shape) == (8, 28, 28, 1)

    # 8 inputs (42x42) beside their outputs (28x28), drawn 3 times larger,
    # 4 side by side, 4 pixels apart: (126 + 84 + 2 * 4) * 4 + 4 wide.
    png = output_dir / "transformer_outputs.png"
    assert png.stat().st_size < 300_000
    image = keras.utils.load_img(png)
    assert image.size == (876, 2 * 130 + 4)
    snapshots = sorted(p.name for p in (output_dir / "snapshots").iterdir())
    assert snapshots == ["epoch_000.png", "epoch_001.png"]


def test_main_rejects_more_samples_than_the_data_has(fake_mnist, tmp_path):
    argv = ["--data", str(fake_mnist), "--test-samples", "101"]
    argv += ["--output-dir", str(tmp_path)]
    with pytest.raises(SystemExit, match="at most 100"):
        mnist_demo.main(argv)


def test_distort_is_deterministic():
    images = fake_digits(16)
    first = mnist_demo.distort(images, seed=0)
    assert first.shape == (16, 42, 42, 1)
    assert first.dtype == "float32"
    np.testing.assert_array_equal(first, mnist_demo.distort(images, seed=0))
    assert not np.allclose(first, mnist_demo.distort(images, seed=1))


def centres_and_angles(images):
    """Centres of mass and orientations (degrees) of `(n, h, w)` images."""
    rows, cols = np.indices(images.shape[1:])
    mass = images.sum(axis=(1, 2))
    row = (images * rows).sum(axis=(1, 2)) / mass
    col = (images * cols).sum(axis=(1, 2)) / mass
    d_row = rows - row[:, None, None]
    d_col = cols - col[:, None, None]
    mu_rr = (images * d_row**2).sum(axis=(1, 2))
    mu_cc = (images * d_col**2).sum(axis=(1, 2))
    mu_rc = (images * d_row * d_col).sum(axis=(1, 2))
    angles = np.degrees(0.5 * np.arctan2(2 * mu_rc, mu_rr - mu_cc))
    return np.stack([row, col], axis=1), angles


def test_distort_rotates_scales_and_moves_digits():
    images = bars(200)
    canvases = mnist_demo.distort(images, seed=0)[..., 0]

    # A plain paste of the bar in the centre of the canvas, for comparison.
    pasted = np.pad(images / 255.0, ((0, 0), (7, 7), (7, 7)))
    assert not np.any(np.all(np.isclose(canvases, pasted), axis=(1, 2)))
    centres, angles = centres_and_angles(canvases)
    pasted_centres, pasted_angles = centres_and_angles(pasted)
    # The bar is rotated by up to 45 degrees, either way.
    np.testing.assert_allclose(pasted_angles, 0.0, atol=1e-6)
    assert np.all(np.abs(angles) <= 45.5)
    assert angles.min() < -30 and angles.max() > 30
    # It is moved all over the canvas ...
    assert np.all(centres.std(axis=0) > 3.0)
    assert np.all(np.abs(centres - pasted_centres).max(axis=0) > 8.0)
    # ... but stays whole on it: the border is empty.
    border = np.ones((42, 42), bool)
    border[1:-1, 1:-1] = False
    assert np.all(canvases[:, border] == 0.0)
    # Its area is scaled by 0.8**2 to 1.1**2.
    areas = canvases.sum(axis=(1, 2)) / pasted.sum(axis=(1, 2))
    assert np.all((areas > 0.8**2 - 0.02) & (areas < 1.1**2 + 0.02))
    assert areas.min() < 0.75 and areas.max() > 1.1


def test_missing_file_without_network_exits_with_a_clear_message(
    tmp_path, monkeypatch, capsys
):
    def offline(*args, **kwargs):
        raise OSError("URL fetch failure: no network")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    missing = tmp_path / "missing.npz"
    with pytest.raises(SystemExit, match=re.escape(str(missing))):
        mnist_demo.load_mnist(missing)
    assert f"{missing} not found; downloading" in capsys.readouterr().out


def test_missing_file_falls_back_to_keras_download(tmp_path, monkeypatch):
    digits = fake_digits(4)
    labels = np.arange(4, dtype="uint8")
    monkeypatch.setattr(
        keras.datasets.mnist,
        "load_data",
        lambda: ((digits, labels), (digits[:2], labels[:2])),
    )
    (x_train, y_train), (x_test, _) = mnist_demo.load_mnist(
        tmp_path / "missing.npz"
    )
    np.testing.assert_array_equal(x_train, digits)
    np.testing.assert_array_equal(y_train, labels)
    assert x_test.shape == (2, 28, 28)
