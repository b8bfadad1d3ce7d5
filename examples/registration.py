"""Unsupervised image registration with a dense field, as VoxelMorph does.

The tutorial of VoxelMorph (Balakrishnan et al., 2019; Dalca et al., 2018)
on MNIST, in Keras 3 with keras-stn: a small U-Net takes a moving digit and
a fixed one (by default the "atlas" of its class, the mean training digit;
`--fixed pair` picks another digit of the same class), concatenated on the
channels, and predicts a stationary velocity field; `IntegrateVelocity`
(scaling and squaring) turns it into a displacement and `Warp` moves the
digit with it. No labels or true fields: the loss is the image similarity
of the moved and fixed digits (MSE, or `--similarity ncc`) plus `lambda`
times the smoothness (`DisplacementSmoothness`) of the predicted field.
`--no-integration` predicts the displacement directly, which folds more.
Digits are padded to 32x32 so that the U-Net halves them cleanly.

`--volumes` registers synthetic 32^3 volumes instead: blobs (fixed) and
the same blobs deformed by a random smooth diffeomorphism (moving), the
integral of Gaussian-smoothed noise, with a 3-D U-Net.

Usage (`--help` lists the options):

    KERAS_BACKEND=torch python examples/registration.py
    KERAS_BACKEND=torch python examples/registration.py --no-integration
    KERAS_BACKEND=torch python examples/registration.py --volumes

Prints a table of the test pairs' MSE and Dice (of the digits thresholded
at half their maximum) before (moving against fixed) and after (moved
against fixed), the share of pixels where the Jacobian determinant of the
map is not positive (folds), and the time per epoch. Outputs, in
`--output-dir` (default `outputs/registration/<run>`): `model.keras`,
`results.json` and `registration.png` (test examples: moving, fixed,
moved, and the displacement drawn as a deformed grid; for volumes, their
middle slices and the field's in-plane components).
"""

import argparse
import time
from pathlib import Path

import keras
import numpy as np
from scipy import ndimage

import keras_stn

from experiment import add_run_arguments
from experiment import cosine_adam
from experiment import positive_int
from experiment import save_results
from mnist_data import load_mnist
from mnist_data import take_first

SIZE = 32
FIXED = ("atlas", "pair")
SIMILARITIES = ("mse", "ncc")
# The default smoothness weight per similarity loss, VoxelMorph's advice.
SMOOTHNESS = {"mse": 0.05, "ncc": 1.0}
PICTURE_SAMPLES = 6


def pad_digits(images: np.ndarray) -> np.ndarray:
    """Scale uint8 digits to [0, 1] and pad them to `SIZE` x `SIZE`.

    Args:
        images: uint8 array `(n, height, width)`, at most `SIZE` wide.

    Returns:
        float32 array `(n, SIZE, SIZE, 1)`, the digits centred.
    """
    height, width = images.shape[1:]
    top, left = (SIZE - height) // 2, (SIZE - width) // 2
    padded = np.zeros((len(images), SIZE, SIZE, 1), "float32")
    padded[:, top : top + height, left : left + width, 0] = images / 255.0
    return padded


