"""Classify MNIST digits placed in 3-D volumes, with a 3-D transformer.

The 3-D experiment of Jaderberg et al. (2015, appendix A.3): each MNIST
digit is extruded to a slab, turned by a random 3-D rotation and moved by a
random translation in a cubic volume; a net sees the volume only through
its projection along depth (the sum over the depth axis, an image) and is
trained with the class labels alone. A 3-D affine `SpatialTransformer`
before the projection can learn to turn the slab to face the projection,
which a CNN on the projection of the input cannot undo. The nets:

- `"cnn"`: the projection of the input volume, then a 2-D CNN (two 5x5
  convolutions with 2x2 max pooling, as `mnist_models`' CNN).
- `"st-cnn"`: a 3-D affine `SpatialTransformer` (12 parameters) whose
  localization net is 2x2x2 max pooling, then three 3x3x3 convolutions of
  16, 32 and 32 filters, each followed by 2x2x2 max pooling, then a dense
  layer of 64; its output volume (the input's height and width, half its
  depth planes) is projected, then the CNN of `mnist_models`' ST-CNN (32
  filters). The CNN's width is chosen so that both nets have about as many
  parameters.

The data, made with SciPy (so they do not depend on the library under
test) and deterministic from the seed: the digit (28x28, centred) is
extruded to `SLAB_DEPTH` voxels (`--slab-depth`) about the volume's centre,
in-plane rotated by U(-`MAX_ROLL`, `MAX_ROLL`) degrees, then tilted out of
the projection plane by U(0, `MAX_TILT`) degrees about an axis of uniformly
random direction in that plane (the tilt is the angle between the slab's
normal and the depth axis), then moved by a translation drawn uniformly among
those that keep its ink inside the volume. The test set is always made with
`TEST_SEED`, whatever `--seed`, so that runs compare on the same volumes.
`--protocol fresh` makes new training volumes each epoch
(`experiment.FreshEpochs`) instead of one set for the whole run.

Usage (`--help` lists the options):

    KERAS_BACKEND=torch python examples/mnist_3d.py --model st-cnn \\
        --epochs 5 --batch-size 32 --train-samples 6400

`--log-dir` writes the training curves to TensorBoard (the transformer
pictures of the 2-D experiments, `TransformerSnapshot`, draw images only).

Outputs, in `--output-dir` (default `outputs/mnist_3d/<model>[_fresh]`): the
trained model `model.keras`; `results.json` with the test error, the run's
settings and wall time and, for the ST-CNN, the mean tilt of the test
digits before and after the transformer; for the ST-CNN,
`projections.png`: test volumes' projections before and after the
transformer, with the tilt of each.
"""

import argparse
import math
import time
from pathlib import Path

import keras
import numpy as np
from scipy import ndimage

from keras_stn import SpatialTransformer
from keras_stn import transforms

from arguments import check_choice
from experiment import PROTOCOLS
from experiment import TRANSFORMER_NAME
from experiment import add_protocol_argument
from experiment import add_training_arguments
from experiment import cosine_adam
from experiment import positive_int
from experiment import protocol_suffix
from experiment import save_model
from experiment import save_results
from experiment import training_data
from mnist_data import DIGIT
from mnist_data import check_digits
from mnist_data import load_mnist
from mnist_data import take_first
from mnist_models import ST_CNN_WIDTH
from mnist_models import closest_width
from mnist_models import convolutional_head
from mnist_models import count_parameters

MODELS = ("cnn", "st-cnn")
VOLUME = 32
SLAB_DEPTH = 4
MAX_TILT = 90.0
MAX_ROLL = 45.0
TEST_SEED = 12345
PICTURE_SAMPLES = 12
LOCALIZATION_FEATURES = 64


