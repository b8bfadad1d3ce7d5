"""Street numbers for the SVHN experiment: the real data, or a synthetic set.

The Spatial Transformer paper (Jaderberg et al., 2015, section 4.2) reads
whole house numbers of up to five digits from 64x64 crops of the Street View
House Numbers data, preprocessed as Goodfellow et al. (2013) did.
`load_svhn` reads SVHN's full numbers ("format 1",
http://ufldl.stanford.edu/housenumbers/: the folders `train/`, `test/` and
`extra/`, each with PNG images and `digitStruct.mat`) in that way. Offline,
`synthetic_street_numbers` makes a stand-in from MNIST digits: numbers of
one to five digits, scaled, rotated and shifted onto a coloured, cluttered,
noisy canvas.

Label convention: `lengths`, int32 `(n,)`, is the number of digits, 1 to
`MAX_DIGITS`; `digits`, int32 `(n, MAX_DIGITS)`, holds the digit values 0-9
left-aligned and `BLANK` in the positions past the last digit.
"""

from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

MAX_DIGITS = 5
BLANK = 10
CANVAS = 64

# SVHN, preprocessed as Goodfellow et al. (2013).
SPLITS = ("train", "test", "extra")
ENLARGE = 1.3
BOX_FIELDS = ("left", "top", "width", "height")

# Synthetic numbers made of MNIST digits.
MAX_GAP = 3
SCALE_RANGE = (0.7, 1.0)
FIT_WIDTH = 0.9
FIT_HEIGHT = 0.7
# The strip's centre is drawn from this central fraction, in each axis, of
# the positions where it stays whole: like SVHN's crops, which are centred
# on the number, with some slack.
POSITION_SPREAD = 0.5
MAX_ANGLE = 15.0
MIN_CONTRAST = 0.3
CLUTTER_COUNT = (2, 4)
CLUTTER_PATCH = 10
CLUTTER_CONTRAST = (0.3, 0.5)
NOISE_STD = 0.02


def _check_at_least(name: str, value: int, minimum: int) -> None:
    """Raise a `ValueError` unless an integer argument is large enough.

    Args:
        name: the argument's name, for the message.
        value: its value.
        minimum: the smallest value allowed.

    Raises:
        ValueError: if `value` is not an integer of at least `minimum`.
    """
    if not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected an integer of at "
            f"least {minimum}. Received {name}={value!r}."
        )


def _read_name(dataset) -> str:
    """Decode a MATLAB string: a uint16 dataset of character codes.

    Args:
        dataset: an `h5py.Dataset` of shape `(length, 1)`.

    Returns:
        The string, e.g. `"1.png"`.
    """
    return "".join(map(chr, dataset[()].ravel()))


def _read_values(file, dataset) -> np.ndarray:
    """Read one field of a `digitStruct` bounding box: one value per digit.

    MATLAB stores a one-digit field as the value itself and a longer one as
    object references, each to a `(1, 1)` dataset holding one value.

    Args:
        file: the open `h5py.File` that the references point into.
        dataset: the field, an `h5py.Dataset` of shape `(digits, 1)`.

    Returns:
        float64 array of shape `(digits,)`.
    """
    values = dataset[:, 0]
    if values.dtype.kind != "O":  # Numbers, not object references.
        return values.astype("float64")
    return np.array([file[reference][0, 0] for reference in values], "float64")


def _crop_box(
    left: np.ndarray, top: np.ndarray, width: np.ndarray, height: np.ndarray
) -> tuple[int, int, int, int]:
    """The crop of a number: its digits' union box, enlarged by 30%.

    The union of the digits' boxes is enlarged about its centre by
    `ENLARGE` in x and in y (Goodfellow et al., 2013) and rounded to whole
    pixels. It may reach past the image.

    Args:
        left: the digits' left columns, shape `(digits,)`.
        top: the digits' top rows, shape `(digits,)`.
        width: the digits' widths in pixels, shape `(digits,)`.
        height: the digits' heights in pixels, shape `(digits,)`.

    Returns:
        `(left, top, right, bottom)` in pixels, right and bottom exclusive,
        as `PIL.Image.crop` takes it.
    """
    x0, y0 = left.min(), top.min()
    x1, y1 = (left + width).max(), (top + height).max()
    half_width, half_height = ENLARGE * (x1 - x0) / 2, ENLARGE * (y1 - y0) / 2
    x, y = (x0 + x1) / 2, (y0 + y1) / 2
    box = (x - half_width, y - half_height, x + half_width, y + half_height)
    return tuple(int(value) for value in np.round(box))


