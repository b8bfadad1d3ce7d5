"""The MNIST addition experiment, `examples/mnist_addition.py` and
`examples/mnist_addition_data.py`: the pairs against their digits and
drawn distortions, the nets, the specialization measure, and a short
end-to-end run on a tiny fake data set."""

import json

import keras
import numpy as np
import pytest
from scipy import ndimage

import keras_stn

import mnist_addition
import mnist_addition_data
from conftest import fake_digits
from helpers import BACKEND

COUNT = 200


@pytest.fixture(scope="module")
def digits():
    """Smooth fake digits and labels, and pairs of them.

    Smooth, so that bilinear sampling keeps their ink when it shrinks them.
    """
    strokes = ndimage.gaussian_filter(fake_digits(50, seed=4), (0, 1, 1))
    images = (255 * strokes / strokes.max()).astype("uint8")
    labels = np.random.default_rng(5).integers(0, 10, 50)
    return (
        images,
        labels,
        mnist_addition_data.make_pairs(images, labels, COUNT, seed=7),
    )


def centroids(images):
    """The centres of mass `(n, 2)`, `(row, col)`, of `(n, h, w)` images."""
    rows, cols = np.indices(images.shape[1:])
    mass = images.sum(axis=(1, 2))
    row = (images * rows).sum(axis=(1, 2)) / mass
    col = (images * cols).sum(axis=(1, 2)) / mass
    return np.stack([row, col], axis=1)


def test_pairs_are_labelled_with_the_sum_of_their_digits(digits):
    images, labels, pairs = digits
    assert pairs.images.shape == (COUNT, 42, 42, 2)
    assert pairs.images.dtype == np.float32
    assert 0.0 <= pairs.images.min() and pairs.images.max() <= 1.0
    assert pairs.sums.dtype == np.int32
    np.testing.assert_array_equal(pairs.digits, labels[pairs.indices])
    np.testing.assert_array_equal(pairs.sums, labels[pairs.indices].sum(1))
    assert set(np.unique(pairs.sums)) <= set(range(19))


def test_each_channel_holds_its_digit_moved_by_its_own_distortion(digits):
    images, _, pairs = digits
    for channel in range(2):
        drawn = pairs.parameters[channel]
        canvases = pairs.images[..., channel]
        digit = images[pairs.indices[:, channel]] / 255.0
        # RTS scales the ink by the scale squared and puts the digit's
        # centre of mass where its transform sends it.
        ink = canvases.sum(axis=(1, 2)) / digit.sum(axis=(1, 2))
        np.testing.assert_allclose(ink, drawn["scale"] ** 2, rtol=0.05)
        radians = np.deg2rad(drawn["angle"])
        cos, sin = np.cos(radians), np.sin(radians)
        matrices = (
            np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], 1)
            * drawn["scale"][:, None, None]
        )
        offsets = centroids(digit) - 13.5
        expected = 20.5 + drawn["shift"]
        expected = expected + np.einsum("nij,nj->ni", matrices, offsets)
        np.testing.assert_allclose(centroids(canvases), expected, atol=0.5)


def test_the_two_channels_are_distorted_independently(digits):
    _, _, pairs = digits
    first, second = pairs.parameters
    for name in ("angle", "scale"):
        assert abs(np.corrcoef(first[name], second[name])[0, 1]) < 0.2
    for axis in range(2):
        correlation = np.corrcoef(
            first["shift"][:, axis], second["shift"][:, axis]
        )[0, 1]
        assert abs(correlation) < 0.2
    # The digits are drawn independently too: pairs of equal digits are
    # about as rare as 1 in 50.
    assert np.mean(pairs.indices[:, 0] == pairs.indices[:, 1]) < 0.05


def test_pairs_follow_the_seed(digits):
    images, labels, pairs = digits
    again = mnist_addition_data.make_pairs(images, labels, COUNT, seed=7)
    np.testing.assert_array_equal(again.images, pairs.images)
    np.testing.assert_array_equal(again.sums, pairs.sums)
    other = mnist_addition_data.make_pairs(images, labels, COUNT, seed=8)
    assert not np.array_equal(other.indices, pairs.indices)
    with pytest.raises(ValueError, match="`count`"):
        mnist_addition_data.make_pairs(images, labels, 0, seed=7)


