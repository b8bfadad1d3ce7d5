"""The inference benchmark, `benchmarks/inference.py`: its Keras models
compute what PyTorch's reference computes (or, the identity transformer,
pass their input through), and its rows, through `run.inference_table`,
give a finite ratio for every call, on tiny sizes and one repeat."""

import json
import math

import keras
import numpy as np
import pytest

import inference
import run

SAMPLING_SIZE = (3, 10, 12, 2)
ST_CNN_SIZE = (2, 32, 32, 3)


def test_sampling_models_compute_pytorch_grid_sample():
    """keras-stn's layer, and on torch the layer of PyTorch's own kernel."""
    images, grid = inference.random_inputs(SAMPLING_SIZE)
    expected = np.moveaxis(
        inference.torch_reference(images, grid)().numpy(), 1, -1
    )
    layers = [inference.GridSample()]
    if keras.backend.backend() == "torch":
        layers.append(inference.PyTorchGridSample())
    for layer in layers:
        model = inference.sampling_model(SAMPLING_SIZE, layer)
        np.testing.assert_allclose(
            model.predict_on_batch([images, grid]),
            expected,
            rtol=1e-5,
            atol=1e-5,
        )
    # The grid reaches outside the images, where zero padding applies.
    assert np.abs(grid).max() > 1.0


def test_trivial_model_slices_the_images():
    images, grid = inference.random_inputs(SAMPLING_SIZE)
    model = inference.sampling_model(SAMPLING_SIZE, inference.SliceToGrid())
    np.testing.assert_array_equal(
        model.predict_on_batch([images, grid]), images
    )


def test_trivial_model_reads_the_grid_on_jax():
    """On JAX the grid enters the output (a NaN grid makes it NaN), so that
    `jax.jit` keeps the grid's transfer, which any model of it pays."""
    images, grid = inference.random_inputs(SAMPLING_SIZE)
    model = inference.sampling_model(SAMPLING_SIZE, inference.SliceToGrid())
    outputs = model.predict_on_batch([images, np.full_like(grid, np.nan)])
    if keras.backend.backend() == "jax":
        assert np.isnan(outputs).all()
    else:
        np.testing.assert_array_equal(outputs, images)


def test_identity_transformer_runs_its_localization_net():
    keras.utils.set_random_seed(0)
    images, _ = inference.random_inputs(ST_CNN_SIZE)
    layer = inference.IdentityTransformer()
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(layer(images)), images
    )
    assert layer.localization_net.built and layer.theta_regressor.built
    # A NaN theta reaches the output: the regression is not pruned away.
    nan_theta = keras.ops.full((ST_CNN_SIZE[0], 2, 3), np.nan)
    images = keras.ops.convert_to_tensor(images)
    assert np.isnan(
        keras.ops.convert_to_numpy(layer.warp(images, nan_theta))
    ).all()


def json_rows(rows):
    """The rows as `run.py` reads them: through a JSON line each."""
    return [json.loads(json.dumps(row)) for row in rows]


@pytest.fixture(scope="module")
def rows():
    sampling = inference.measure_sampling("tiny", SAMPLING_SIZE, 1.5, 1)
    st_cnn = inference.measure_st_cnn("tiny_st_cnn", ST_CNN_SIZE, 1.1, 1)
    return json_rows([*sampling, st_cnn])


def test_every_call_has_finite_ratios(rows):
    sampling = [row for row in rows if row["kind"] == "sampling"]
    calls = {row["call"] for row in sampling}
    compiled = {
        "jax": {"jit"},
        "tensorflow": {"predict_step", "tf_function"},
        "torch": {"eager", "torch_compile"},
    }[keras.backend.backend()]
    assert calls == {"predict_on_batch", "predict", *compiled}
    for row in sampling:
        for key in ("torch", "model", "trivial", "raw_ratio"):
            assert math.isfinite(row[key]) and row[key] > 0, (key, row)
        # keras-stn's share: the difference of two timings, which on tiny
        # sizes is below their noise and may be negative.
        assert math.isfinite(row["ours"]), row
        assert math.isfinite(row["ours_best"]), row
        # PyTorch's kernel in the same layer, on torch only.
        on_torch = keras.backend.backend() == "torch"
        assert (row["floor"] is not None) == on_torch, row
        assert row["floor"] is None or math.isfinite(row["floor"]), row
        # A graph of one's own may be exported, so it holds the backend's
        # own ops by design and no goal bounds it.
        exportable = row["call"] in inference.EXPORTABLE_CALLS
        assert (row["goal"] is None) == exportable, row
    (st_cnn,) = [row for row in rows if row["kind"] == "st_cnn"]
    for key in ("st_cnn", "identity_cnn", "ratio"):
        assert math.isfinite(st_cnn[key]) and st_cnn[key] > 0, (key, st_cnn)


def test_table_has_a_line_per_row(rows):
    text = run.inference_table(rows)
    sampling, st_cnn = text.split("\n\n")
    # Header, separator, then the rows.
    assert len(sampling.splitlines()) == 2 + len(rows) - 1
    assert len(st_cnn.splitlines()) == 2 + 1
    for row in rows[:-1]:
        assert f"| {row['call']} |" in sampling
        line = next(
            line
            for line in sampling.splitlines()
            if f"| {row['call']} |" in line
        )
        assert line.endswith("| none |") == (row["goal"] is None), line
    assert "3x10x12x2" in sampling and "2x32x32x3" in st_cnn
    assert "nan" not in text and "inf" not in text