def rotation_matrices(
    tilts: np.ndarray, directions: np.ndarray, rolls: np.ndarray
) -> np.ndarray:
    """Rotations of `(x, y, z)` points: a roll, then a tilt.

    The roll turns about the depth axis `z`, counter-clockwise as seen on
    the picture (rows, `y`, point down); the tilt then turns about the axis
    `(cos(direction), sin(direction), 0)` of the picture's plane, so that
    it sends the depth axis `z` to a unit vector at `tilt` from it.

    Args:
        tilts: the tilts, in degrees, shape `(n,)`.
        directions: the directions of the tilts' axes, in degrees, `(n,)`.
        rolls: the rolls, in degrees, `(n,)`.

    Returns:
        float64 array `(n, 3, 3)` of rotation matrices, acting on column
        vectors `(x, y, z)`.

    Example:

    >>> rotation = rotation_matrices([90.0], [0.0], [0.0])[0]
    >>> np.round(rotation @ [0.0, 0.0, 1.0], 6).tolist()  # depth -> -y
    [0.0, -1.0, 0.0]
    """
    tilts, directions, rolls = (
        np.deg2rad(np.asarray(angles, "float64"))
        for angles in (tilts, directions, rolls)
    )
    cos, sin = np.cos(-rolls), np.sin(-rolls)
    zeros, ones = np.zeros_like(rolls), np.ones_like(rolls)
    # On the picture, y points down: counter-clockwise is -roll about z.
    roll = np.stack(
        [
            np.stack([cos, -sin, zeros], -1),
            np.stack([sin, cos, zeros], -1),
            np.stack([zeros, zeros, ones], -1),
        ],
        1,
    )
    axes = np.stack([np.cos(directions), np.sin(directions), zeros], -1)
    return _axis_angle_rotations(axes, tilts) @ roll


def _axis_angle_rotations(axes, angles):
    """Rodrigues' rotations by `angles` (radians) about unit `axes`."""
    cross = np.zeros((len(axes), 3, 3))
    cross[:, 0, 1], cross[:, 0, 2] = -axes[:, 2], axes[:, 1]
    cross[:, 1, 0], cross[:, 1, 2] = axes[:, 2], -axes[:, 0]
    cross[:, 2, 0], cross[:, 2, 1] = -axes[:, 1], axes[:, 0]
    sin, cos = np.sin(angles)[:, None, None], np.cos(angles)[:, None, None]
    return np.eye(3) + sin * cross + (1 - cos) * (cross @ cross)


