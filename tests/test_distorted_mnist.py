"""The distorted-MNIST experiment, `examples/distorted_mnist.py`: short
end-to-end runs on a tiny fake data set, for ST and plain nets."""

import itertools
import json

import keras
import numpy as np
import pytest

import keras_stn

import distorted_mnist
import experiment
from distortions import distort
from helpers import BACKEND


def run(fake_mnist, output_dir, *options):
    """Run the script for one epoch on 128 training and 64 test images."""
    argv = ["--data", str(fake_mnist), "--train-samples", "128"]
    argv += ["--test-samples", "64", "--epochs", "1", "--batch-size", "64"]
    argv += ["--seed", "3", "--output-dir", str(output_dir), "--verbose", "0"]
    return distorted_mnist.main(argv + list(options))


@pytest.mark.parametrize(
    "distortion, transform, size",
    [
        ("rts", "affine", 42),
        ("cluttered", "tps", 60),
        ("elastic", "projective", 28),
    ],
)
def test_st_cnn_trains_and_saves_everything(
    fake_mnist, tmp_path, capsys, distortion, transform, size
):
    output_dir = tmp_path / "outputs"
    results = run(
        fake_mnist,
        output_dir,
        "--distortion",
        distortion,
        "--transform",
        transform,
        "--log-dir",
        str(tmp_path / "logs"),
    )

    assert "Test error" in capsys.readouterr().out
    saved = json.loads((output_dir / "results.json").read_text())
    assert saved == results
    assert saved["backend"] == BACKEND
    assert (saved["distortion"], saved["model"]) == (distortion, "st-cnn")
    assert saved["transform"] == transform
    assert (saved["train_samples"], saved["test_samples"]) == (128, 64)
    assert saved["error_percent"] == pytest.approx(
        100 * (1 - saved["accuracy"]), abs=0.006
    )

    # The saved model loads without custom objects and is the trained one:
    # it reproduces the reported test accuracy and loss.
    model = keras.models.load_model(output_dir / "model.keras")
    assert model.count_params() == saved["parameters"]
    _, (x_test, y_test) = distorted_mnist.prepare_data(
        fake_mnist, distortion, 3, 128, 64
    )
    assert x_test.shape == (64, size, size, 1)
    probabilities = model.predict(x_test, batch_size=64, verbose=0)
    accuracy = np.mean(probabilities.argmax(axis=1) == y_test)
    loss = -np.mean(np.log(probabilities[np.arange(64), y_test]))
    assert accuracy == pytest.approx(saved["accuracy"], abs=1e-6)
    assert loss == pytest.approx(saved["loss"], rel=1e-4)
    transformer = model.get_layer("spatial_transformer")
    output_size = 28 if distortion in ("rts", "cluttered") else size
    assert isinstance(
        transformer.transform, keras_stn.transforms.ALL_TRANSFORMS[transform]
    )
    assert tuple(transformer(x_test[:2]).shape) == (2, output_size, 28, 1)

    png = output_dir / "transformer_outputs.png"
    assert png.stat().st_size < 300_000
    assert keras.utils.load_img(png).size[0] > 4 * (size + output_size)
    snapshots = sorted(p.name for p in (output_dir / "snapshots").iterdir())
    assert snapshots == ["epoch_000.png", "epoch_001.png"]
    assert any((tmp_path / "logs").iterdir())


@pytest.mark.parametrize("model", ["cnn", "fcn", "st-fcn"])
def test_other_models_train(fake_mnist, tmp_path, model):
    results = run(fake_mnist, tmp_path, "--model", model)
    assert results["model"] == model
    assert results["distortion"] == "rts"
    saved = keras.models.load_model(tmp_path / "model.keras")
    assert saved.input_shape == (None, 42, 42, 1)
    has_transformer = model.startswith("st-")
    assert (tmp_path / "transformer_outputs.png").exists() == has_transformer
    assert (results["transform"] is None) != has_transformer


