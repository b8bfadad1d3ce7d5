"""The co-localisation experiment, `examples/colocalisation.py`: its data,
loss, IoU, transform and model, and a short end-to-end run."""

import json

import colocalisation
import keras
import numpy as np
import pytest
from keras import ops

from conftest import fake_digits
from helpers import BACKEND


def test_digits_are_placed_whole_inside_their_boxes():
    digits = fake_digits(6, seed=4)
    canvases, boxes = colocalisation.place_digits(digits, seed=1)
    assert canvases.shape == (6, 84, 84, 1)
    assert canvases.dtype == boxes.dtype == np.float32
    assert boxes.shape == (6, 4)
    np.testing.assert_array_equal(boxes[:, 2:] - boxes[:, :2], 28)
    for canvas, box, digit in zip(canvases[..., 0], boxes, digits, strict=True):
        left, top = (box[:2] + 0.5).astype(int)
        window = canvas[top : top + 28, left : left + 28]
        # The frame holds the digit as it is, and no ink lies outside it.
        np.testing.assert_allclose(window, digit / 255.0, atol=1e-7)
        assert canvas.sum() == pytest.approx(window.sum())
    # Whole-pixel places, on the canvas.
    assert np.all(boxes[:, :2] >= -0.5) and np.all(boxes[:, 2:] <= 83.5)
    assert np.all((boxes + 0.5) % 1 == 0)


def test_clutter_adds_ink_around_the_digit():
    digits = fake_digits(6, seed=4)
    plain, boxes = colocalisation.place_digits(digits, seed=1)
    cluttered, cluttered_boxes = colocalisation.place_digits(
        digits, seed=1, clutter=True, clutter_images=fake_digits(20, seed=5)
    )
    np.testing.assert_array_equal(boxes, cluttered_boxes)
    # Clutter keeps the brighter pixel: the digit stays whole.
    assert np.all(cluttered >= plain)
    outside = np.ones(plain.shape[:3], bool)
    for index, box in enumerate(boxes.astype(int) + 1):
        outside[index, box[1] : box[3], box[0] : box[2]] = False
    assert np.all(cluttered[..., 0][outside].reshape(6, -1).sum(1) > 0)


def test_same_seed_same_canvases():
    digits = fake_digits(4, seed=4)
    first = colocalisation.place_digits(digits, 7, clutter=True)
    second = colocalisation.place_digits(digits, 7, clutter=True)
    other = colocalisation.place_digits(digits, 8, clutter=True)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[1], other[1])


def test_place_digits_rejects_other_shapes():
    with pytest.raises(ValueError, match="`images`.*Received shape"):
        colocalisation.place_digits(np.zeros((2, 32, 32), "uint8"), seed=0)


def test_triplet_loss_against_numpy():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(5, 2, 7)).astype("float32") * 0.5
    loss = colocalisation.TripletLoss(margin=1.0)
    value = float(loss(np.zeros(5), features))

    expected = []
    for n in range(5):
        crop, random_crop = features[n].astype("float64")
        partner = features[(n + 1) % 5, 0].astype("float64")
        positive = np.sum((crop - partner) ** 2)
        negative = np.sum((crop - random_crop) ** 2)
        expected.append(max(0.0, positive - negative + 1.0))
    # Both sides of the hinge occur.
    assert min(expected) == 0 < max(expected)
    assert value == pytest.approx(np.mean(expected), rel=1e-5)
    config = loss.get_config()
    assert colocalisation.TripletLoss.from_config(config).margin == 1.0
    with pytest.raises(ValueError, match="`margin`.*margin=-1"):
        colocalisation.TripletLoss(margin=-1)


