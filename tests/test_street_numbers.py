"""The street-number experiment, `examples/street_numbers.py`: the readers,
the sequence accuracy, and short end-to-end runs on fake MNIST digits and
on a tiny SVHN folder in the real format."""

import json

import keras
import numpy as np
import pytest

import keras_stn

import street_numbers
from helpers import BACKEND
from svhn_fixture import write_svhn_split

BLANK = 10


def one_hot(classes, count):
    """Probabilities that put all their mass on `classes`."""
    return np.eye(count)[np.asarray(classes)]


def test_sequence_accuracy_needs_the_length_and_every_digit():
    lengths = np.array([2, 1, 3, 2])
    digits = np.array(
        [
            [4, 2, BLANK, BLANK, BLANK],
            [7, BLANK, BLANK, BLANK, BLANK],
            [1, 0, 5, BLANK, BLANK],
            [9, 9, BLANK, BLANK, BLANK],
        ]
    )
    read = digits.copy()
    read[1, 3] = 6  # Past the length: not read, so not counted.
    read[2, 1] = 8  # A wrong digit.
    read_lengths = np.array([2, 1, 3, 3])  # The last length is wrong.
    predictions = {"length": one_hot(read_lengths - 1, 5)}
    for i in range(5):
        predictions[f"digit_{i + 1}"] = one_hot(read[:, i], 11)
    assert street_numbers.sequence_accuracy(
        predictions, lengths, digits
    ) == pytest.approx(0.5)


def test_targets_follow_the_output_names():
    lengths = np.array([1, 5])
    digits = np.array([[3, BLANK, BLANK, BLANK, BLANK], [1, 2, 3, 4, 5]])
    targets = street_numbers.targets(lengths, digits)
    assert list(targets) == street_numbers.output_names()
    np.testing.assert_array_equal(targets["length"], [0, 4])
    np.testing.assert_array_equal(targets["digit_1"], [3, 1])
    np.testing.assert_array_equal(targets["digit_5"], [BLANK, 5])


@pytest.mark.parametrize(
    "model, transformers", [("cnn", 0), ("st-cnn", 1), ("multi-st-cnn", 4)]
)
def test_readers(model, transformers):
    reader = street_numbers.build_reader(model)
    found = [
        layer
        for layer in reader.layers
        if isinstance(layer, keras_stn.SpatialTransformer)
    ]
    assert len(found) == transformers
    if transformers:
        first = reader.get_layer("spatial_transformer")
        assert first is found[0]
        assert first.input.shape[1:] == (64, 64, 3)
        assert first.output.shape[1:] == (32, 64, 3)
    images = np.random.default_rng(0).uniform(size=(2, 64, 64, 3))
    view = reader.layers[1](images)
    # Starting at the identity, every net reads the average of row pairs.
    row_pairs = images.reshape(2, 32, 2, 64, 3).mean(axis=2)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(view), row_pairs, atol=1e-5
    )
    if model == "multi-st-cnn":
        # The deeper transformers warp feature maps of the first three
        # convolutions, in place.
        channels = [layer.input.shape[-1] for layer in found[1:]]
        assert channels == list(street_numbers.FILTERS[:3])
    outputs = reader.predict(images, verbose=0)
    assert sorted(outputs) == sorted(street_numbers.output_names())
    assert outputs["length"].shape == (2, 5)
    assert outputs["digit_3"].shape == (2, 11)
    np.testing.assert_allclose(outputs["digit_3"].sum(-1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="`model`"):
        street_numbers.build_reader("rnn")


def run(output_dir, *options):
    """Run the script for one epoch on 64 training and 32 test numbers."""
    argv = ["--train-samples", "64", "--test-samples", "32", "--epochs", "1"]
    argv += ["--batch-size", "32", "--output-dir", str(output_dir)]
    return street_numbers.main(argv + ["--verbose", "0", *options])


def test_synthetic_run_trains_and_saves_everything(
    fake_mnist, tmp_path, capsys
):
    output_dir = tmp_path / "outputs"
    results = run(
        output_dir, "--model", "multi-st-cnn", "--data", str(fake_mnist)
    )
    assert "Sequence accuracy" in capsys.readouterr().out
    saved = json.loads((output_dir / "results.json").read_text())
    assert saved == results
    assert (saved["model"], saved["data"]) == ("multi-st-cnn", "synthetic")
    assert saved["backend"] == BACKEND
    assert (saved["train_samples"], saved["test_samples"]) == (64, 32)

    # The saved model is the trained one: it reproduces the accuracy.
    model = keras.models.load_model(output_dir / "model.keras")
    assert model.count_params() == saved["parameters"]
    args = street_numbers.parse_args(
        ["--data", str(fake_mnist), "--train-samples", "64"]
        + ["--test-samples", "32"]
    )
    _, (x_test, lengths, digits) = street_numbers.prepare_data(args)
    assert x_test.shape == (32, 64, 64, 3)
    predictions = model.predict(x_test, verbose=0)
    assert street_numbers.sequence_accuracy(
        predictions, lengths, digits
    ) == pytest.approx(saved["sequence_accuracy"])

    png = output_dir / "transformer_outputs.png"
    assert png.stat().st_size < 300_000
    snapshots = sorted(p.name for p in (output_dir / "snapshots").iterdir())
    assert snapshots == ["epoch_000.png", "epoch_001.png"]


def test_svhn_run_reads_the_svhn_folder(tmp_path):
    for split in ("train", "test"):
        write_svhn_split(tmp_path / "svhn" / split)
    argv = ["--svhn", str(tmp_path / "svhn"), "--output-dir"]
    argv += [str(tmp_path / "outputs"), "--epochs", "1", "--verbose", "0"]
    results = street_numbers.main(argv + ["--model", "cnn"])
    # The fixture's six-digit number is dropped: 3 numbers a split.
    assert results["data"] == str(tmp_path / "svhn")
    assert (results["train_samples"], results["test_samples"]) == (3, 3)
    assert not (tmp_path / "outputs" / "transformer_outputs.png").exists()


def test_synthetic_data_follow_the_seed(fake_mnist):
    options = ["--data", str(fake_mnist), "--train-samples", "8"]
    options += ["--test-samples", "8"]
    first = street_numbers.prepare_data(street_numbers.parse_args(options))
    again = street_numbers.prepare_data(street_numbers.parse_args(options))
    other = street_numbers.prepare_data(
        street_numbers.parse_args(options + ["--seed", "1"])
    )
    np.testing.assert_array_equal(first[0][0], again[0][0])
    np.testing.assert_array_equal(first[1][2], again[1][2])
    assert not np.allclose(first[0][0], other[0][0])
    # Training and test numbers are made with different seeds.
    assert not np.allclose(first[0][0], first[1][0])