def make_volumes(
    images: np.ndarray,
    seed: int,
    size: int = VOLUME,
    slab_depth: int = SLAB_DEPTH,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Extrude MNIST digits to slabs, turn and move them in cubic volumes.

    A voxel at `(x, y, z)` (column, row and depth index) shows the point
    `rotation.T @ (p - centre - shift)` of the slab, `p` being `(x, y, z)`
    and `centre` the volume's centre, read from the digit (bilinear in `x`
    and `y`) and the slab's depth profile (linear in `z`): trilinear
    interpolation of the extruded digit, `slab_depth` voxels thick.

    Args:
        images: uint8 digits of shape `(n, 28, 28)`.
        seed: seed of the random rotations and shifts; the result depends
            only on `images`, `seed`, `size` and `slab_depth`.
        size: the volume's side, in voxels (even, at least 28).
        slab_depth: the slab's thickness, in voxels (even, at most `size`).

    Returns:
        `(volumes, parameters)`: float32 volumes of shape `(n, size, size,
        size, 1)`, laid out `(depth, height, width)`, with values in [0, 1],
        and a dict of the drawn parameters, one row per volume:
        `"rotation"` `(n, 3, 3)`, acting on `(x, y, z)`; `"shift"` `(n,
        3)`, the slab centre's `(x, y, z)` offset from the volume's centre,
        in voxels; and `"tilt"`, `"direction"` and `"roll"` (degrees), as
        `rotation_matrices` takes them.

    Example:

    >>> digits = np.zeros((2, 28, 28), "uint8")
    >>> digits[:, 8:20, 12:16] = 255
    >>> volumes, parameters = make_volumes(digits, seed=0)
    >>> volumes.shape, sorted(parameters)
    ((2, 32, 32, 32, 1), ['direction', 'roll', 'rotation', 'shift', 'tilt'])
    """
    images = _check_digits(images, size, slab_depth)
    rng = np.random.default_rng(seed)
    n = len(images)
    parameters = {
        "tilt": rng.uniform(0.0, MAX_TILT, n),
        "direction": rng.uniform(0.0, 360.0, n),
        "roll": rng.uniform(-MAX_ROLL, MAX_ROLL, n),
    }
    rotations = rotation_matrices(
        parameters["tilt"], parameters["direction"], parameters["roll"]
    )
    shifts = np.stack(
        [
            _random_shift(rng, rotation, image, size, slab_depth)
            for rotation, image in zip(rotations, images, strict=True)
        ]
    ).reshape(n, 3)
    parameters.update(rotation=rotations, shift=shifts)
    volumes = place_digits(images, rotations, shifts, size, slab_depth)
    return volumes, parameters


def place_digits(
    images: np.ndarray,
    rotations: np.ndarray,
    shifts: np.ndarray,
    size: int = VOLUME,
    slab_depth: int = SLAB_DEPTH,
) -> np.ndarray:
    """Extrude digits to slabs, turn and move them in cubic volumes.

    What `make_volumes` does with the rotations and shifts it draws: the
    slab (the digit, `slab_depth` voxels thick, centred in the volume) is
    turned by `rotation` about the volume's centre, then moved by `shift`.

    Args:
        images: uint8 digits of shape `(n, 28, 28)`.
        rotations: `(n, 3, 3)` rotations of `(x, y, z)` points.
        shifts: `(n, 3)` shifts `(x, y, z)`, in voxels.
        size: the volume's side, in voxels (at least 28, and even, so that
            the digit's pixels and the slab's planes fall on voxels).
        slab_depth: the slab's thickness, in voxels (even, at most `size`).

    Returns:
        float32 volumes `(n, size, size, size, 1)`, laid out `(depth,
        height, width)`, with values in [0, 1].

    Example:

    >>> digits = np.zeros((1, 28, 28), "uint8")
    >>> digits[0, 8:20, 12:16] = 255
    >>> volume = place_digits(digits, np.eye(3)[None], np.zeros((1, 3)))
    >>> volume[0, :, 16, 16, 0].nonzero()[0].tolist()  # the slab's planes
    [14, 15, 16, 17]
    """
    images = _check_digits(images, size, slab_depth)
    n = len(images)
    rotations = np.asarray(rotations, "float64").reshape(n, 3, 3)
    shifts = np.asarray(shifts, "float64").reshape(n, 3)
    volumes = np.zeros((n, size, size, size), "float32")
    pixels = images.astype("float32") / 255.0
    centre = (size - 1) / 2
    points = np.stack(np.indices((size,) * 3)[::-1], -1).reshape(-1, 3)
    for index in range(n):
        # The slab points `(x, y, z)`, centred, that the voxels show: read
        # bilinearly from the digit, times the slab's depth profile (flat
        # over its planes, fading out linearly over one voxel).
        source = (points - centre - shifts[index]) @ rotations[index]
        profile = np.clip((slab_depth + 1) / 2 - np.abs(source[:, 2]), 0, 1)
        inside = np.flatnonzero(profile)
        rows_cols = source[inside, 1::-1].T + (DIGIT - 1) / 2
        values = ndimage.map_coordinates(pixels[index], rows_cols, order=1)
        volumes[index].reshape(-1)[inside] = values * profile[inside]
    return volumes[..., None]


def _check_digits(images, size, slab_depth):
    """`images` as an array, after checking it, `size` and `slab_depth`."""
    images = check_digits(images)
    if not _is_even_int(size) or size < DIGIT:
        raise ValueError(
            "Invalid value for argument `size`. Expected an even integer of "
            f"at least {DIGIT}. Received size={size!r}"
        )
    if not _is_even_int(slab_depth) or not 0 < slab_depth <= size:
        raise ValueError(
            "Invalid value for argument `slab_depth`. Expected an even "
            f"integer from 2 to size={size}. Received slab_depth={slab_depth!r}"
        )
    return images


def _is_even_int(value):
    """Whether `value` is an even `int` (a `bool` is not)."""
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and value % 2 == 0
    )


def _random_shift(rng, rotation, image, size, slab_depth):
    """A shift, uniform among those that keep the turned slab's ink inside.

    Where no shift does (a digit whose ink spans more than the volume once
    turned), the slab stays centred and loses the ink outside.
    """
    rows, cols = np.nonzero(image)
    if not len(rows):
        return np.zeros(3)
    # The ink's voxels, widened by the one voxel over which trilinear
    # sampling fades ink out, at the slab's front and back.
    offsets = np.array([[dx, dy] for dx in (-1, 1) for dy in (-1, 1)])
    corners = np.stack([cols, rows], -1)[:, None] + offsets - (DIGIT - 1) / 2
    corners = corners.reshape(-1, 2)
    depth = (slab_depth + 1) / 2
    ink = np.concatenate(
        [
            np.pad(corners, ((0, 0), (0, 1)), constant_values=z)
            for z in (-depth, depth)
        ]
    )
    moved = ink @ rotation.T
    half = (size - 1) / 2
    low, high = -half - moved.min(0), half - moved.max(0)
    fits = low <= high
    return np.where(fits, low + rng.uniform(size=3) * (high - low), 0.0)


def build_model(
    model: str, size: int = VOLUME, slab_depth: int = SLAB_DEPTH
) -> keras.Sequential:
    """Build the CNN or the 3-D ST-CNN on volumes (uncompiled).

    Args:
        model: one of `MODELS`.
        size: the side of the cubic, one-channel input volumes; a multiple
            of 4 (the CNN's two poolings).
        slab_depth: the thickness of the data's slabs, by which the
            projection divides its sum (see `project`).

    Returns:
        A `keras.Sequential` mapping `(batch, size, size, size, 1)` volumes
        to `(batch, 10)` class probabilities. The ST-CNN's first layer is
        the `SpatialTransformer`, named `experiment.TRANSFORMER_NAME`. The
        CNN's width is chosen so that its parameter count is the closest
        to the ST-CNN's.

    Example:

    >>> build_model("cnn", 16).output_shape
    (None, 10)
    """
    check_choice(model, "model", MODELS)
    if isinstance(size, bool) or not isinstance(size, int) or size % 4:
        raise ValueError(
            "Invalid value for argument `size`. Expected a positive multiple "
            f"of 4. Received size={size!r}"
        )
    if model == "st-cnn":
        return _st_cnn(size, slab_depth)
    target = st_cnn_parameters(size)
    shape = (None, size, size, 1)
    width = closest_width(
        lambda width: count_parameters(convolutional_head(width), shape),
        target,
    )
    projection = _projection(size, size, slab_depth)
    return _sequential("cnn", size, projection + convolutional_head(width))


def st_cnn_parameters(size: int = VOLUME) -> int:
    """The ST-CNN's parameter count, from its layers' shapes alone.

    Without creating (and, on JAX, compiling the initializers of) its
    weights: the localization net's, the transformer's regression layer
    (from the localization net's features to the 12 parameters of a 3-D
    affine transform) and the CNN's.

    Args:
        size: the side of the input volumes.

    Returns:
        The number of weights of `build_model("st-cnn", size)`.

    Example:

    >>> st_cnn_parameters(16)
    76470
    """
    theta = math.prod(transforms.Affine().parameter_shape(3))
    return (
        count_parameters(_localization_layers(), (None, size, size, size, 1))
        + (LOCALIZATION_FEATURES + 1) * theta
        + count_parameters(
            convolutional_head(ST_CNN_WIDTH), (None, size, size, 1)
        )
    )


def _st_cnn(size, slab_depth):
    """The 3-D ST-CNN (see the module docstring)."""
    # Half as many depth planes as the input: the projection sums them, so
    # fewer suffice, and on a CPU the sampler is the costliest layer.
    transformer = SpatialTransformer(
        _localization_net(),
        transform="affine",
        output_size=(size // 2, size, size),
        name=TRANSFORMER_NAME,
    )
    layers = [
        transformer,
        *_projection(size, size // 2, slab_depth),
        *convolutional_head(ST_CNN_WIDTH),
    ]
    return _sequential("st-cnn", size, layers)


def _sequential(name, size, layers):
    return keras.Sequential(
        [keras.Input((size, size, size, 1)), *layers], name=name
    )


def _localization_net():
    return keras.Sequential(_localization_layers(), name="localization_net")


def _localization_layers():
    """2x2x2 pooling, three 3x3x3 convolutions with pooling, a dense layer."""
    layers = [keras.layers.MaxPooling3D(2)]
    for filters in (16, 32, 32):
        layers.append(
            keras.layers.Conv3D(filters, 3, padding="same", activation="relu")
        )
        layers.append(keras.layers.MaxPooling3D(2, padding="same"))
    layers.append(keras.layers.Flatten())
    layers.append(keras.layers.Dense(LOCALIZATION_FEATURES, activation="relu"))
    return layers


def _projection(size, depth, slab_depth):
    """Layers projecting `(depth, size, size, 1)` volumes along depth.

    The mean over the depth axis, times `size / slab_depth`: for volumes
    of `size` planes, their sum divided by `slab_depth`, so that a digit
    facing the projection shows with its own values; for fewer planes
    spanning the same volume, the same sum up to sampling.
    """
    return [
        keras.layers.AveragePooling3D((depth, 1, 1)),
        keras.layers.Reshape((size, size, 1)),
        keras.layers.Rescaling(size / slab_depth),
    ]


def project(volumes: np.ndarray, slab_depth: int = SLAB_DEPTH) -> np.ndarray:
    """Project volumes along depth as the nets do.

    Args:
        volumes: `(n, depth, size, size, 1)` volumes spanning a cube of
            side `size` (the transformer's output has fewer planes).
        slab_depth: the thickness of the volumes' slabs.

    Returns:
        `(n, size, size)` images: the mean over depth, times `size /
        slab_depth`.

    Example:

    >>> project(np.ones((1, 2, 4, 4, 1)))[0, 0].tolist()
    [1.0, 1.0, 1.0, 1.0]
    """
    volumes = np.asarray(volumes)
    return volumes.mean(axis=1)[..., 0] * volumes.shape[-2] / slab_depth


def slab_tilts(theta: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """The tilt of each slab in the transformer's output, in degrees.

    The angle between the depth axis and the normal of the slab as the
    output shows it: `0` when the digit faces the projection. An input
    slab of normal `m = rotation @ (0, 0, 1)` shows in the output of a 3-D
    affine `theta = [A | b]` (output to input coordinates, both cubes of
    the same size, where normalized coordinates are voxels up to one
    scale) as the plane of normal `A.T @ m`.

    Args:
        theta: the transformer's `(n, 3, 4)` affine matrices, as
            `SpatialTransformer.compute_theta` gives them.
        rotations: the volumes' `(n, 3, 3)` rotations, as `make_volumes`
            gives them.

    Returns:
        float64 array `(n,)` of angles in [0, 90].

    Example:

    >>> rotation = rotation_matrices([30.0], [0.0], [0.0])
    >>> identity = np.eye(3, 4)[None]
    >>> np.round(slab_tilts(identity, rotation), 6).tolist()
    [30.0]
    >>> facing = rotation @ identity  # output (x, y, z) reads rotation @ it
    >>> np.round(slab_tilts(facing, rotation), 6).tolist()
    [0.0]
    """
    normals = np.asarray(rotations)[:, :, 2]
    normals = np.einsum("nij,ni->nj", np.asarray(theta)[:, :, :3], normals)
    cosines = np.abs(normals[:, 2]) / np.linalg.norm(normals, axis=1)
    return np.degrees(np.arccos(np.clip(cosines, 0.0, 1.0)))


def prepare_data(
    path: Path,
    seed: int,
    train_samples: int | None = None,
    test_samples: int | None = None,
    size: int = VOLUME,
    protocol: str = "fixed",
    slab_depth: int = SLAB_DEPTH,
) -> tuple[tuple, tuple]:
    """Load MNIST, keep the first samples, and make their volumes.

    Args:
        path: the MNIST `.npz` file, as for `mnist_data.load_mnist`.
        seed: the seed of the training volumes; the test volumes are made
            with `TEST_SEED`.
        train_samples: how many training digits to keep; `None` for all.
        test_samples: how many test digits to keep; `None` for all.
        size: the volumes' side, in voxels.
        protocol: one of `experiment.PROTOCOLS`; under `"fresh"`, the
            training digits are left as they are, for
            `experiment.FreshEpochs`.
        slab_depth: the slabs' thickness, in voxels.

    Returns:
        `((x_train, y_train), (x_test, y_test, test_parameters))`: float32
        volumes of shape `(n, size, size, size, 1)` (under `"fresh"`,
        `x_train` are the uint8 digits `(n, 28, 28)`), int32 labels, and
        the test volumes' parameters, as `make_volumes` returns them.
    """
    check_choice(protocol, "protocol", PROTOCOLS)
    (x_train, y_train), (x_test, y_test) = load_mnist(path)
    x_train, y_train = take_first(
        (x_train, y_train), train_samples, "--train-samples"
    )
    x_test, y_test = take_first(
        (x_test, y_test), test_samples, "--test-samples"
    )
    if protocol == "fixed":
        x_train = make_volumes(x_train, seed, size, slab_depth)[0]
    train = x_train, y_train.astype("int32")
    test_volumes, test_parameters = make_volumes(
        x_test, TEST_SEED, size, slab_depth
    )
    return train, (test_volumes, y_test.astype("int32"), test_parameters)


def draw_projections(
    before: np.ndarray,
    after: np.ndarray,
    tilts_before: np.ndarray,
    tilts_after: np.ndarray,
    scale: int = 3,
) -> np.ndarray:
    """Draw projections before and after the transformer, with their tilts.

    One column per example: the projection of the input volume above that
    of the transformer's output, each scaled to its own maximum, with the
    slab's tilt (degrees) under it. Needs Pillow.

    Args:
        before: `(n, height, width)` projections of the input volumes.
        after: `(n, height, width)` projections of the transformer's
            outputs.
        tilts_before: `(n,)` tilts of the input slabs.
        tilts_after: `(n,)` tilts of the output slabs (`slab_tilts`).
        scale: each voxel is drawn as `scale` x `scale` pixels.

    Returns:
        An RGB image, a `uint8` NumPy array `(height, width, 3)`.

    Example:

    >>> images = np.random.rand(2, 8, 8)
    >>> draw_projections(images, images, [40.0, 10.0], [2.0, 1.0]).shape
    (76, 60, 3)
    """
    from PIL import Image
    from PIL import ImageDraw

    height, width = before.shape[1:]
    cell_width, cell_height = width * scale + 6, height * scale + 14
    canvas = Image.new("RGB", (len(before) * cell_width, 2 * cell_height))
    draw = ImageDraw.Draw(canvas)
    rows = ((before, tilts_before), (after, tilts_after))
    for row, (images, tilts) in enumerate(rows):
        for column, (image, tilt) in enumerate(zip(images, tilts, strict=True)):
            pixels = np.clip(image / max(image.max(), 1e-6), 0, 1) * 255
            picture = Image.fromarray(pixels.astype("uint8")).resize(
                (width * scale, height * scale), Image.NEAREST
            )
            left, top = column * cell_width + 3, row * cell_height
            canvas.paste(picture, (left, top))
            draw.text((left, top + height * scale), f"{tilt:.0f}", fill="white")
    return np.asarray(canvas)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line (`sys.argv[1:]` if `argv` is `None`)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model",
        choices=MODELS,
        default="st-cnn",
        help="the classifier (default: %(default)s)",
    )
    parser.add_argument(
        "--volume-size",
        type=positive_int,
        default=VOLUME,
        help="the volumes' side in voxels, a multiple of 4 of at least 28 "
        "(default: %(default)s; the paper's is 60)",
    )
    parser.add_argument(
        "--slab-depth",
        type=positive_int,
        default=SLAB_DEPTH,
        help="the thickness of the digits' slabs in voxels, even, at most "
        "the volume's side (default: %(default)s)",
    )
    add_protocol_argument(parser)
    add_training_arguments(parser, epochs=5, batch_size=32)
    args = parser.parse_args(argv)
    if args.volume_size < DIGIT or args.volume_size % 4:
        parser.error(
            "argument --volume-size: expected a multiple of 4 of at least "
            f"{DIGIT}, received {args.volume_size}"
        )
    if args.slab_depth % 2 or args.slab_depth > args.volume_size:
        parser.error(
            "argument --slab-depth: expected an even number of at most "
            f"--volume-size ({args.volume_size}), received {args.slab_depth}"
        )
    if args.output_dir is None:
        name = args.model + protocol_suffix(args)
        if args.slab_depth != SLAB_DEPTH:
            name += f"_slab{args.slab_depth}"
        args.output_dir = Path("outputs") / "mnist_3d" / name
    return args


def main(argv: list[str] | None = None) -> dict:
    """Run the experiment; return the results it saves in `results.json`.

    Their `seconds` is the wall time of this function, from making the data
    to saving the results.
    """
    args = parse_args(argv)
    start = time.perf_counter()
    keras.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test, parameters) = prepare_data(
        args.data,
        args.seed,
        args.train_samples,
        args.test_samples,
        args.volume_size,
        args.protocol,
        args.slab_depth,
    )

    def volumes(digits, seed):
        return make_volumes(digits, seed, args.volume_size, args.slab_depth)[0]

    fit_data = training_data(x_train, y_train, args, volumes)
    model = build_model(args.model, args.volume_size, args.slab_depth)
    model.compile(
        optimizer=cosine_adam(args.epochs, len(x_train), args.batch_size),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    callbacks = []
    if args.log_dir is not None:
        callbacks.append(keras.callbacks.TensorBoard(args.log_dir))
    model.fit(
        **fit_data,
        epochs=args.epochs,
        verbose=args.verbose,
        callbacks=callbacks,
    )
    loss, accuracy = model.evaluate(
        x_test, y_test, batch_size=args.batch_size, verbose=args.verbose
    )
    save_model(model, args.output_dir)
    results = {
        "model": args.model,
        "volume_size": args.volume_size,
        "slab_depth": args.slab_depth,
        "parameters": model.count_params(),
        "error_percent": round(100 * (1 - float(accuracy)), 2),
        "accuracy": float(accuracy),
        "loss": float(loss),
        "tilt_before_degrees": round(float(parameters["tilt"].mean()), 1),
    }
    if args.model == "st-cnn":
        tilts = _transformer_tilts(model, x_test, parameters, args)
        results["tilt_after_degrees"] = round(float(tilts.mean()), 1)
    results.update(
        protocol=args.protocol,
        epochs=args.epochs,
        batch_size=args.batch_size,
        backend=keras.backend.backend(),
        seconds=round(time.perf_counter() - start, 1),
        train_samples=len(x_train),
        test_samples=len(x_test),
        seed=args.seed,
    )
    save_results(args.output_dir, results)
    print(
        f"Test error: {results['error_percent']}% on {len(x_test)} volumes "
        f"({args.model}, backend {results['backend']}, "
        f"{results['seconds']} s)."
    )
    return results


def _transformer_tilts(model, volumes, parameters, args):
    """The test slabs' tilts after the transformer; draws `projections.png`."""
    transformer = model.get_layer(TRANSFORMER_NAME)
    theta = np.concatenate(
        [
            keras.ops.convert_to_numpy(
                transformer.compute_theta(volumes[i : i + args.batch_size])
            )
            for i in range(0, len(volumes), args.batch_size)
        ]
    )
    tilts = slab_tilts(theta, parameters["rotation"])
    shown = volumes[:PICTURE_SAMPLES]
    outputs = keras.ops.convert_to_numpy(transformer(shown))
    picture = draw_projections(
        project(shown, args.slab_depth),
        project(outputs, args.slab_depth),
        parameters["tilt"][:PICTURE_SAMPLES],
        tilts[:PICTURE_SAMPLES],
    )
    keras.utils.save_img(
        args.output_dir / "projections.png", picture, scale=False
    )
    return tilts


if __name__ == "__main__":
    main()