def test_the_test_pairs_do_not_depend_on_the_seed(fake_mnist):
    train, test = mnist_addition_data.prepare_data(fake_mnist, 1, 8, 6)
    other_train, other_test = mnist_addition_data.prepare_data(
        fake_mnist, 2, 8, 6
    )
    assert (len(train.sums), len(test.sums)) == (8, 6)
    np.testing.assert_array_equal(test.images, other_test.images)
    assert not np.array_equal(train.images, other_train.images)
    # By default, as many pairs as digits; and more pairs than digits.
    train, test = mnist_addition_data.prepare_data(fake_mnist, 1, 400)
    assert (len(train.sums), len(test.sums)) == (400, 100)


def test_fresh_pairs_are_the_same_pairs_distorted_anew(digits):
    images, labels, pairs = digits
    plain = mnist_addition_data.make_pairs(
        images, labels, COUNT, seed=7, distorted=False
    )
    # The same pairs as `make_pairs` with the seed draws, undistorted.
    np.testing.assert_array_equal(plain.indices, pairs.indices)
    np.testing.assert_array_equal(plain.sums, pairs.sums)
    np.testing.assert_array_equal(plain.images, images[pairs.indices])
    assert plain.parameters is None
    # Each epoch's distortion of them: RTS canvases holding each channel's
    # digit, different from one seed to the next, the same for one seed.
    first = mnist_addition_data.distort_pairs(plain.images, seed=1)
    again = mnist_addition_data.distort_pairs(plain.images, seed=1)
    other = mnist_addition_data.distort_pairs(plain.images, seed=2)
    assert first.shape == pairs.images.shape and first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    # Each channel holds its own digit, scaled by 0.7-1.2 in each direction:
    # its ink is that of the digit times 0.49-1.44 (up to resampling).
    ratio = first.sum(axis=(1, 2)) / (plain.images.sum(axis=(2, 3)) / 255.0)
    assert np.all((ratio > 0.45) & (ratio < 1.5))


def test_a_fresh_run_distorts_the_pairs_each_epoch(
    fake_mnist, tmp_path, monkeypatch
):
    seeds = []
    distort_pairs = mnist_addition.distort_pairs

    def spy(digit_pairs, seed):
        seeds.append(seed)
        assert digit_pairs.shape == (32, 2, 28, 28)
        return distort_pairs(digit_pairs, seed)

    monkeypatch.setattr(mnist_addition, "distort_pairs", spy)
    argv = ["--data", str(fake_mnist), "--train-samples", "32"]
    argv += ["--test-samples", "16", "--epochs", "2", "--verbose", "0"]
    argv += ["--batch-size", "16", "--protocol", "fresh"]
    results = mnist_addition.main(
        argv + ["--model", "st-fcn", "--output-dir", str(tmp_path)]
    )
    assert results["protocol"] == "fresh"
    assert results["train_samples"] == 32
    # One distortion of the pairs an epoch, each with its own seed.
    assert len(seeds) == 2 and seeds[0] != seeds[1]
    assert 0 <= results["error_percent"] <= 100
    args = mnist_addition.parse_args(["--protocol", "fresh"])
    assert str(args.output_dir).endswith("mnist_addition/2xst-fcn_affine_fresh")


@pytest.mark.parametrize(
    "model, transformers",
    [("fcn", 0), ("cnn", 0), ("st-fcn", 1), ("2xst-fcn", 2)],
)
def test_nets(model, transformers):
    net = mnist_addition.build_model(model, "tps")
    assert net.input_shape == (None, 42, 42, 2)
    assert net.output_shape == (None, 19)
    found = [
        layer
        for layer in net.layers
        if isinstance(layer, keras_stn.SpatialTransformer)
    ]
    assert found == mnist_addition.transformer_layers(net)
    assert len(found) == transformers
    for layer in found:
        assert isinstance(layer.transform, keras_stn.transforms.ThinPlateSpline)
        assert layer.output.shape == (None, 28, 28, 2)
    if transformers:
        assert found[0].name == "spatial_transformer"
    if model != "cnn":
        reference = mnist_addition.build_model("2xst-fcn").count_params()
        assert abs(net.count_params() / reference - 1) < 0.01


def test_unknown_model_or_transform_is_rejected():
    with pytest.raises(ValueError, match="`model`.*'3xst-fcn'"):
        mnist_addition.build_model("3xst-fcn")
    with pytest.raises(ValueError, match="`transform`.*'shear'"):
        mnist_addition.build_model("st-fcn", "shear")


