"""The street-number data, `examples/street_numbers_data.py`: the SVHN
loader on a tiny `digitStruct.mat` written here, and the synthetic set."""

import numpy as np
import pytest
from PIL import Image

import street_numbers_data
from svhn_fixture import RED
from svhn_fixture import write_svhn_split

BLANK = street_numbers_data.BLANK


@pytest.fixture
def svhn_folder(tmp_path):
    """A folder with `train/`: four PNG images and their digitStruct.mat."""
    write_svhn_split(tmp_path / "train")
    return tmp_path


def test_load_svhn_labels(svhn_folder):
    images, lengths, digits = street_numbers_data.load_svhn(
        svhn_folder, "train"
    )
    # The six-digit number is dropped; SVHN's label 10 is the digit 0.
    assert images.shape == (3, 64, 64, 3)
    assert images.dtype == np.uint8
    assert lengths.dtype == np.int32 and digits.dtype == np.int32
    np.testing.assert_array_equal(lengths, [2, 1, 5])
    np.testing.assert_array_equal(
        digits,
        [
            [1, 9, BLANK, BLANK, BLANK],
            [0, BLANK, BLANK, BLANK, BLANK],
            [2, 0, 3, 4, 5],
        ],
    )


def test_load_svhn_crops_the_enlarged_union_box(svhn_folder):
    images, _, _ = street_numbers_data.load_svhn(svhn_folder, "train")
    image = Image.open(svhn_folder / "train" / "1.png")
    expected = image.crop((27, 7, 53, 33)).resize(
        (64, 64), Image.Resampling.BILINEAR
    )
    np.testing.assert_array_equal(images[0], np.asarray(expected))
    # The red union box fills the central 1/1.3 of the crop: pixels 7.4 to
    # 56.6 in both directions; the enlargement around it is blue.
    red = np.all(images[0] == RED, axis=-1)
    assert red[9:55, 9:55].all()
    assert not red[:6].any() and not red[59:].any()
    assert not red[:, :6].any() and not red[:, 59:].any()


def test_load_svhn_pads_crops_past_the_image_with_black(svhn_folder):
    images, _, _ = street_numbers_data.load_svhn(svhn_folder, "train")
    # The crop starts 3 of its 26 pixels left of the image, 7.4 of 64:
    # columns 0 to 5 interpolate between padding pixels only.
    assert (images[1][:, :6] == 0).all()
    assert np.all(images[1][9:55, 9:55] == RED)


def test_load_svhn_size(svhn_folder):
    images, _, _ = street_numbers_data.load_svhn(svhn_folder, "train", 32)
    assert images.shape == (3, 32, 32, 3)


def test_load_svhn_errors(svhn_folder):
    with pytest.raises(ValueError, match=r"Received split='val'\."):
        street_numbers_data.load_svhn(svhn_folder, "val")
    with pytest.raises(ValueError, match="Received size=0"):
        street_numbers_data.load_svhn(svhn_folder, "train", 0)
    with pytest.raises(FileNotFoundError, match=str(svhn_folder / "test")):
        street_numbers_data.load_svhn(svhn_folder, "test")
    (svhn_folder / "train" / "digitStruct.mat").unlink()
    with pytest.raises(FileNotFoundError, match="digitStruct.mat"):
        street_numbers_data.load_svhn(svhn_folder, "train")


def fake_digits(labels):
    """MNIST-like images, one per label: a bar 8 high and `6 + label` wide.

    A number's ink thus tells its digits' labels apart, and lies centred
    on the 28-pixel height of the strip, rows 10 to 17.
    """
    images = np.zeros((len(labels), 28, 28), "uint8")
    for image, label in zip(images, labels, strict=True):
        image[10:18, 8 : 14 + label] = 255
    return images


LABELS = np.arange(40) % 10
DIGITS = fake_digits(LABELS)
COUNT = 500


@pytest.fixture(scope="module")
def synthetic():
    return street_numbers_data.synthetic_street_numbers(
        DIGITS, LABELS, COUNT, seed=0
    )


def ink_mask(images, parameters):
    """Pixels within 0.15 of the ink colour: the number, barring its edges.

    The clutter colour is at least half the ink's distance from the
    background, at least 0.26 in RGB, away from the ink.
    """
    ink = parameters["ink"][:, None, None, :]
    return np.linalg.norm(images - ink, axis=-1) < 0.15


def test_synthetic_shapes_and_labels(synthetic):
    images, lengths, digits, parameters = synthetic
    assert images.shape == (COUNT, 64, 64, 3) and images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert lengths.shape == (COUNT,) and lengths.dtype == np.int32
    assert digits.shape == (COUNT, 5) and digits.dtype == np.int32
    np.testing.assert_array_equal(parameters["length"], lengths)
    counts = np.bincount(lengths, minlength=6)
    assert counts[0] == 0 and (counts[1:] > 60).all()
    used = np.arange(5) < lengths[:, None]
    assert (digits[~used] == BLANK).all()
    assert ((digits[used] >= 0) & (digits[used] < 10)).all()
    np.testing.assert_array_equal(
        LABELS[parameters["index"][used]], digits[used]
    )
    assert (parameters["index"][~used] == -1).all()


def test_synthetic_strip_is_made_of_the_labelled_digits(synthetic):
    _, lengths, digits, parameters = synthetic
    # Digit k is `6 + k` columns wide; up to 3 columns part neighbours.
    ink_width = np.sum(np.where(digits == BLANK, 0, 6 + digits), axis=1)
    extra = parameters["width"] - ink_width
    assert (extra >= 0).all() and (extra <= 3 * (lengths - 1)).all()
    assert extra.max() > 0


