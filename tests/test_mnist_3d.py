"""The 3-D transformer example, `examples/mnist_3d.py`: its volumes against
SciPy, its nets on tiny volumes, and one short end-to-end run."""

import json

import keras
import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.transform import Rotation

import keras_stn

import experiment
import mnist_3d
from conftest import fake_digits
from helpers import BACKEND

SIZE = 28


def random_rotations(count, seed):
    """Rotations from `mnist_3d`'s own draw of angles (make_volumes')."""
    rng = np.random.default_rng(seed)
    tilts = rng.uniform(0, 90, count)
    directions = rng.uniform(0, 360, count)
    rolls = rng.uniform(-45, 45, count)
    return tilts, directions, rolls


def test_rotations_against_scipy():
    tilts, directions, rolls = random_rotations(20, seed=0)
    rotations = mnist_3d.rotation_matrices(tilts, directions, rolls)
    for rotation, tilt, direction, roll in zip(
        rotations, tilts, directions, rolls, strict=True
    ):
        axis = [np.cos(np.radians(direction)), np.sin(np.radians(direction)), 0]
        # The roll is counter-clockwise on the picture, whose y points down:
        # clockwise about z in (x, y, z).
        expected = Rotation.from_rotvec(np.radians(tilt) * np.array(axis))
        expected = expected * Rotation.from_rotvec([0, 0, -np.radians(roll)])
        np.testing.assert_allclose(rotation, expected.as_matrix(), atol=1e-12)
    # The tilt is the angle between the turned depth axis and the depth axis.
    angles = np.degrees(np.arccos(rotations[:, 2, 2]))
    np.testing.assert_allclose(angles, tilts, atol=1e-9)


@pytest.mark.parametrize("slab_depth", [mnist_3d.SLAB_DEPTH, 10])
def test_volumes_against_scipy_affine_transform(slab_depth):
    digits = fake_digits(3, seed=4)
    tilts, directions, rolls = random_rotations(3, seed=1)
    rotations = mnist_3d.rotation_matrices(tilts, directions, rolls)
    shifts = np.array([[1.5, -2.0, 0.25], [0, 0, 0], [-1, 2, 1]])
    volumes = mnist_3d.place_digits(digits, rotations, shifts, SIZE, slab_depth)
    assert volumes.shape == (3, SIZE, SIZE, SIZE, 1)
    assert volumes.dtype == np.float32
    # The slab, extruded explicitly: the digit on slab_depth planes about
    # the centre, in a (depth, height, width) volume.
    margin = (SIZE - mnist_3d.DIGIT) // 2
    first = SIZE // 2 - slab_depth // 2
    centre = np.full(3, (SIZE - 1) / 2)
    for digit, rotation, shift, volume in zip(
        digits, rotations, shifts, volumes, strict=True
    ):
        slab = np.zeros((SIZE,) * 3)
        planes = slice(first, first + slab_depth)
        pixels = slice(margin, margin + mnist_3d.DIGIT)
        slab[planes, pixels, pixels] = digit / 255.0
        # affine_transform reads input[matrix @ o + offset] for each output
        # index o, in (depth, height, width) order: the rotation's inverse,
        # its axes reversed.
        inverse = rotation.T[::-1, ::-1]
        offset = centre - inverse @ (centre + shift[::-1])
        expected = ndimage.affine_transform(slab, inverse, offset, order=1)
        np.testing.assert_allclose(volume[..., 0], expected, atol=1e-5)


def test_a_roll_turns_the_projection_on_the_picture():
    digits = fake_digits(1, seed=5)
    rotation = mnist_3d.rotation_matrices([0.0], [0.0], [90.0])
    volume = mnist_3d.place_digits(digits, rotation, np.zeros((1, 3)), SIZE)
    # Counter-clockwise as seen, as np.rot90; the digit's own values.
    projection = mnist_3d.project(volume)[0]
    np.testing.assert_allclose(
        projection, np.rot90(digits[0] / 255.0), atol=1e-6
    )


