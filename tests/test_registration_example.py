"""The registration example, `examples/registration.py`: its data, nets and
metrics on tiny sizes, and one short end-to-end run."""

import json

import keras
import numpy as np
import pytest

import registration
from helpers import BACKEND


def test_digits_are_padded_and_paired_within_their_class(fake_mnist):
    with np.load(fake_mnist) as data:
        x_train, y_train = data["x_train"][:60], data["y_train"][:60]
    train, test = registration.prepare_digits(fake_mnist, "atlas", 0, 60, 20)
    moving, fixed, labels = train
    assert moving.shape == fixed.shape == (60, 32, 32, 1)
    assert moving.dtype == fixed.dtype == np.float32
    assert test[0].shape == test[1].shape == (20, 32, 32, 1)
    np.testing.assert_array_equal(labels, y_train)
    np.testing.assert_allclose(moving[:, 2:30, 2:30, 0], x_train / 255.0)
    assert moving[:, :2].max() == moving[:, 30:].max() == 0
    assert 0 <= moving.min() and moving.max() <= 1
    # The atlas: the mean training digit of the class.
    for i in (0, 7, 59):
        mean = x_train[y_train == y_train[i]].mean(axis=0) / 255.0
        np.testing.assert_allclose(fixed[i, 2:30, 2:30, 0], mean, atol=1e-6)

    for moving, fixed, labels in registration.prepare_digits(
        fake_mnist, "pair", 0, 60, 20
    ):
        flat = moving.reshape(len(moving), -1)
        for i, image in enumerate(fixed.reshape(len(fixed), -1)):
            (partner,) = np.flatnonzero((flat == image).all(axis=1))
            assert labels[partner] == labels[i]
            assert partner != i or np.sum(labels == labels[i]) == 1


def test_the_volume_unet_predicts_a_field_of_one_vector_per_voxel():
    # The images' U-Net is checked by the next test.
    volumes = keras.KerasTensor((None, 8, 8, 8, 1))
    unet = registration.build_unet((8, 8, 8, 1), widths=(2, 2))
    assert tuple(unet([volumes, volumes]).shape) == (None, 8, 8, 8, 3)
    # 3x3x3 convolutions with biases: 2 -> 2 channels on each level, 4 -> 2
    # after the skip connection, 2 -> 3 for the field.
    assert unet.count_params() == (2 * 2 + 2 * 2 + 4 * 2 + 2 * 3) * 27 + 9


def test_the_net_starts_near_the_identity_and_trains():
    rng = np.random.default_rng(0)
    moving = rng.random((4, 16, 16, 1), "float32")
    fixed = rng.random((4, 16, 16, 1), "float32")
    model = registration.build_registration_model((16, 16, 1), (4, 8))
    registration.compile_registration_model(model, "mse", 0.05)
    field = model.get_layer("unet")([moving, fixed])
    field = keras.ops.convert_to_numpy(field)
    assert field.shape == (4, 16, 16, 2)
    assert np.abs(field).max() < 1e-3
    zeros = np.zeros_like(field)
    logs = model.train_on_batch(
        [moving, fixed], [fixed, zeros], return_dict=True
    )
    moved_loss, field_loss = logs["moved_loss"], logs["field_loss"]
    # The step starts at the identity: the moved images are the moving
    # ones, and the field is flat.
    mse = np.mean((moving - fixed) ** 2)
    assert moved_loss == pytest.approx(mse, rel=1e-3)
    assert 0 <= field_loss < 1e-6
    assert logs["loss"] == pytest.approx(moved_loss + 0.05 * field_loss)


def test_dice_against_counted_pixels():
    a = np.zeros((2, 4, 4, 1), "float32")
    b = np.zeros((2, 4, 4, 1), "float32")
    a[0, 0, :3] = 2.0  # 3 pixels above half the maximum,
    a[0, 3, 3] = 0.9  # and one below.
    b[0, 0, 1:4] = 0.7  # 3 pixels, 2 of them in a's foreground
    b[0, 1, 0] = 0.6  # and one more: Dice 2 * 2 / (3 + 4).
    # The second pair is empty in both images: Dice 1.
    expected = (4 / 7 + 1) / 2
    assert registration.dice(a, b) == pytest.approx(expected)
    assert registration.dice(b, a) == pytest.approx(expected)
    assert registration.dice(a[:1], a[:1]) == 1.0