def test_synthetic_is_deterministic():
    first = street_numbers_data.synthetic_street_numbers(
        DIGITS, LABELS, 8, seed=5
    )
    again = street_numbers_data.synthetic_street_numbers(
        DIGITS, LABELS, 8, seed=5
    )
    other = street_numbers_data.synthetic_street_numbers(
        DIGITS, LABELS, 8, seed=6
    )
    for array, same in zip(first[:3], again[:3], strict=True):
        np.testing.assert_array_equal(array, same)
    for key, value in first[3].items():
        np.testing.assert_array_equal(value, again[3][key])
    assert not np.allclose(first[0], other[0], atol=0.1)
    assert not np.array_equal(first[2], other[2])


def test_synthetic_geometry_statistics(synthetic):
    _, _, _, parameters = synthetic
    angle, scale = parameters["angle"], parameters["scale"]
    assert (np.abs(angle) <= 15.0).all()
    assert angle.min() < -10.0 and angle.max() > 10.0
    assert scale.std() > 0.1 * scale.mean()
    assert (parameters["centre"].std(axis=0) > 1.5).all()
    # Centres lie within the central spread of the 63 pixels that a strip
    # of no size could move over.
    offset = np.abs(parameters["centre"] - 31.5)
    assert (offset <= street_numbers_data.POSITION_SPREAD * 63 / 2).all()


def test_synthetic_numbers_stay_whole(synthetic):
    images, _, _, parameters = synthetic
    # Corners of the strip's support (its pixels and the one-pixel fade of
    # bilinear interpolation), rotated, scaled and moved onto the canvas.
    half_height = np.full(COUNT, 29 / 2)
    half_width = (parameters["width"] + 1) / 2
    radians = np.deg2rad(parameters["angle"])
    cos, sin = np.cos(radians), np.sin(radians)
    for row_sign, col_sign in ((-1, -1), (-1, 1), (1, -1), (1, 1)):
        row, col = row_sign * half_height, col_sign * half_width
        corner = parameters["scale"][:, None] * np.stack(
            [cos * row - sin * col, sin * row + cos * col], axis=1
        )
        corner += parameters["centre"]
        assert (corner >= -1e-6).all() and (corner <= 63 + 1e-6).all()
    mask = ink_mask(images, parameters)
    assert not mask[:, [0, -1]].any() and not mask[:, :, [0, -1]].any()


def test_synthetic_parameters_describe_the_images(synthetic):
    images, lengths, digits, parameters = synthetic
    mask = ink_mask(images, parameters)
    rows, cols = np.mgrid[:64, :64]
    area = mask.sum(axis=(1, 2))
    centroid = (
        np.stack([(mask * rows).sum((1, 2)), (mask * cols).sum((1, 2))], axis=1)
        / area[:, None]
    )
    # Uneven gaps shift the ink's centroid off the strip's centre a little.
    error = np.linalg.norm(centroid - parameters["centre"], axis=1)
    assert np.median(error) < 1.0 and error.max() < 3.0
    # The ink covers about scale^2 times the digits' 8-pixel-high bars.
    ink_width = np.sum(np.where(digits == BLANK, 0, 6 + digits), axis=1)
    expected_area = parameters["scale"] ** 2 * 8 * ink_width
    assert np.corrcoef(area, expected_area)[0, 1] > 0.95
    # Positive angles turn the number counter-clockwise as displayed.
    long = np.flatnonzero(lengths >= 3)
    measured = []
    for i in long:
        points = np.stack([rows[mask[i]], cols[mask[i]]], axis=1)
        _, vectors = np.linalg.eigh(np.cov(points.T))
        d_row, d_col = vectors[:, -1] * np.sign(vectors[1, -1])
        measured.append(np.degrees(np.arctan2(-d_row, d_col)))
    difference = np.abs(np.array(measured) - parameters["angle"][long])
    assert np.median(difference) < 0.5 and difference.max() < 3.0


def test_synthetic_colours(synthetic):
    images, _, _, parameters = synthetic
    background, ink = parameters["background"], parameters["ink"]
    contrast = np.abs(ink.mean(axis=1) - background.mean(axis=1))
    assert (contrast >= 0.3).all()
    # The clutter colour is 0.3 to 0.5 times as far from the background as
    # the ink, or nearer where it is clipped to [0, 1].
    ratio = np.linalg.norm(parameters["clutter"] - background, axis=1)
    ratio /= np.linalg.norm(ink - background, axis=1)
    assert (ratio <= 0.5 + 1e-9).all() and np.median(ratio) > 0.3
    # Most of each image is the background colour, with noise.
    median = np.median(images.reshape(COUNT, -1, 3), axis=1)
    np.testing.assert_allclose(median, background, atol=0.03)
    # Clutter: pixels far from both the background and the ink.
    away = np.linalg.norm(images - background[:, None, None], axis=-1)
    clutter = (away > 0.15) & ~ink_mask(images, parameters)
    assert (clutter.sum(axis=(1, 2)) > 0).mean() > 0.8


def test_synthetic_size():
    images, _, _, parameters = street_numbers_data.synthetic_street_numbers(
        DIGITS, LABELS, 4, seed=1, size=32
    )
    assert images.shape == (4, 32, 32, 3)
    assert (parameters["centre"] <= 31).all()


def test_synthetic_errors():
    make = street_numbers_data.synthetic_street_numbers
    with pytest.raises(ValueError, match="Invalid value for argument `digits`"):
        make(DIGITS, LABELS[:-1], 4, seed=0)
    with pytest.raises(ValueError, match="Received count=0"):
        make(DIGITS, LABELS, 0, seed=0)
    with pytest.raises(ValueError, match="Received size=8"):
        make(DIGITS, LABELS, 4, seed=0, size=8)
