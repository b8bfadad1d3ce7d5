"""The examples' MNIST loader, `examples/mnist_data.py`: the local file,
the fallback to Keras' download, and a clear exit without either."""

import re

import keras
import numpy as np
import pytest

import mnist_data


def test_loads_the_file(tmp_path):
    path = tmp_path / "mnist.npz"
    images = np.arange(4 * 28 * 28, dtype="uint8").reshape(4, 28, 28)
    labels = np.arange(4, dtype="uint8")
    np.savez(path, x_train=images, y_train=labels, x_test=images[:1])
    with pytest.raises(KeyError, match="y_test"):
        mnist_data.load_mnist(path)
    np.savez(
        path, x_train=images, y_train=labels, x_test=images[:1], y_test=[7]
    )
    (x_train, y_train), (x_test, y_test) = mnist_data.load_mnist(path)
    np.testing.assert_array_equal(x_train, images)
    np.testing.assert_array_equal(y_train, labels)
    np.testing.assert_array_equal(x_test, images[:1])
    np.testing.assert_array_equal(y_test, [7])


def test_missing_file_without_network_exits_with_a_clear_message(
    tmp_path, monkeypatch, capsys
):
    def offline(*args, **kwargs):
        raise OSError("URL fetch failure: no network")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    missing = tmp_path / "missing.npz"
    with pytest.raises(SystemExit, match=re.escape(str(missing))):
        mnist_data.load_mnist(missing)
    assert f"{missing} not found; downloading" in capsys.readouterr().out


def test_missing_file_falls_back_to_keras_download(tmp_path, monkeypatch):
    digits = np.ones((4, 28, 28), "uint8")
    labels = np.arange(4, dtype="uint8")
    monkeypatch.setattr(
        keras.datasets.mnist,
        "load_data",
        lambda: ((digits, labels), (digits[:2], labels[:2])),
    )
    (x_train, y_train), (x_test, _) = mnist_data.load_mnist(
        tmp_path / "missing.npz"
    )
    np.testing.assert_array_equal(x_train, digits)
    np.testing.assert_array_equal(y_train, labels)
    assert x_test.shape == (2, 28, 28)


def test_take_first():
    images, labels = np.zeros((5, 2)), np.arange(5)
    kept = mnist_data.take_first((images, labels), 3, "--train-samples")
    assert kept[0].shape == (3, 2)
    np.testing.assert_array_equal(kept[1], [0, 1, 2])
    everything = mnist_data.take_first((images, labels), None, "--x")
    np.testing.assert_array_equal(everything[1], labels)
    with pytest.raises(SystemExit, match="--test-samples must be at most 5"):
        mnist_data.take_first((images, labels), 6, "--test-samples")