def test_volumes_are_deterministic_and_keep_the_ink_inside(fake_mnist):
    train, test = mnist_3d.prepare_data(fake_mnist, 3, 24, 8, SIZE)
    again = mnist_3d.prepare_data(fake_mnist, 3, 24, 8, SIZE)
    other = mnist_3d.prepare_data(fake_mnist, 4, 24, 8, SIZE)
    volumes, labels = train
    assert volumes.shape == (24, SIZE, SIZE, SIZE, 1)
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(volumes, again[0][0])
    assert not np.allclose(volumes, other[0][0])
    # The test set does not depend on the seed.
    np.testing.assert_array_equal(test[0], other[1][0])
    np.testing.assert_array_equal(test[1], other[1][1])
    parameters = test[2]
    assert parameters["rotation"].shape == (8, 3, 3)
    assert 0 <= parameters["tilt"].min() and parameters["tilt"].max() <= 90
    assert np.abs(parameters["roll"]).max() <= 45
    # The fake digits fit whole: no ink on the volume's faces, and all of
    # it inside (each slab holds SLAB_DEPTH times its digit's ink).
    for axis in (1, 2, 3):
        assert np.take(volumes, [0, -1], axis=axis).max() == 0
    with np.load(fake_mnist) as data:
        ink = data["x_train"][:24].sum(axis=(1, 2)) / 255.0
    np.testing.assert_allclose(
        volumes.sum(axis=(1, 2, 3, 4)), mnist_3d.SLAB_DEPTH * ink, rtol=0.02
    )


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="`images`"):
        mnist_3d.make_volumes(np.zeros((2, 20, 20)), seed=0)
    with pytest.raises(ValueError, match="`size`"):
        mnist_3d.make_volumes(np.zeros((2, 28, 28)), seed=0, size=24)
    with pytest.raises(ValueError, match="`size`"):
        mnist_3d.place_digits(
            np.zeros((1, 28, 28)), np.eye(3)[None], [0] * 3, 29
        )
    for slab_depth in (3, 0, 30, 4.0):
        with pytest.raises(ValueError, match="`slab_depth`"):
            mnist_3d.make_volumes(np.zeros((2, 28, 28)), 0, 28, slab_depth)
    with pytest.raises(ValueError, match="`model`"):
        mnist_3d.build_model("fcn")
    with pytest.raises(ValueError, match="`size`"):
        mnist_3d.build_model("cnn", size=30)


def test_the_transformer_turns_a_slab_to_face_the_projection():
    # theta = [rotation | shift] reads, at each output point, the input
    # point where the slab's point of the same coordinates went: the output
    # is the untilted slab. Checks that the data's (x, y, z) and rotation
    # are those of keras_stn's 3-D theta.
    # Smooth digits, which sampling twice blurs little.
    smooth = ndimage.gaussian_filter(fake_digits(2, seed=6) / 1.0, (0, 2, 2))
    digits = np.clip(2 * smooth, 0, 255).astype("uint8")
    tilts, directions, rolls = random_rotations(2, seed=2)
    rotations = mnist_3d.rotation_matrices(tilts, directions, rolls)
    shifts = np.array([[2.0, -1.0, 1.0], [-1.0, 0.0, -2.0]])
    volumes = mnist_3d.place_digits(digits, rotations, shifts, SIZE)
    identity = np.broadcast_to(np.eye(3), (2, 3, 3))
    facing = mnist_3d.place_digits(digits, identity, np.zeros((2, 3)), SIZE)
    theta = np.concatenate([rotations, 2 * shifts[..., None] / SIZE], -1)
    layer = keras_stn.SpatialTransformer(transform="affine")
    outputs = keras.ops.convert_to_numpy(
        layer.warp(volumes, theta.astype("float32"))
    )
    # Sampled twice (trilinear), so blurred: compared on the projections.
    expected = mnist_3d.project(facing)
    error = np.abs(mnist_3d.project(outputs) - expected).mean()
    assert error < 0.1 * expected.mean()
    np.testing.assert_allclose(
        mnist_3d.slab_tilts(theta, rotations), 0, atol=1e-6
    )
    np.testing.assert_allclose(
        mnist_3d.slab_tilts(np.eye(3, 4)[None].repeat(2, 0), rotations), tilts
    )


def test_the_cnn_takes_a_training_step():
    # The ST-CNN trains in the end-to-end test below.
    cnn = mnist_3d.build_model("cnn", size=16)
    assert cnn.count_params() == pytest.approx(
        mnist_3d.st_cnn_parameters(16), rel=0.05
    )
    cnn.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    volumes = np.random.default_rng(0).random((4, 16, 16, 16, 1), "float32")
    assert np.isfinite(cnn.train_on_batch(volumes, np.arange(4)))