def load_svhn(
    folder: Path, split: str, size: int = CANVAS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Load a split of the full-number SVHN data as crops around the numbers.

    Each image is cropped to the union of its digits' bounding boxes,
    enlarged by 30% about its centre in x and in y, and resized to
    `size x size`: the preprocessing of Goodfellow et al. (2013), which
    Jaderberg et al. (2015) follow. The resize is bilinear. Where the
    enlarged box reaches past the image, the crop is padded with black.
    Numbers of more than `MAX_DIGITS` digits are dropped. SVHN's label 10,
    the digit 0, becomes 0.

    Args:
        folder: the folder holding the extracted `train/`, `test/` or
            `extra/` folders, each with the PNG images and `digitStruct.mat`.
        split: `"train"`, `"test"` or `"extra"`.
        size: side of the square crops, in pixels.

    Returns:
        `(images, lengths, digits)`: uint8 images of shape
        `(n, size, size, 3)`, and the labels in this module's convention.

    Raises:
        ValueError: if `split` or `size` is invalid.
        FileNotFoundError: if the split's folder or its `digitStruct.mat`
            is missing.
        ImportError: if h5py, which reads `digitStruct.mat`, is missing.
    """
    if split not in SPLITS:
        expected = ", ".join(repr(name) for name in SPLITS)
        raise ValueError(
            f"Invalid value for argument `split`. Expected one of "
            f"{expected}. Received split={split!r}."
        )
    _check_at_least("size", size, 1)
    directory = Path(folder) / split
    if not directory.is_dir():
        raise FileNotFoundError(
            f"SVHN folder {directory} not found. Expected `folder` to hold "
            f"the extracted `{split}.tar.gz` of the full-number SVHN data. "
            f"Received folder={str(folder)!r}."
        )
    struct_path = directory / "digitStruct.mat"
    if not struct_path.is_file():
        raise FileNotFoundError(
            f"SVHN labels {struct_path} not found. Expected {directory} to "
            "hold `digitStruct.mat` beside the PNG images."
        )
    try:
        import h5py
    except ImportError as error:
        raise ImportError(
            "`load_svhn` reads `digitStruct.mat` with h5py, which is not "
            "installed: `pip install h5py`."
        ) from error

    images, lengths, digits = [], [], []
    with h5py.File(struct_path, "r") as file:
        names, boxes = file["digitStruct/name"], file["digitStruct/bbox"]
        for name, box in zip(names[:, 0], boxes[:, 0], strict=True):
            fields = file[box]
            labels = _read_values(file, fields["label"])
            length = len(labels)
            if length > MAX_DIGITS:
                continue
            crop_box = _crop_box(
                *(_read_values(file, fields[key]) for key in BOX_FIELDS)
            )
            with Image.open(directory / _read_name(file[name])) as image:
                crop = image.convert("RGB").crop(crop_box)
            crop = crop.resize((size, size), Image.Resampling.BILINEAR)
            images.append(np.asarray(crop))
            lengths.append(length)
            number = np.full(MAX_DIGITS, BLANK)
            number[:length] = labels.astype("int64") % 10
            digits.append(number)
    return (
        np.array(images, "uint8").reshape(-1, size, size, 3),
        np.array(lengths, "int32"),
        np.array(digits, "int32").reshape(-1, MAX_DIGITS),
    )


def _ink_columns(digits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The columns that each digit's ink spans.

    Args:
        digits: images of shape `(m, height, width)`.

    Returns:
        `(left, right)`, int arrays of shape `(m,)`: the first inked column
        and one past the last. An image without ink keeps its full width.
    """
    inked = digits.any(axis=1)
    width = digits.shape[2]
    left = inked.argmax(axis=1)
    right = width - inked[:, ::-1].argmax(axis=1)
    right[~inked.any(axis=1)] = width
    return left, right


def _number_strip(
    digits: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    index: np.ndarray,
    gaps: np.ndarray,
) -> np.ndarray:
    """Set digits side by side, each cut to its ink, into one strip.

    Args:
        digits: uint8 images of shape `(m, height, width)`.
        left: the first inked column of each image, shape `(m,)`.
        right: one past the last inked column of each image, shape `(m,)`.
        index: the images to use, in reading order, shape `(length,)`.
        gaps: the empty columns between neighbours, shape `(length - 1,)`.

    Returns:
        float32 array of shape `(height, strip_width)` with values in
        [0, 1].
    """
    pieces = [digits[index[0], :, left[index[0]] : right[index[0]]]]
    for gap, j in zip(gaps, index[1:], strict=True):
        pieces.append(np.zeros((digits.shape[1], gap), digits.dtype))
        pieces.append(digits[j, :, left[j] : right[j]])
    return np.concatenate(pieces, axis=1).astype("float32") / 255.0


def _warp_strip(
    strip: np.ndarray,
    scale: float,
    angle: float,
    centre: np.ndarray,
    size: int,
) -> np.ndarray:
    """Scale, rotate and move a strip onto the canvas.

    The strip is first blurred against aliasing when it shrinks, with
    `sigma = (1 / scale - 1) / 2` as `skimage.transform.rescale` does, then
    sampled bilinearly. A canvas point `q` shows the strip at
    `c + R(angle)^T (q - centre) / scale`, where `c` is the strip's centre
    and `R` the rotation that turns a positive angle counter-clockwise as
    displayed (rows pointing down).

    Args:
        strip: float32 array of shape `(height, width)`.
        scale: the canvas pixels per strip pixel.
        angle: rotation in degrees.
        centre: `(row, col)` of the strip's centre on the canvas.
        size: side of the square canvas.

    Returns:
        float32 array of shape `(size, size)`: the strip's ink, in [0, 1].
    """
    if scale < 1.0:
        sigma = (1.0 / scale - 1.0) / 2.0
        strip = ndimage.gaussian_filter(strip, sigma, mode="constant")
    radians = np.deg2rad(angle)
    cos, sin = np.cos(radians), np.sin(radians)
    inverse = np.array([[cos, sin], [-sin, cos]]) / scale
    offset = (np.array(strip.shape) - 1) / 2 - inverse @ centre
    ink = ndimage.affine_transform(
        strip, inverse, offset=offset, output_shape=(size, size), order=1
    )
    return np.clip(ink, 0.0, 1.0)


def _clutter(
    digits: np.ndarray,
    index: np.ndarray,
    corners: np.ndarray,
    positions: np.ndarray,
    size: int,
) -> np.ndarray:
    """Scatter square crops of digits over an empty canvas.

    Args:
        digits: uint8 images of shape `(m, height, width)`.
        index: the images to crop, shape `(patches,)`.
        corners: `(row, col)` of each crop's top-left corner in its image,
            shape `(patches, 2)`.
        positions: `(row, col)` of each crop's top-left corner on the
            canvas, shape `(patches, 2)`.
        size: side of the square canvas.

    Returns:
        float32 array of shape `(size, size)` with values in [0, 1]: the
        brightest crop at each pixel.
    """
    canvas = np.zeros((size, size), "float32")
    for j, (row, col), (top, left) in zip(
        index, corners, positions, strict=True
    ):
        patch = digits[j, row : row + CLUTTER_PATCH, col : col + CLUTTER_PATCH]
        window = canvas[top : top + CLUTTER_PATCH, left : left + CLUTTER_PATCH]
        np.maximum(window, patch / 255.0, out=window)
    return canvas


def _colours(
    rng: np.random.Generator, count: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw background, ink and clutter colours that keep numbers readable.

    The ink's mean brightness differs from the background's by at least
    `MIN_CONTRAST`. The clutter colour lies in a random direction from the
    background, `CLUTTER_CONTRAST` times as far (in RGB) as the ink does,
    or nearer where clipping to [0, 1] pulls it in.

    Args:
        rng: the random generator.
        count: how many triples of colours.

    Returns:
        `(background, ink, clutter)`, float64 arrays of shape `(count, 3)`
        with values in [0, 1].
    """
    background = rng.uniform(size=(count, 3))
    ink = rng.uniform(size=(count, 3))
    redraw = np.abs(ink.mean(1) - background.mean(1)) < MIN_CONTRAST
    while redraw.any():
        ink[redraw] = rng.uniform(size=(redraw.sum(), 3))
        redraw = np.abs(ink.mean(1) - background.mean(1)) < MIN_CONTRAST
    direction = rng.normal(size=(count, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    distance = np.linalg.norm(ink - background, axis=1, keepdims=True)
    distance *= rng.uniform(*CLUTTER_CONTRAST, (count, 1))
    clutter = np.clip(background + distance * direction, 0.0, 1.0)
    return background, ink, clutter


def synthetic_street_numbers(
    digits: np.ndarray,
    labels: np.ndarray,
    count: int,
    seed: int,
    size: int = CANVAS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Make street-number-like images from MNIST digits, at random.

    Each sample is a number of `L` digits, `L` uniform in 1 to
    `MAX_DIGITS`, drawn from `digits`. They are cut to their ink's columns
    and set side by side, 0 to `MAX_GAP` empty columns apart, into a strip
    as high as the digits. The strip is rotated by an angle uniform in
    [-`MAX_ANGLE`, `MAX_ANGLE`] degrees, scaled by `SCALE_RANGE` (uniform)
    times the largest scale at which the rotated strip fits in
    `FIT_WIDTH` of the canvas width and `FIT_HEIGHT` of its height, and
    centred at a uniformly random point of the central `POSITION_SPREAD`
    (in each axis) of the positions where it stays whole on the
    canvas. The number is drawn in an ink colour over a background colour
    whose mean brightness differs by at least `MIN_CONTRAST`, on top of
    2 to 4 clutter patches: `CLUTTER_PATCH`-pixel square crops of other
    digits in a third colour of lower contrast. Gaussian noise of standard
    deviation `NOISE_STD` is added last. The warp uses SciPy, so the data
    do not depend on the library under test. The result depends only on the
    arguments.

    Args:
        digits: uint8 MNIST images of shape `(m, 28, 28)`.
        labels: their integer labels, shape `(m,)`.
        count: how many images to make.
        seed: seed of the random draws.
        size: side of the square images, in pixels.

    Returns:
        `(images, lengths, digit_labels, parameters)`: float32 images of
        shape `(count, size, size, 3)` with values in [0, 1], the labels in
        this module's convention, and a dict of NumPy arrays describing each
        sample: `"length"` `(count,)`, `"index"` `(count, MAX_DIGITS)` (the
        images used, -1 past the last digit), `"width"` `(count,)` (the
        strip's width in strip pixels), `"scale"` `(count,)`, `"angle"`
        `(count,)` (degrees, counter-clockwise as displayed), `"centre"`
        `(count, 2)` (row, col of the strip's centre on the canvas), and
        the colours `"background"`, `"ink"` and `"clutter"`, `(count, 3)`.

    Raises:
        ValueError: if `digits` is not a stack of images with one label
            each, `count` is not a positive integer, or `size` is less than
            `CLUTTER_PATCH`.
    """
    digits, labels = np.asarray(digits), np.asarray(labels)
    if digits.ndim != 3 or len(digits) != len(labels):
        raise ValueError(
            "Invalid value for argument `digits`. Expected images of shape "
            "`(m, height, width)` with one label each in `labels`. Received "
            f"digits.shape={digits.shape} and labels.shape={labels.shape}."
        )
    _check_at_least("count", count, 1)
    _check_at_least("size", size, CLUTTER_PATCH)
    rng = np.random.default_rng(seed)
    height = digits.shape[1]

    lengths = rng.integers(1, MAX_DIGITS + 1, count).astype("int32")
    used = np.arange(MAX_DIGITS) < lengths[:, None]
    draws = rng.integers(0, len(digits), (count, MAX_DIGITS))
    index = np.where(used, draws, -1)
    digit_labels = np.where(used, labels[draws], BLANK).astype("int32")
    gaps = rng.integers(0, MAX_GAP + 1, (count, MAX_DIGITS - 1))
    left, right = _ink_columns(digits)
    widths = np.sum((right - left)[draws] * used, axis=1)
    widths += np.sum(gaps * used[:, 1:], axis=1)

    # The strip's box, widened by the one pixel over which bilinear
    # interpolation fades it out, rotated, then scaled to fit.
    angles = rng.uniform(-MAX_ANGLE, MAX_ANGLE, count)
    cos = np.abs(np.cos(np.deg2rad(angles)))
    sin = np.abs(np.sin(np.deg2rad(angles)))
    box_height = (height + 1) * cos + (widths + 1) * sin
    box_width = (widths + 1) * cos + (height + 1) * sin
    fit = np.minimum(
        FIT_HEIGHT * size / box_height, FIT_WIDTH * size / box_width
    )
    scales = rng.uniform(*SCALE_RANGE, count) * fit
    half = np.stack([box_height, box_width], axis=1) * scales[:, None] / 2
    offsets = rng.uniform(-POSITION_SPREAD, POSITION_SPREAD, (count, 2)) / 2
    centres = (size - 1) / 2 + offsets * (size - 1 - 2 * half)

    background, ink, clutter = _colours(rng, count)
    clutter_used = np.arange(CLUTTER_COUNT[1]) < rng.integers(
        CLUTTER_COUNT[0], CLUTTER_COUNT[1] + 1, (count, 1)
    )
    clutter_index = rng.integers(0, len(digits), (count, CLUTTER_COUNT[1]))
    # Crops from the central part of the digit images, where the ink is.
    margin = (height - CLUTTER_PATCH) // 4
    clutter_corners = rng.integers(
        margin,
        height - CLUTTER_PATCH - margin + 1,
        (count, CLUTTER_COUNT[1], 2),
    )
    clutter_positions = rng.integers(
        0, size - CLUTTER_PATCH + 1, (count, CLUTTER_COUNT[1], 2)
    )

    images = np.empty((count, size, size, 3), "float32")
    palette = np.stack([background, clutter, ink], axis=1).astype("float32")
    for i in range(count):
        strip = _number_strip(
            digits,
            left,
            right,
            draws[i, : lengths[i]],
            gaps[i, : lengths[i] - 1],
        )
        number = _warp_strip(strip, scales[i], angles[i], centres[i], size)
        patches = _clutter(
            digits,
            clutter_index[i][clutter_used[i]],
            clutter_corners[i][clutter_used[i]],
            clutter_positions[i][clutter_used[i]],
            size,
        )
        # The clutter lies over the background and the number over both.
        weights = np.stack(
            [(1 - patches) * (1 - number), patches * (1 - number), number],
            axis=-1,
        )
        image = weights @ palette[i]
        image += NOISE_STD * rng.standard_normal(image.shape, "float32")
        np.clip(image, 0.0, 1.0, out=images[i])
    parameters = {
        "length": lengths,
        "index": index,
        "width": widths,
        "scale": scales,
        "angle": angles,
        "centre": centres,
        "background": background,
        "ink": ink,
        "clutter": clutter,
    }
    return images, lengths, digit_labels, parameters