def attention_reading_pixels(first_pixel, images):
    """An attention transformer whose theta is 3 pixels of its input,
    from the `first_pixel`-th on (flattened), built on `images`."""
    layer = keras_stn.SpatialTransformer(
        keras.Sequential([keras.layers.Flatten()]),
        transform="attention",
        output_size=(28, 28),
        normalize_features=False,
    )
    layer.build(images.shape)
    kernel, bias = layer.theta_regressor.get_weights()
    kernel = np.zeros_like(kernel)
    kernel[np.arange(first_pixel, first_pixel + 3), np.arange(3)] = 1.0
    layer.theta_regressor.set_weights([kernel, np.zeros_like(bias)])
    return layer


def test_window_correlations_find_the_digit_each_transformer_follows():
    rng = np.random.default_rng(0)
    images = rng.random((64, 42, 42, 2)).astype("float32")
    shifts = rng.uniform(-6, 6, (64, 2, 2))
    # The first transformer looks at channel 1's digit: its theta, (scale,
    # x, y), read from the first pixels, is set to zoom in there. The
    # second one's view does not move.
    pixels = images.reshape(64, -1)
    pixels[:, 0] = 0.6
    pixels[:, 1:3] = shifts[:, 1, ::-1] / 21.0
    pixels[:, 3:6] = [0.6, 0.0, 0.0]
    layers = [attention_reading_pixels(0, images)]
    layers.append(attention_reading_pixels(3, images))
    correlations = mnist_addition.window_correlations(layers, images, shifts)
    assert correlations[0, 1] > 0.999
    assert abs(correlations[0, 0]) < 0.3
    assert correlations[1].tolist() == [0.0, 0.0]


def test_a_short_run_trains_and_saves_everything(fake_mnist, tmp_path, capsys):
    output_dir = tmp_path / "outputs"
    argv = ["--data", str(fake_mnist), "--train-samples", "64"]
    argv += ["--test-samples", "32", "--epochs", "1", "--batch-size", "32"]
    argv += ["--seed", "3", "--output-dir", str(output_dir), "--verbose", "0"]
    results = mnist_addition.main(argv + ["--model", "2xst-fcn"])

    out = capsys.readouterr().out
    assert "Test error" in out and "Transformer 2:" in out
    saved = json.loads((output_dir / "results.json").read_text())
    assert saved == results
    assert saved["backend"] == BACKEND
    assert (saved["model"], saved["transform"]) == ("2xst-fcn", "affine")
    assert (saved["train_samples"], saved["test_samples"]) == (64, 32)
    correlations = np.array(saved["window_digit_correlation"])
    assert correlations.shape == (2, 2)
    assert np.all(np.abs(correlations) <= 1)

    # The saved model is the trained one: it reproduces the test accuracy.
    model = keras.models.load_model(output_dir / "model.keras")
    assert model.count_params() == saved["parameters"]
    _, test = mnist_addition_data.prepare_data(fake_mnist, 3, 64, 32)
    probabilities = model.predict(test.images, batch_size=32, verbose=0)
    accuracy = np.mean(probabilities.argmax(axis=1) == test.sums)
    assert accuracy == pytest.approx(saved["accuracy"], abs=1e-6)
    # The picture: one block a transformer, one above the other.
    png = output_dir / "transformer_outputs.png"
    assert png.stat().st_size < 300_000
    first = keras_stn.callbacks.draw_transformer(
        model.get_layer("spatial_transformer"), test.images[:8], columns=4
    )
    width, height = keras.utils.load_img(png).size
    assert (height, width) == (2 * first.shape[0] + 6, first.shape[1])
    snapshots = sorted(p.name for p in (output_dir / "snapshots").iterdir())
    assert snapshots == ["epoch_000.png", "epoch_001.png"]


def test_a_plain_net_runs_without_pictures_or_correlations(
    fake_mnist, tmp_path
):
    argv = ["--data", str(fake_mnist), "--train-samples", "32"]
    argv += ["--test-samples", "16", "--epochs", "1", "--verbose", "0"]
    results = mnist_addition.main(
        argv + ["--model", "fcn", "--output-dir", str(tmp_path)]
    )
    assert results["transform"] is None
    assert results["window_digit_correlation"] is None
    assert results["paper_error_percent"] == 47.7
    assert not (tmp_path / "transformer_outputs.png").exists()
    args = mnist_addition.parse_args(
        ["--model", "st-fcn", "--transform", "tps"]
    )
    assert str(args.output_dir).endswith("mnist_addition/st-fcn_tps")