@pytest.mark.parametrize(
    "box, other, iou",
    [
        ([0, 0, 2, 2], [0, 0, 2, 2], 1.0),
        ([0, 0, 2, 2], [3, 3, 5, 5], 0.0),
        ([0, 0, 2, 2], [2, 0, 4, 2], 0.0),  # touching edges
        ([0, 0, 2, 2], [1, 0, 3, 2], 2 / 6),
        ([0, 0, 4, 4], [1, 1, 3, 3], 4 / 16),
        ([0, 0, 2, 2], [1, 1, 3, 3], 1 / 7),
        ([1, 1, 1, 1], [1, 1, 1, 1], 0.0),  # empty boxes
    ],
)
def test_box_iou_by_hand(box, other, iou):
    value = colocalisation.box_iou(np.array(box, float), np.array(other, float))
    assert value == pytest.approx(iou)
    batch = colocalisation.box_iou(
        np.array([box, other]), np.array([other, box])
    )
    np.testing.assert_allclose(batch, [iou, iou])


def test_fixed_scale_attention():
    transform = colocalisation.FixedScaleAttention(scale=0.25)
    theta = ops.convert_to_numpy(transform.to_affine(np.array([[0.5, -0.25]])))
    np.testing.assert_allclose(theta[0], [[0.25, 0, 0.5], [0, 0.25, -0.25]])
    assert transform.parameter_shape(2) == (2,)
    np.testing.assert_array_equal(transform.identity(2), [0, 0])
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(transform)
    )
    assert restored.scale == 0.25
    with pytest.raises(ValueError, match="no closed-form inverse"):
        transform.invert(np.zeros((1, 2), "float32"))
    with pytest.raises(ValueError, match="`scale`.*scale=0"):
        colocalisation.FixedScaleAttention(scale=0)


def test_canvas_windows_stay_on_the_canvas():
    window = colocalisation.CanvasWindow(min_scale=0.25, start_scale=0.5)
    rng = np.random.default_rng(0)
    parameters = rng.normal(scale=5.0, size=(64, 3))
    theta = ops.convert_to_numpy(window.to_affine(parameters))
    scale = theta[:, 0, 0]
    sigmoid = 1 / (1 + np.exp(-parameters[:, 0]))
    np.testing.assert_allclose(scale, 0.25 + 0.75 * sigmoid, rtol=1e-5)
    np.testing.assert_allclose(theta[:, 1, 1], scale)
    np.testing.assert_allclose(theta[:, 0, 1], 0)
    centres = theta[:, :, 2]
    expected = (1 - scale[:, None]) * np.tanh(parameters[:, 1:])
    np.testing.assert_allclose(centres, expected, rtol=1e-5, atol=1e-6)
    assert np.all(np.abs(centres) + scale[:, None] <= 1 + 1e-6)
    start = ops.convert_to_numpy(window.to_affine(window.identity(2)[None]))
    np.testing.assert_allclose(start[0], [[0.5, 0, 0], [0, 0.5, 0]], atol=1e-6)
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(window)
    )
    assert (restored.min_scale, restored.start_scale) == (0.25, 0.5)
    with pytest.raises(ValueError, match="`min_scale`.*min_scale=1"):
        colocalisation.CanvasWindow(min_scale=1)
    with pytest.raises(ValueError, match="`start_scale`.*start_scale=0.1"):
        colocalisation.CanvasWindow(min_scale=0.25, start_scale=0.1)


def test_fixed_size_canvas_windows_keep_the_learnt_centres():
    coarse = colocalisation.CanvasWindow(min_scale=0.25, start_scale=0.5)
    fine = colocalisation.CanvasWindow(
        min_scale=0.25, start_scale=0.5, window_scale=0.2
    )
    parameters = np.random.default_rng(1).normal(scale=5.0, size=(64, 3))
    coarse_theta = ops.convert_to_numpy(coarse.to_affine(parameters))
    theta = ops.convert_to_numpy(fine.to_affine(parameters))
    np.testing.assert_allclose(theta[:, 0, 0], 0.2)
    np.testing.assert_allclose(theta[:, 1, 1], 0.2)
    np.testing.assert_allclose(theta[:, :, 2], coarse_theta[:, :, 2])
    # Centres within 1 - 0.25 of the middle keep 0.2-windows on the input.
    assert np.all(np.abs(theta[:, :, 2]) + 0.2 <= 1 + 1e-6)
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(fine)
    )
    assert restored.window_scale == 0.2
    with pytest.raises(ValueError, match="`window_scale`.*window_scale=0.3"):
        colocalisation.CanvasWindow(min_scale=0.25, window_scale=0.3)