def class_atlases(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The mean digit of each class, VoxelMorph's atlas.

    Args:
        images: float array `(n, height, width, 1)`.
        labels: int array `(n,)`, the classes 0 to 9.

    Returns:
        float32 array `(10, height, width, 1)`; zeros for a missing class.
    """
    atlases = np.zeros((10, *images.shape[1:]), "float32")
    for digit in np.unique(labels):
        atlases[digit] = images[labels == digit].mean(axis=0)
    return atlases


def same_class_partners(labels: np.ndarray, rng: np.random.Generator):
    """For each sample, the index of another sample of the same class.

    Args:
        labels: int array `(n,)`.
        rng: the random generator.

    Returns:
        int array `(n,)`: a random derangement within each class (a sample
        is its own partner only if it is alone in its class).
    """
    partners = np.arange(len(labels))
    for digit in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == digit))
        partners[members] = np.roll(members, 1)
    return partners


def prepare_digits(
    path: Path,
    fixed: str = "atlas",
    seed: int = 0,
    train_samples: int | None = None,
    test_samples: int | None = None,
) -> tuple[tuple, tuple]:
    """Moving and fixed MNIST digits for training and testing.

    Args:
        path: the MNIST `.npz` file, as for `mnist_data.load_mnist`.
        fixed: `"atlas"`: each digit's fixed image is the mean training
            digit of its class; `"pair"`: another digit of its class from
            the same set.
        seed: the seed of the pairing.
        train_samples: how many training digits to keep; `None` for all.
        test_samples: how many test digits to keep; `None` for all.

    Returns:
        `((moving, fixed, labels), (moving, fixed, labels))` for training
        and testing: float32 digits `(n, SIZE, SIZE, 1)` in [0, 1] and
        their int labels.
    """
    (x_train, y_train), (x_test, y_test) = load_mnist(path)
    x_train, y_train = take_first(
        (x_train, y_train), train_samples, "--train-samples"
    )
    x_test, y_test = take_first(
        (x_test, y_test), test_samples, "--test-samples"
    )
    x_train, x_test = pad_digits(x_train), pad_digits(x_test)
    y_train, y_test = y_train.astype("int32"), y_test.astype("int32")
    rng = np.random.default_rng(seed)
    if fixed == "atlas":
        atlases = class_atlases(x_train, y_train)
        targets = atlases[y_train], atlases[y_test]
    else:
        targets = (
            x_train[same_class_partners(y_train, rng)],
            x_test[same_class_partners(y_test, rng)],
        )
    return (x_train, targets[0], y_train), (x_test, targets[1], y_test)


def blob_volumes(
    count: int, size: int, rng: np.random.Generator, blobs: int = 8
) -> np.ndarray:
    """Volumes of a few solid Gaussian blobs, values in [0, 1].

    The sum of the blobs, scaled to a maximum of 1, is mapped to 0 below
    0.25, 1 above 0.75 and linearly between: shapes with sharp edges.

    Args:
        count: the number of volumes.
        size: their side.
        rng: the random generator.
        blobs: the blobs per volume; their centres lie in the middle
            half of each axis, their widths (sigma) between `size / 16`
            and `size / 10`.

    Returns:
        float32 array `(count, size, size, size, 1)`.
    """
    grid = np.indices((size, size, size), "float32")
    volumes = np.zeros((count, size, size, size), "float32")
    for volume in volumes:
        for _ in range(blobs):
            centre = rng.uniform(size / 4, 3 * size / 4, (3, 1, 1, 1))
            sigma = rng.uniform(size / 16, size / 10)
            distance = np.sum((grid - centre) ** 2, axis=0)
            volume += np.exp(-distance / (2 * sigma**2))
        volume /= volume.max()
    return np.clip(2 * volumes - 0.5, 0, 1)[..., None]


def smooth_velocities(
    count: int,
    size: int,
    rng: np.random.Generator,
    sigma: float = 4.0,
    amplitude: float = 3.0,
) -> np.ndarray:
    """Random smooth velocity fields: Gaussian-smoothed white noise.

    Args:
        count: the number of fields.
        size: their side, in voxels.
        rng: the random generator.
        sigma: the width of the Gaussian filter, in voxels.
        amplitude: the largest vector of each field, in voxels.

    Returns:
        float32 array `(count, size, size, size, 3)`, vectors `(x, y, z)`.
    """
    noise = rng.standard_normal((count, size, size, size, 3))
    fields = ndimage.gaussian_filter(noise, (0, sigma, sigma, sigma, 0))
    largest = np.linalg.norm(fields, axis=-1).max(axis=(1, 2, 3))
    fields *= amplitude / largest[:, None, None, None, None]
    return fields.astype("float32")


def prepare_volumes(
    count: int, size: int, seed: int, amplitude: float = 5.0
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of volumes: blobs deformed by a random diffeomorphism, and not.

    The moving volume is the fixed one warped by the integral of a smooth
    random velocity (`smooth_velocities`, `keras_stn.ops.integrate_
    velocity`), so a smooth, fold-free field registers it exactly.

    Args:
        count: the number of pairs.
        size: the volumes' side.
        seed: the seed of the volumes and fields.
        amplitude: the largest velocity vector, in voxels.

    Returns:
        `(moving, fixed)`: float32 arrays `(count, size, size, size, 1)`.
    """
    rng = np.random.default_rng(seed)
    fixed = blob_volumes(count, size, rng)
    moving = np.empty_like(fixed)
    chunk = 32
    for start in range(0, count, chunk):
        part = slice(start, start + chunk)
        velocity = smooth_velocities(
            len(fixed[part]), size, rng, 4.0, amplitude
        )
        field = keras_stn.ops.integrate_velocity(
            velocity, data_format="channels_last"
        )
        moving[part] = keras.ops.convert_to_numpy(
            keras_stn.ops.warp(fixed[part], field, data_format="channels_last")
        )
    return moving, fixed


def build_unet(
    shape: tuple[int, ...], widths: tuple[int, ...] = (16, 32, 32, 32)
) -> keras.Model:
    """VoxelMorph's U-Net: from a moving and a fixed image to a field.

    Per level, a 3x3 (3x3x3) convolution with LeakyReLU(0.2), then 2x2
    max pooling; back up, 2x upsampling, the skip connection of the same
    level concatenated, and a convolution; a last convolution makes the
    field, initialised near zero (normal weights of standard deviation
    1e-5, zero bias) as VoxelMorph's, so training starts at the identity.

    Args:
        shape: the images' shape without the batch, `(height, width, 1)`
            or `(depth, height, width, 1)`; the sides divisible by
            `2 ** (len(widths) - 1)`.
        widths: the filters of each level, from the full resolution down.

    Returns:
        A model from `[moving, fixed]` to a field `(batch, *spatial,
        rank)`, in pixels, vectors `(x, y[, z])`.
    """
    rank = len(shape) - 1
    conv = keras.layers.Conv2D if rank == 2 else keras.layers.Conv3D
    pool = keras.layers.MaxPooling2D if rank == 2 else keras.layers.MaxPooling3D
    upsample = (
        keras.layers.UpSampling2D if rank == 2 else keras.layers.UpSampling3D
    )

    def block(x, filters):
        x = conv(filters, 3, padding="same")(x)
        return keras.layers.LeakyReLU(0.2)(x)

    moving = keras.Input(shape, name="moving")
    fixed = keras.Input(shape, name="fixed")
    x = keras.layers.Concatenate()([moving, fixed])
    skips = []
    for level, filters in enumerate(widths):
        if level:
            x = pool(2)(x)
        x = block(x, filters)
        skips.append(x)
    for filters, skip in zip(widths[-2::-1], skips[-2::-1], strict=True):
        x = keras.layers.Concatenate()([upsample(2)(x), skip])
        x = block(x, filters)
    field = conv(
        rank,
        3,
        padding="same",
        kernel_initializer=keras.initializers.RandomNormal(stddev=1e-5),
        bias_initializer="zeros",
        name="field",
    )(x)
    return keras.Model([moving, fixed], field, name="unet")


def build_registration_model(
    shape: tuple[int, ...],
    widths: tuple[int, ...] = (16, 32, 32, 32),
    integration_steps: int = 7,
) -> keras.Model:
    """The registration net: U-Net, integration, warp.

    Args:
        shape: the images' shape without the batch, as for `build_unet`.
        widths: the U-Net's filters per level.
        integration_steps: the squarings of `IntegrateVelocity`; 0 takes
            the U-Net's field as the displacement itself.

    Returns:
        An uncompiled model from `[moving, fixed]` to `[moved, field]`,
        the field being the U-Net's output (the velocity, or the
        displacement without integration), the one that the smoothness
        loss regularizes, as in VoxelMorph. Its layer `"displacement"`
        gives the displacement that moves the images.
    """
    unet = build_unet(shape, widths)
    moving, fixed = unet.inputs
    field = unet([moving, fixed])
    if integration_steps:
        displacement = keras_stn.layers.IntegrateVelocity(
            integration_steps, name="displacement"
        )(field)
    else:
        displacement = keras.layers.Identity(name="displacement")(field)
    moved = keras_stn.layers.Warp(name="moved")([moving, displacement])
    field = keras.layers.Identity(name="field")(field)
    return keras.Model([moving, fixed], [moved, field], name="registration")


def compile_registration_model(
    model: keras.Model,
    similarity: str,
    smoothness: float,
    optimizer: keras.optimizers.Optimizer | str = "adam",
) -> None:
    """Compile the net with the similarity and smoothness losses.

    Args:
        model: a `build_registration_model` net.
        similarity: `"mse"` or `"ncc"` (`LocalNormalizedCrossCorrelation`
            with a 9-pixel window), between moved and fixed images.
        smoothness: the weight of `DisplacementSmoothness` of the field;
            the field's target, which it ignores, is given as zeros.
        optimizer: the optimizer.
    """
    image_loss = (
        "mse"
        if similarity == "mse"
        else keras_stn.losses.LocalNormalizedCrossCorrelation(window=9)
    )
    model.compile(
        optimizer=optimizer,
        loss=[image_loss, keras_stn.losses.DisplacementSmoothness()],
        loss_weights=[1.0, smoothness],
    )


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """The mean Dice overlap of two batches of images, thresholded.

    Each image is thresholded at half its maximum; Dice is `2 |A & B| /
    (|A| + |B|)` per pair (1 if both are empty), averaged.

    Args:
        a: array `(batch, ...)`.
        b: array of the same shape.

    Returns:
        The mean Dice, between 0 and 1.
    """
    a, b = (_foreground(x.reshape(len(x), -1)) for x in (a, b))
    overlap = 2 * np.sum(a & b, axis=1)
    total = np.sum(a, axis=1) + np.sum(b, axis=1)
    return float(
        np.mean(np.where(total > 0, overlap / np.maximum(total, 1), 1))
    )


def _foreground(x):
    return x > 0.5 * x.max(axis=1, keepdims=True)


def fold_share(displacement: np.ndarray, batch_size: int = 64) -> float:
    """The share of pixels (voxels) where a field's map folds.

    Args:
        displacement: array `(batch, *spatial, rank)`, vectors `(x, y[,
            z])` in pixels.
        batch_size: how many fields to differentiate at a time.

    Returns:
        The share, between 0 and 1, of pixels where
        `keras_stn.ops.jacobian_determinant` is not positive.
    """
    folded = 0
    for start in range(0, len(displacement), batch_size):
        determinant = keras_stn.ops.jacobian_determinant(
            displacement[start : start + batch_size],
            data_format="channels_last",
        )
        folded += int(np.sum(keras.ops.convert_to_numpy(determinant) <= 0))
    return folded / displacement[..., 0].size


def register(
    model: keras.Model, moving: np.ndarray, fixed: np.ndarray, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Register moving to fixed images with a trained net.

    Args:
        model: a `build_registration_model` net.
        moving: the moving images.
        fixed: the fixed images.
        batch_size: the prediction batch size.

    Returns:
        `(moved, displacement)`: NumPy arrays.
    """
    outputs = [
        model.get_layer(name).output for name in ("moved", "displacement")
    ]
    registration = keras.Model(model.inputs, outputs)
    moved, displacement = registration.predict(
        [moving, fixed], batch_size=batch_size, verbose=0
    )
    return moved, displacement


def registration_metrics(
    moving: np.ndarray,
    fixed: np.ndarray,
    moved: np.ndarray,
    displacement: np.ndarray,
) -> dict:
    """The table's numbers: MSE and Dice before and after, and folds.

    Args:
        moving: the moving images.
        fixed: the fixed images.
        moved: the moving images registered.
        displacement: the displacement that moved them.

    Returns:
        A dict with `mse_before`, `mse_after`, `dice_before`, `dice_after`
        and `folds_percent`.
    """
    return {
        "mse_before": float(np.mean((moving - fixed) ** 2)),
        "mse_after": float(np.mean((moved - fixed) ** 2)),
        "dice_before": dice(moving, fixed),
        "dice_after": dice(moved, fixed),
        "folds_percent": 100 * fold_share(displacement),
    }


class EpochTimer(keras.callbacks.Callback):
    """Records the wall time of each training epoch, in `seconds`."""

    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def draw_registration(
    moving: np.ndarray,
    fixed: np.ndarray,
    moved: np.ndarray,
    displacement: np.ndarray,
    scale: int = 4,
    grid_step: int = 2,
) -> np.ndarray:
    """Draw examples: moving, fixed, moved, and the field as a grid.

    One row per example. The grid is the map `p -> p + displacement[p]`
    of every `grid_step`-th row and column of pixels: where each pixel of
    the moved image was read from the moving one. Needs Pillow.

    Args:
        moving: float array `(n, height, width, 1)`, values in [0, 1].
        fixed: the same.
        moved: the same.
        displacement: float array `(n, height, width, 2)`, vectors `(x,
            y)` in pixels.
        scale: the pixels of the picture per pixel of the images.
        grid_step: the grid's spacing, in pixels of the images.

    Returns:
        An RGB picture, a `uint8` array `(rows, columns, 3)`.
    """
    from PIL import Image
    from PIL import ImageDraw

    count, height, width = moving.shape[:3]
    margin = 4
    panel = (width * scale, height * scale)
    header = 14
    picture = Image.new(
        "RGB",
        (
            4 * (panel[0] + margin) + margin,
            header + count * (panel[1] + margin),
        ),
        (32, 32, 32),
    )
    draw = ImageDraw.Draw(picture)
    for column, title in enumerate(("moving", "fixed", "moved", "field")):
        draw.text((margin + column * (panel[0] + margin), 1), title)
    for row in range(count):
        top = header + row * (panel[1] + margin)
        for column, images in enumerate((moving, fixed, moved)):
            grey = np.clip(images[row, ..., 0], 0, 1) * 255
            image = Image.fromarray(grey.astype("uint8")).resize(
                panel, Image.NEAREST
            )
            picture.paste(image, (margin + column * (panel[0] + margin), top))
        left = margin + 3 * (panel[0] + margin)
        draw.rectangle([left, top, left + panel[0] - 1, top + panel[1] - 1], 0)
        y, x = np.mgrid[0:height, 0:width].astype("float32")
        points_x = (x + displacement[row, ..., 0] + 0.5) * scale + left
        points_y = (y + displacement[row, ..., 1] + 0.5) * scale + top
        lines = [
            (points_x[i], points_y[i]) for i in range(0, height, grid_step)
        ]
        lines += [
            (points_x[:, j], points_y[:, j]) for j in range(0, width, grid_step)
        ]
        for line_x, line_y in lines:
            points = np.stack([line_x, line_y], axis=-1).ravel().tolist()
            draw.line(points, fill=(80, 220, 120))
    return np.asarray(picture)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line (`sys.argv[1:]` if `argv` is `None`)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--volumes",
        action="store_true",
        help="register synthetic 3-D volumes instead of MNIST digits",
    )
    parser.add_argument(
        "--fixed",
        choices=FIXED,
        default="atlas",
        help="digits: the fixed image, the class's mean digit or another "
        "digit of the class (default: %(default)s)",
    )
    parser.add_argument(
        "--no-integration",
        action="store_true",
        help="predict the displacement directly, not a velocity",
    )
    parser.add_argument(
        "--similarity",
        choices=SIMILARITIES,
        default="mse",
        help="the image loss (default: %(default)s)",
    )
    parser.add_argument(
        "--smoothness",
        type=float,
        help="the weight of the field's smoothness loss (default: 0.05 "
        "with mse, 1 with ncc)",
    )
    parser.add_argument(
        "--widths",
        type=positive_int,
        nargs="+",
        help="the U-Net's filters per level (default: 16 32 32 32 for "
        "digits, 8 16 16 16 for volumes)",
    )
    parser.add_argument(
        "--epochs",
        type=positive_int,
        help="training epochs (default: 3 for digits, 2 for volumes)",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        help="batch size (default: 16 for digits, 4 for volumes)",
    )
    parser.add_argument(
        "--train-samples",
        type=positive_int,
        help="training pairs (default: 1024 digits, 256 volumes)",
    )
    parser.add_argument(
        "--test-samples",
        type=positive_int,
        help="test pairs (default: 500 digits, 64 volumes)",
    )
    parser.add_argument(
        "--volume-size",
        type=positive_int,
        default=32,
        help="volumes: their side (default: %(default)s)",
    )
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    defaults = {
        False: {
            "widths": [16, 32, 32, 32],
            "epochs": 3,
            "batch_size": 16,
            "train_samples": 1024,
            "test_samples": 500,
        },
        True: {
            "widths": [8, 16, 16, 16],
            "epochs": 2,
            "batch_size": 4,
            "train_samples": 256,
            "test_samples": 64,
        },
    }[args.volumes]
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    halvings = 2 ** (len(args.widths) - 1)
    size = args.volume_size if args.volumes else SIZE
    if size % halvings:
        parser.error(
            f"the images' side ({size}) must be divisible by {halvings} "
            f"for a U-Net of {len(args.widths)} levels"
        )
    if args.smoothness is None:
        args.smoothness = SMOOTHNESS[args.similarity]
    if args.output_dir is None:
        name = "volumes" if args.volumes else f"digits_{args.fixed}"
        if args.no_integration:
            name += "_no_integration"
        args.output_dir = Path("outputs") / "registration" / name
    return args


def main(argv: list[str] | None = None) -> dict:
    """Run the experiment; return the results it saves in `results.json`."""
    args = parse_args(argv)
    start = time.perf_counter()
    keras.utils.set_random_seed(args.seed)
    if args.volumes:
        moving, fixed = prepare_volumes(
            args.train_samples + args.test_samples, args.volume_size, args.seed
        )
        train = moving[: args.train_samples], fixed[: args.train_samples]
        test = moving[args.train_samples :], fixed[args.train_samples :]
    else:
        train, test = prepare_digits(
            args.data,
            args.fixed,
            args.seed,
            args.train_samples,
            args.test_samples,
        )
    shape = train[0].shape[1:]
    model = build_registration_model(
        shape, tuple(args.widths), 0 if args.no_integration else 7
    )
    compile_registration_model(
        model,
        args.similarity,
        args.smoothness,
        cosine_adam(args.epochs, len(train[0]), args.batch_size),
    )
    timer = EpochTimer()
    field_target = np.zeros((*train[0].shape[:-1], len(shape) - 1), "float32")
    model.fit(
        [train[0], train[1]],
        [train[1], field_target],
        batch_size=args.batch_size,
        epochs=args.epochs,
        verbose=args.verbose,
        callbacks=[timer],
    )
    moved, displacement = register(model, test[0], test[1], args.batch_size)
    metrics = registration_metrics(test[0], test[1], moved, displacement)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    model.save(args.output_dir / "model.keras")
    if args.volumes:
        middle = args.volume_size // 2
        slices = [x[:PICTURE_SAMPLES, middle] for x in (*test[:2], moved)]
        pictured = *slices, displacement[:PICTURE_SAMPLES, middle, ..., :2]
    else:
        pictured = [
            x[:PICTURE_SAMPLES] for x in (*test[:2], moved, displacement)
        ]
    keras.utils.save_img(
        args.output_dir / "registration.png",
        draw_registration(*pictured),
        scale=False,
    )
    results = {
        "data": "volumes" if args.volumes else f"digits ({args.fixed})",
        "integration": not args.no_integration,
        "similarity": args.similarity,
        "smoothness": args.smoothness,
        **{key: round(value, 4) for key, value in metrics.items()},
        "first_epoch_seconds": round(timer.seconds[0], 1),
        "epoch_seconds": round(
            float(np.mean(timer.seconds[1:] or timer.seconds)), 1
        ),
        "parameters": model.count_params(),
        "widths": list(args.widths),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "train_samples": len(train[0]),
        "test_samples": len(test[0]),
        "backend": keras.backend.backend(),
        "seconds": round(time.perf_counter() - start, 1),
        "seed": args.seed,
    }
    save_results(args.output_dir, results)
    print(format_table(results))
    return results


def format_table(results: dict) -> str:
    """The results as a Markdown table.

    Args:
        results: what `main` returns.

    Returns:
        The table's lines, joined.
    """
    folds = f"{results['folds_percent']:.3f}%"
    rows = [
        "| | MSE | Dice | non-positive Jacobian |",
        "|---|---|---|---|",
        f"| before | {results['mse_before']:.4f} | "
        f"{results['dice_before']:.3f} | 0% |",
        f"| after | {results['mse_after']:.4f} | "
        f"{results['dice_after']:.3f} | {folds} |",
    ]
    rows.append(
        f"{results['data']}, integration {results['integration']}, "
        f"{results['test_samples']} test pairs, backend "
        f"{results['backend']}: {results['epoch_seconds']} s per epoch "
        f"(first {results['first_epoch_seconds']} s)."
    )
    return "\n".join(rows)


if __name__ == "__main__":
    main()