def test_the_cluttered_recipe_options(fake_mnist, tmp_path):
    results = run(
        fake_mnist,
        tmp_path,
        "--distortion",
        "cluttered",
        "--theta-scale",
        "0.1",
        "--localization-batch-norm",
    )
    assert results["theta_scale"] == 0.1
    assert results["localization_batch_norm"] is True
    saved = keras.models.load_model(tmp_path / "model.keras")
    layer = saved.get_layer("spatial_transformer")
    assert layer.theta_scale == 0.1
    assert any(
        isinstance(sublayer, keras.layers.BatchNormalization)
        for sublayer in layer.localization_net.layers
    )


def test_a_smaller_antialiased_view(fake_mnist, tmp_path):
    results = run(fake_mnist, tmp_path, "--view-size", "14", "--antialias")
    assert results["view_size"] == 14
    assert results["antialias"] is True
    saved = keras.models.load_model(tmp_path / "model.keras")
    layer = saved.get_layer("spatial_transformer")
    assert layer.antialias is True
    assert layer.output_size == (14, 14)
    args = distorted_mnist.parse_args(["--view-size", "14", "--antialias"])
    assert str(args.output_dir).endswith("rts_st-cnn_affine_view14_antialias")


def test_default_output_dir_names_the_run():
    args = distorted_mnist.parse_args(["--model", "st-fcn"])
    assert str(args.output_dir).endswith("rts_st-fcn_affine")
    args = distorted_mnist.parse_args(
        ["--distortion", "elastic", "--model", "cnn"]
    )
    assert str(args.output_dir).endswith("elastic_cnn")
    args = distorted_mnist.parse_args(
        ["--distortion", "projective", "--corner-std", "2.5"]
    )
    assert str(args.output_dir).endswith("projective_st-cnn_affine_corners2.5")


def test_corner_std_reaches_both_sets(fake_mnist):
    default = distorted_mnist.prepare_data(fake_mnist, "projective", 5, 16, 8)
    milder = distorted_mnist.prepare_data(
        fake_mnist, "projective", 5, 16, 8, corner_std=1.0
    )
    for (x_default, _), (x_milder, _) in zip(default, milder, strict=True):
        assert not np.allclose(x_default, x_milder)


def test_same_seed_same_data(fake_mnist):
    first = distorted_mnist.prepare_data(fake_mnist, "projective", 5, 16, 8)
    second = distorted_mnist.prepare_data(fake_mnist, "projective", 5, 16, 8)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    # The test set is distorted with the next seed.
    other = distorted_mnist.prepare_data(fake_mnist, "projective", 6, 16, 8)
    assert not np.allclose(first[0][0][:8], other[0][0][:8])


def test_bad_options_exit_with_a_clear_message(fake_mnist, tmp_path, capsys):
    argv = ["--data", str(fake_mnist), "--output-dir", str(tmp_path)]
    with pytest.raises(SystemExit, match="at most 100"):
        distorted_mnist.main(argv + ["--test-samples", "101"])
    with pytest.raises(SystemExit):
        distorted_mnist.main(argv + ["--distortion", "sheared"])
    assert "invalid choice: 'sheared'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        distorted_mnist.main(argv + ["--epochs", "0"])
    assert "expected a positive integer" in capsys.readouterr().err


def fresh_distortions(fake_mnist, seed, dataset=None):
    """The fresh-protocol training batches of 200 fake digits, batch 64."""
    (digits, labels), _ = distorted_mnist.prepare_data(
        fake_mnist, "rts", seed, 200, 8, protocol="fresh"
    )

    def rts(images, seed):
        return distort(images, "rts", seed)[0]

    dataset = dataset or experiment.FreshEpochs
    return dataset(digits, labels, rts, seed, 64)


def epoch_batches(dataset, epoch):
    """One epoch's images and labels, joined, read batch by batch."""
    steps = dataset.steps_per_epoch
    indices = range(epoch * steps, (epoch + 1) * steps)
    batches = [dataset[index] for index in indices]
    return tuple(np.concatenate(part) for part in zip(*batches, strict=True))