def test_refined_colocaliser_crops_digit_windows_at_the_same_centres():
    keras.utils.set_random_seed(0)
    canvases, _ = colocalisation.place_digits(fake_digits(4), seed=0)
    coarse = colocalisation.build_colocaliser(tiny_encoder())
    transformer = coarse.get_layer("spatial_transformer")
    # Move the windows off the centre, as training would.
    weights = transformer.get_weights()
    weights[-1] = weights[-1] + np.array([0.0, 0.8, -0.5], "float32")
    transformer.set_weights(weights)
    refined = colocalisation.build_colocaliser(tiny_encoder(), refined=True)
    refined.get_layer("spatial_transformer").set_weights(weights)
    before = colocalisation.predicted_boxes(transformer, canvases, 4)
    after = colocalisation.predicted_boxes(
        refined.get_layer("spatial_transformer"), canvases, 4
    )
    np.testing.assert_allclose(after[:, 2:] - after[:, :2], 28, atol=1e-4)
    np.testing.assert_allclose(
        after[:, :2] + after[:, 2:], before[:, :2] + before[:, 2:], atol=1e-4
    )
    assert not np.allclose(before[:, 0], 3.7, atol=0.5)  # moved
    with pytest.raises(ValueError, match="`refined=True`.*`fixed_scale"):
        colocalisation.build_colocaliser(
            tiny_encoder(), fixed_scale=True, refined=True
        )


def test_random_crops_stay_on_the_canvas():
    layer = colocalisation.RandomCrops((7, 7), scale=1 / 3, seed=2)
    # On a canvas of ones, any point off it would read the zero padding.
    crops = ops.convert_to_numpy(layer(np.ones((16, 21, 21, 1), "float32")))
    assert crops.shape == (16, 7, 7, 1)
    np.testing.assert_allclose(crops, 1.0, atol=1e-6)
    ramp = np.tile(np.arange(21, dtype="float32"), (4, 21, 1))[..., None]
    first, second = (ops.convert_to_numpy(layer(ramp)) for _ in range(2))
    assert not np.allclose(first, second)  # new windows at every call
    with pytest.raises(ValueError, match="`scale`.*scale=1.5"):
        colocalisation.RandomCrops((7, 7), scale=1.5)


def tiny_encoder():
    """A frozen stand-in for the MNIST classifier's features."""
    encoder = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.AveragePooling2D(7),
            keras.layers.Flatten(),
            colocalisation.UnitLength(),
        ]
    )
    encoder.trainable = False
    return encoder


