"""The dense-field benchmark, `benchmarks/warp_speed.py`: keras-stn's steps
and PyTorch's compute the same warp and the same gradients for the images
and the field, and its rows make a table through `run.warp_table`, on tiny
sizes and one repeat."""

import json
import math

import numpy as np
import pytest
import torch
from keras import ops

import run
import warp_speed

SIZES = {"tiny_volume": (1, 4, 5, 6, 2), "tiny_images": (2, 6, 7, 1)}


def to_numpy(results):
    """A step's output and gradients as a list of NumPy arrays."""
    output, gradients = results
    return [
        x.detach().numpy()
        if isinstance(x, torch.Tensor)
        else ops.convert_to_numpy(x)
        for x in (output, *gradients)
    ]


@pytest.mark.parametrize("size", SIZES.values())
def test_steps_compute_the_same_warp_and_gradients(size):
    steps = warp_speed.steps(size, backward=True)
    torch_output, *torch_gradients = to_numpy(steps["torch"]())
    expected = [np.moveaxis(torch_output, 1, -1), *torch_gradients]
    expected[1] = np.moveaxis(expected[1], 1, -1)  # the images' gradient
    # The field reaches past the edges, where zero padding applies.
    _, field, _ = warp_speed.random_inputs(size)
    assert np.abs(field).max() > 1.0
    for name in ("keras_stn", "keras_stn_generic"):
        for value, reference in zip(
            to_numpy(steps[name]()), expected, strict=True
        ):
            np.testing.assert_allclose(value, reference, atol=1e-4)


def test_rows_make_a_table(monkeypatch):
    monkeypatch.setattr(warp_speed, "SIZES", SIZES)
    rows = [
        json.loads(json.dumps(row))
        for row in warp_speed.measure("tiny_volume", repeats=1)
    ]
    assert [row["pass"] for row in rows] == ["forward", "forward+backward"]
    for row in rows:
        for key in ("torch", "keras_stn", "keras_stn_generic", "ratio"):
            assert math.isfinite(row[key]) and row[key] > 0, (key, row)
    text = run.warp_table(rows)
    assert len(text.splitlines()) == 2 + len(rows)
    assert "1x4x5x6x2" in text and "nan" not in text
