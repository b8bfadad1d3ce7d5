"""The PyTorch tutorial's net, ported with Keras' defaults, trains robustly.

A cheap version of `examples/pytorch_tutorial.py`
(docs/guides/porting-from-pytorch.md): 1,280 images, one epoch, a fixed
seed, on digits drawn here (a square whose place is the label, among random
strokes). With Keras' default initializers the transformer must keep
sampling inside the image, and the net must learn.
"""

import numpy as np

import pytorch_tutorial
from conftest import fake_digits


def placed_squares(count, seed):
    """uint8 images `(count, 28, 28)` and labels: a square at one of 10
    places, over random strokes."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, count)
    images = fake_digits(count, seed) // 2
    for image, label in zip(images, labels, strict=True):
        row, column = 6 + 8 * (label // 5), 4 + 4 * (label % 5)
        image[row : row + 6, column : column + 6] = 255
    return images, labels


def test_the_port_keeps_the_transform_inside_the_image(tmp_path, capsys):
    path = tmp_path / "squares.npz"
    (x_train, y_train), (x_test, y_test) = (
        placed_squares(1280, 0),
        placed_squares(300, 1),
    )
    np.savez(
        path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test
    )
    results = pytorch_tutorial.main([f"--data={path}", "--verbose=0"])
    assert results["max_translation"] < 0.5
    assert 0.5 < results["min_singular_value"]
    assert results["max_singular_value"] < 1.5
    assert results["blank_fraction"] == 0
    assert results["accuracy"] > 0.15  # chance: 0.1
    assert "test accuracy" in capsys.readouterr().out