def test_one_training_step_moves_the_windows(tmp_path):
    keras.utils.set_random_seed(0)
    canvases, _ = colocalisation.place_digits(fake_digits(8), seed=0)
    model = colocalisation.build_colocaliser(tiny_encoder(), seed=1)
    assert model.output_shape == (None, 2, 16)
    transformer = model.get_layer("spatial_transformer")

    # Untrained, the transformer crops the centred window of 90% of the
    # canvas: 0.9 * 84 = 75.6 pixels wide.
    before = colocalisation.predicted_boxes(transformer, canvases, 4)
    np.testing.assert_allclose(before, [[3.7, 3.7, 79.3, 79.3]] * 8, atol=1e-4)

    model.compile(
        optimizer=keras.optimizers.Adam(0.1),
        loss=colocalisation.TripletLoss(),
    )
    history = model.fit(canvases, np.zeros(8), batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = colocalisation.predicted_boxes(transformer, canvases, 8)
    assert not np.allclose(after, before)
    # The windows stay on the canvas and at least as large as a digit.
    assert np.all(after[:, :2] >= -0.5 - 1e-4)
    assert np.all(after[:, 2:] <= 83.5 + 1e-4)
    assert np.all(after[:, 2:] - after[:, :2] >= 28 - 1e-4)

    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    theta = loaded.get_layer("spatial_transformer").compute_theta(canvases)
    expected = transformer.compute_theta(canvases)
    np.testing.assert_allclose(
        ops.convert_to_numpy(theta), ops.convert_to_numpy(expected), atol=1e-6
    )


def test_fixed_scale_starts_with_the_centred_digit_window():
    model = colocalisation.build_colocaliser(tiny_encoder(), fixed_scale=True)
    transformer = model.get_layer("spatial_transformer")
    boxes = colocalisation.predicted_boxes(
        transformer, np.zeros((2, 84, 84, 1), "float32"), 2
    )
    np.testing.assert_allclose(boxes, [[27.5, 27.5, 55.5, 55.5]] * 2, atol=1e-4)


def test_the_script_runs_and_saves_everything(fake_mnist, tmp_path, capsys):
    output_dir = tmp_path / "outputs"
    argv = ["--data", str(fake_mnist), "--digits", "2", "--clutter"]
    argv += ["--train-samples", "16", "--test-samples", "8", "--epochs", "1"]
    argv += ["--encoder-epochs", "1", "--batch-size", "16", "--verbose", "0"]
    argv += ["--refine-epochs", "1"]
    results = colocalisation.main(argv + ["--output-dir", str(output_dir)])

    assert "Digit 2: IoU > 0.5" in capsys.readouterr().out
    saved = json.loads((output_dir / "results.json").read_text())
    assert saved == results
    assert saved["backend"] == BACKEND
    assert saved["clutter"] is True and saved["fixed_scale"] is False
    digit = saved["digits"]["2"]
    assert digit["train_samples"] == 16
    assert 0 <= digit["iou_share_percent"] <= 100
    assert 0 <= digit["mean_iou"] <= 1
    assert digit["mean_predicted_side"] == pytest.approx(28, abs=1e-3)
    assert digit["before_refinement"]["mean_predicted_side"] > 28
    assert saved["refine_epochs"] == 1
    picture = keras.utils.load_img(output_dir / "colocalisation.png")
    assert picture.size == (8 * 86, 86)
    assert (output_dir / "model_digit2.keras").exists()
    assert (output_dir / "encoder.keras").exists()
    assert any((output_dir / "snapshots" / "digit2").iterdir())
    assert any((output_dir / "snapshots" / "digit2_refined").iterdir())


def test_fresh_protocol_places_the_digits_anew_each_epoch():
    digits = fake_digits(6, seed=4)
    clutter = fake_digits(20, seed=5)
    args = colocalisation.parse_args(["--batch-size", "4"])
    fixed = colocalisation.training_canvases(digits, 3, args, 2, clutter)
    # Under "fixed", the canvases of `place_digits` with the seed, as before.
    expected, _ = colocalisation.place_digits(digits, 3, True, clutter)
    np.testing.assert_array_equal(fixed["x"], expected)
    np.testing.assert_array_equal(fixed["y"], np.zeros(6))

    args = colocalisation.parse_args(
        ["--batch-size", "4", "--protocol", "fresh"]
    )
    fresh = colocalisation.training_canvases(digits, 3, args, 2, clutter)
    batches = fresh["x"]
    assert fresh["steps_per_epoch"] == 2 and fresh["shuffle"] is False
    epochs = [
        np.concatenate(
            [batches[step][0] for step in (2 * epoch, 2 * epoch + 1)]
        )
        for epoch in (0, 1)
    ]
    for canvases in epochs:
        assert canvases.shape == (6, 84, 84, 1)
        # Every canvas holds one of the digits whole, and the clutter.
        ink = canvases.sum(axis=(1, 2, 3))
        assert np.all(ink > digits.sum(axis=(1, 2)).min() / 255.0)
    assert not np.array_equal(epochs[0], epochs[1])
    # Without clutter images, the canvases hold the digits alone.
    clean = colocalisation.training_canvases(digits, 3, args, 1)["x"]
    canvases = np.concatenate([clean[0][0], clean[1][0]])
    np.testing.assert_allclose(
        np.sort(canvases.sum(axis=(1, 2, 3))),
        np.sort(digits.sum(axis=(1, 2)) / 255.0),
        rtol=1e-5,
    )


def test_the_clutter_curriculum_runs_fresh(fake_mnist, tmp_path, monkeypatch):
    # Which canvases the run places, in order: clutter or not, how many.
    placed = []
    place_digits = colocalisation.place_digits

    def spy(images, seed, clutter=False, clutter_images=None):
        placed.append((clutter, len(images)))
        return place_digits(images, seed, clutter, clutter_images)

    monkeypatch.setattr(colocalisation, "place_digits", spy)
    argv = ["--data", str(fake_mnist), "--digits", "4", "--clutter"]
    argv += ["--clean-first-phase", "--protocol", "fresh"]
    argv += ["--train-samples", "16", "--test-samples", "8", "--epochs", "1"]
    argv += ["--encoder-epochs", "1", "--batch-size", "8", "--verbose", "0"]
    argv += ["--refine-epochs", "2", "--output-dir", str(tmp_path)]
    results = colocalisation.main(argv)
    assert results["protocol"] == "fresh" and results["clean_first_phase"]
    digit = results["digits"]["4"]
    assert digit["train_samples"] == 16
    assert 0 <= digit["iou_share_percent"] <= 100
    assert digit["mean_predicted_side"] == pytest.approx(28, abs=1e-3)
    # The cluttered test canvases, then the first phase's epoch without
    # clutter, then the refinement's two epochs with it (each epoch placed
    # anew, the next one while the current one trains).
    assert placed == [(True, 8), (False, 16), (True, 16), (True, 16)]


def test_default_output_dir_names_the_run():
    args = colocalisation.parse_args(["--clutter", "--fixed-scale"])
    assert str(args.output_dir).endswith("cluttered_fixed_scale")
    args = colocalisation.parse_args(
        ["--clutter", "--clean-first-phase", "--protocol", "fresh"]
    )
    assert str(args.output_dir).endswith("cluttered_clean_first_phase_fresh")
    for argv in (
        ["--clean-first-phase"],
        ["--clutter", "--clean-first-phase", "--refine-epochs", "0"],
    ):
        with pytest.raises(SystemExit):
            colocalisation.parse_args(argv)
    assert colocalisation.parse_args([]).digits == list(range(10))
    with pytest.raises(SystemExit):
        colocalisation.parse_args(["--refine-epochs", "-1"])


def test_localisation_metrics_by_hand():
    true_boxes = np.array([[0.0, 0.0, 28.0, 28.0], [10.0, 10.0, 38.0, 38.0]])
    # A 42-pixel box centred on the first digit: IoU 784 / 1764 < 0.5; the
    # second box is the true one moved by 3 and 4 pixels.
    boxes = np.array([[-7.0, -7.0, 35.0, 35.0], [13.0, 14.0, 41.0, 42.0]])
    metrics = colocalisation.localisation_metrics(boxes, true_boxes)
    assert metrics["mean_iou"] == pytest.approx(
        (784 / 1764 + 25 * 24 / (2 * 784 - 25 * 24)) / 2, abs=1e-3
    )
    assert metrics["iou_share_percent"] == 50.0
    assert metrics["digit_box_share_percent"] == 100.0
    assert metrics["mean_centre_error"] == 2.5  # (0 + 5) / 2
    assert metrics["mean_predicted_side"] == 35.0
    # The centred box (27.5 to 55.5) meets neither digit's box enough.
    assert metrics["centre_box_share_percent"] == 0.0