def test_fold_share_against_a_finite_difference_jacobian():
    # x moves by 0.9 * sin(2 pi x / 8) * 8 / pi: the x derivative swings
    # from -1.8 to 1.8 along the width, y by a gentle shear.
    y, x = np.mgrid[0:12, 0:16].astype("float64")
    field = np.zeros((2, 12, 16, 2))
    field[0, ..., 0] = 0.9 * 8 / np.pi * np.sin(2 * np.pi * x / 8)
    field[0, ..., 1] = 0.1 * x
    field[1, ..., 1] = 0.3 * np.cos(y)
    du_x = np.gradient(field[..., 0], axis=(1, 2))
    du_y = np.gradient(field[..., 1], axis=(1, 2))
    determinant = (1 + du_x[1]) * (1 + du_y[0]) - du_x[0] * du_y[1]
    assert np.abs(determinant).min() > 0.05  # no ties at 0
    expected = np.mean(determinant <= 0)
    assert 0.1 < expected < 0.5
    share = registration.fold_share(field.astype("float32"), batch_size=1)
    assert share == pytest.approx(expected)


def test_fold_share_of_linear_volume_fields():
    z, y, x = np.mgrid[0:4, 0:5, 0:6].astype("float32")
    mirror = np.stack([-2 * x, 0 * y, 0 * z], axis=-1)  # det -1
    stretch = np.stack([x, 0.5 * y, -0.5 * z], axis=-1)  # det 1.5
    fields = np.stack([mirror, stretch, stretch])
    assert registration.fold_share(fields) == pytest.approx(1 / 3)


def test_the_volumes_are_blobs_and_their_smooth_deformation():
    velocity = registration.smooth_velocities(
        2, 8, np.random.default_rng(0), sigma=2.0, amplitude=1.5
    )
    assert velocity.shape == (2, 8, 8, 8, 3)
    np.testing.assert_allclose(
        np.linalg.norm(velocity, axis=-1).max(axis=(1, 2, 3)), 1.5, rtol=1e-5
    )
    moving, fixed = registration.prepare_volumes(3, 8, seed=4, amplitude=1.5)
    assert moving.shape == fixed.shape == (3, 8, 8, 8, 1)
    assert moving.dtype == fixed.dtype == np.float32
    np.testing.assert_allclose(fixed.max(axis=(1, 2, 3, 4)), 1.0, rtol=1e-6)
    assert fixed.min() >= 0 and moving.min() >= 0 and moving.max() <= 1
    assert not np.allclose(moving, fixed, atol=1e-2)
    again, _ = registration.prepare_volumes(3, 8, seed=4, amplitude=1.5)
    np.testing.assert_array_equal(again, moving)


def test_the_picture_draws_the_grid_of_the_field():
    images = np.zeros((2, 8, 8, 1), "float32")
    field = np.zeros((2, 8, 8, 2), "float32")
    field[1, ..., 0] = 1.0  # the second grid moves one pixel right
    picture = registration.draw_registration(
        images, images, images, field, scale=4, grid_step=4
    )
    assert picture.shape == (14 + 2 * 36, 4 * 36 + 4, 3)
    left = 4 + 3 * 36
    green = np.all(picture == (80, 220, 120), axis=-1)
    # Vertical lines at pixels 0 and 4, centred 2 picture pixels in.
    columns = np.flatnonzero(green[14 + 10])
    np.testing.assert_array_equal(columns - left, [2, 18])
    columns = np.flatnonzero(green[14 + 36 + 10])
    np.testing.assert_array_equal(columns - left, [6, 22])


def test_a_short_run_saves_its_results(fake_mnist, tmp_path, capsys):
    argv = ["--data", str(fake_mnist), "--train-samples", "16"]
    argv += ["--test-samples", "8", "--epochs", "1", "--batch-size", "8"]
    argv += ["--widths", "4", "8", "--fixed", "pair", "--no-integration"]
    argv += ["--output-dir", str(tmp_path), "--verbose", "0"]
    results = registration.main(argv)
    assert "| after |" in capsys.readouterr().out
    assert json.loads((tmp_path / "results.json").read_text()) == results
    assert results["backend"] == BACKEND
    assert results["integration"] is False
    assert (results["train_samples"], results["test_samples"]) == (16, 8)
    assert 0 <= results["dice_after"] <= 1
    assert keras.utils.load_img(tmp_path / "registration.png").size == (
        4 * 132 + 4,
        14 + 6 * 132,
    )


def test_the_options_defaults_and_checks(capsys):
    args = registration.parse_args(["--volumes"])
    assert (args.widths, args.epochs, args.smoothness) == (
        [8, 16, 16, 16],
        2,
        0.05,
    )
    assert str(args.output_dir).endswith("volumes")
    args = registration.parse_args(["--similarity", "ncc", "--no-integration"])
    assert args.smoothness == 1.0
    assert str(args.output_dir).endswith("digits_atlas_no_integration")
    with pytest.raises(SystemExit):
        registration.parse_args(["--volumes", "--volume-size", "20"])
    assert "must be divisible by 8" in capsys.readouterr().err