def test_st_cnn_trains_and_saves_everything(fake_mnist, tmp_path, capsys):
    argv = ["--data", str(fake_mnist), "--train-samples", "32"]
    argv += ["--test-samples", "16", "--epochs", "1", "--batch-size", "16"]
    argv += ["--volume-size", str(SIZE), "--seed", "3", "--verbose", "0"]
    argv += ["--log-dir", str(tmp_path / "logs")]
    results = mnist_3d.main(argv + ["--output-dir", str(tmp_path)])

    assert "Test error" in capsys.readouterr().out
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved == results
    assert saved["backend"] == BACKEND
    assert (saved["model"], saved["volume_size"]) == ("st-cnn", SIZE)
    assert 0 <= saved["tilt_after_degrees"] <= 90
    assert 0 <= saved["tilt_before_degrees"] <= 90
    _, (x_test, y_test, _) = mnist_3d.prepare_data(fake_mnist, 3, 32, 16, SIZE)
    model = keras.models.load_model(tmp_path / "model.keras")
    assert model.count_params() == saved["parameters"]
    assert saved["parameters"] == mnist_3d.st_cnn_parameters(SIZE)
    transformer = model.get_layer("spatial_transformer")
    assert transformer.compute_theta(x_test[:2]).shape == (2, 3, 4)
    assert tuple(transformer(x_test[:2]).shape) == (2, SIZE // 2, SIZE, SIZE, 1)
    probabilities = model.predict(x_test, batch_size=16, verbose=0)
    accuracy = np.mean(probabilities.argmax(axis=1) == y_test)
    assert accuracy == pytest.approx(saved["accuracy"], abs=1e-6)
    picture = keras.utils.load_img(tmp_path / "projections.png")
    assert picture.size[0] > mnist_3d.PICTURE_SAMPLES * SIZE
    assert any((tmp_path / "logs").iterdir())


def test_fresh_volumes_each_epoch_and_the_same_test_set(fake_mnist, tmp_path):
    argv = ["--data", str(fake_mnist), "--train-samples", "16"]
    argv += ["--test-samples", "8", "--epochs", "2", "--batch-size", "8"]
    argv += ["--volume-size", str(SIZE), "--seed", "3", "--verbose", "0"]
    argv += ["--model", "cnn", "--protocol", "fresh"]
    results = mnist_3d.main(argv + ["--output-dir", str(tmp_path)])

    assert (results["protocol"], results["train_samples"]) == ("fresh", 16)
    (digits, labels), test = mnist_3d.prepare_data(
        fake_mnist, 3, 16, 8, SIZE, protocol="fresh"
    )
    assert digits.shape == (16, 28, 28)
    _, fixed_test = mnist_3d.prepare_data(fake_mnist, 3, 16, 8, SIZE)
    np.testing.assert_array_equal(test[0], fixed_test[0])
    model = keras.models.load_model(tmp_path / "model.keras")
    probabilities = model.predict(test[0], verbose=0)
    accuracy = np.mean(probabilities.argmax(axis=1) == test[1])
    assert accuracy == pytest.approx(results["accuracy"], abs=1e-6)
    # Each epoch turns and moves the digits anew: no volume comes back.
    batches = experiment.FreshEpochs(
        digits,
        labels,
        lambda images, seed: mnist_3d.make_volumes(images, seed, SIZE)[0],
        seed=3,
        batch_size=8,
        epochs=2,
    )
    first = np.concatenate([batches[0][0], batches[1][0]])
    second = np.concatenate([batches[2][0], batches[3][0]])
    assert first.shape == (16, SIZE, SIZE, SIZE, 1)
    assert not any(np.array_equal(a, b) for a in first for b in second)
    # The last epoch makes no other in the background, and none is past it.
    assert batches._next is None
    with pytest.raises(IndexError, match="past the 2 epochs"):
        batches[4]


def test_default_output_dir_names_the_run():
    args = mnist_3d.parse_args(["--model", "cnn"])
    assert str(args.output_dir).endswith("mnist_3d/cnn")
    args = mnist_3d.parse_args(["--protocol", "fresh"])
    assert str(args.output_dir).endswith("mnist_3d/st-cnn_fresh")
    with pytest.raises(SystemExit):
        mnist_3d.parse_args(["--volume-size", "30"])
    args = mnist_3d.parse_args(["--slab-depth", "8"])
    assert str(args.output_dir).endswith("mnist_3d/st-cnn_slab8")
    for slab_depth in ("7", "36"):
        with pytest.raises(SystemExit):
            mnist_3d.parse_args(["--slab-depth", slab_depth])