def test_fresh_distortions_change_each_epoch_and_follow_the_seed(fake_mnist):
    dataset = fresh_distortions(fake_mnist, seed=3)
    assert dataset.steps_per_epoch == 4
    assert dataset.num_batches is None
    epochs = [epoch_batches(dataset, epoch) for epoch in range(3)]
    (digits, labels), _ = distorted_mnist.prepare_data(
        fake_mnist, "rts", 3, 200, 8, protocol="fresh"
    )
    assert digits.shape == (200, 28, 28)
    for images, epoch_labels in epochs:
        assert images.shape == (200, 42, 42, 1)
        # Every digit once an epoch, in a new order.
        np.testing.assert_array_equal(np.sort(epoch_labels), np.sort(labels))
    for (first, first_labels), (second, second_labels) in itertools.pairwise(
        epochs
    ):
        assert not np.array_equal(first_labels, second_labels)
        # Not only shuffled but distorted anew: scaled differently, the
        # digits carry other amounts of ink.
        first_ink = np.sort(first.sum(axis=(1, 2, 3)))
        second_ink = np.sort(second.sum(axis=(1, 2, 3)))
        assert np.abs(first_ink - second_ink).mean() > 1.0
    # The same seed draws the same epochs; another seed, others.
    again = fresh_distortions(fake_mnist, seed=3)
    other = fresh_distortions(fake_mnist, seed=4)
    for epoch, (images, epoch_labels) in enumerate(epochs):
        same_images, same_labels = epoch_batches(again, epoch)
        np.testing.assert_array_equal(same_images, images)
        np.testing.assert_array_equal(same_labels, epoch_labels)
        assert not np.allclose(epoch_batches(other, epoch)[0], images)
    # The batches of past epochs are gone.
    with pytest.raises(IndexError, match="from epoch 1"):
        dataset[5]


def test_fit_sees_each_epochs_distortion(fake_mnist):
    class Recording(experiment.FreshEpochs):
        def __getitem__(self, index):
            batch = super().__getitem__(index)
            self.seen[index] = batch
            return batch

    Recording.seen = {}
    dataset = fresh_distortions(fake_mnist, 3, dataset=Recording)
    model = keras.Sequential(
        [
            keras.Input((42, 42, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ]
    )
    model.compile(
        "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    history = model.fit(**dataset.fit_arguments(), epochs=2, verbose=0)

    assert len(history.history["loss"]) == 2
    # Batches 0-3 of epoch 0, then 0-3 of epoch 1 (TensorFlow may prefetch
    # one more), each as drawn for its epoch.
    assert set(range(8)) <= set(Recording.seen) <= set(range(9))
    for epoch in range(2):
        images = np.concatenate(
            [Recording.seen[4 * epoch + i][0] for i in range(4)]
        )
        labels = np.concatenate(
            [Recording.seen[4 * epoch + i][1] for i in range(4)]
        )
        expected_images, expected_labels = dataset.draw(epoch)
        np.testing.assert_array_equal(images, expected_images)
        np.testing.assert_array_equal(labels, expected_labels)


def test_the_fresh_protocol_trains_and_tests_on_the_fixed_test_set(
    fake_mnist, tmp_path
):
    results = run(fake_mnist, tmp_path, "--protocol", "fresh", "--epochs", "2")
    assert results["protocol"] == "fresh"
    assert (results["epochs"], results["train_samples"]) == (2, 128)
    fixed, (x_test, y_test) = distorted_mnist.prepare_data(
        fake_mnist, "rts", 3, 128, 64
    )
    _, (fresh_x_test, fresh_y_test) = distorted_mnist.prepare_data(
        fake_mnist, "rts", 3, 128, 64, protocol="fresh"
    )
    np.testing.assert_array_equal(fresh_x_test, x_test)
    np.testing.assert_array_equal(fresh_y_test, y_test)
    model = keras.models.load_model(tmp_path / "model.keras")
    probabilities = model.predict(x_test, batch_size=64, verbose=0)
    accuracy = np.mean(probabilities.argmax(axis=1) == y_test)
    assert accuracy == pytest.approx(results["accuracy"], abs=1e-6)
    snapshots = sorted(p.name for p in (tmp_path / "snapshots").iterdir())
    assert snapshots == ["epoch_000.png", "epoch_001.png", "epoch_002.png"]
    args = distorted_mnist.parse_args(["--protocol", "fresh"])
    assert str(args.output_dir).endswith("rts_st-cnn_affine_fresh")
    with pytest.raises(ValueError, match="Received protocol='online'"):
        distorted_mnist.prepare_data(fake_mnist, "rts", 3, protocol="online")
