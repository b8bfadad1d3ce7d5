"""Train a spatial transformer CNN on rotated and translated MNIST.

Each MNIST digit is rotated by up to 45 degrees, scaled and placed at a
random position on a 42x42 canvas. An ST-CNN (Jaderberg et al., 2015) learns
to undo the distortion: a `SpatialTransformer` samples a 28x28 view of the
canvas, which a small CNN classifies. The distortion is made with SciPy, so
the data do not depend on the library under test.

Usage (about 5 minutes on 2 CPU cores; `--help` lists the options):

    KERAS_BACKEND=jax python examples/mnist_demo.py

Outputs, in `--output-dir`: the trained model `st_cnn.keras`, the metrics
in `results.json`, `transformer_outputs.png`: distorted test digits, each
with the outline of the region that the transformer samples, beside what it
made of them, and the same picture after each epoch in `snapshots/`.
"""

import argparse
import json
import time
from pathlib import Path

import keras
import numpy as np
from scipy import ndimage

from keras_stn import SpatialTransformer
from keras_stn.callbacks import TransformerSnapshot
from keras_stn.callbacks import draw_transformer

DEFAULT_DATA = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist_subset.npz"
)
CANVAS = 42
DIGIT = 28
MAX_ANGLE = 45.0
SCALES = (0.8, 1.1)


def load_mnist(path: Path) -> tuple[tuple, tuple]:
    """Load MNIST from an `.npz` file, or download it if the file is missing.

    Args:
        path: an `.npz` file with the arrays `x_train`, `y_train`, `x_test`
            and `y_test`, as `keras.datasets.mnist.load_data` returns them.

    Returns:
        `((x_train, y_train), (x_test, y_test))`: uint8 images of shape
        `(n, 28, 28)` and their integer labels.
    """
    if path.is_file():
        with np.load(path) as data:
            train = data["x_train"], data["y_train"]
            test = data["x_test"], data["y_test"]
        return train, test
    print(
        f"MNIST file {path} not found; downloading MNIST with "
        "keras.datasets.mnist.load_data() instead."
    )
    try:
        return keras.datasets.mnist.load_data()
    except Exception as error:  # Keras raises a bare `Exception` offline.
        raise SystemExit(
            f"Error: the MNIST file {path} is missing and downloading MNIST "
            f"failed ({error}). Pass the file's path with --data."
        ) from error


def distort(images: np.ndarray, seed: int) -> np.ndarray:
    """Rotate, scale and translate digits onto a larger canvas at random.

    Each digit is rotated by an angle drawn uniformly in [-45, 45] degrees,
    scaled by a factor in [0.8, 1.1] and placed at a uniformly random
    position where its bounding box stays whole on the 42x42 canvas. The
    result depends only on `images` and `seed`.

    Args:
        images: uint8 array of shape `(n, 28, 28)`.
        seed: seed of the random distortions.

    Returns:
        float32 array of shape `(n, 42, 42, 1)` with values in [0, 1].
    """
    rng = np.random.default_rng(seed)
    n = len(images)
    angles = np.deg2rad(rng.uniform(-MAX_ANGLE, MAX_ANGLE, n))
    scales = rng.uniform(*SCALES, n)
    cos, sin = np.cos(angles) * scales, np.sin(angles) * scales
    # Forward maps, digit (row, col) -> canvas (row, col) up to a shift.
    forward = np.stack([np.stack([cos, -sin], 1), np.stack([sin, cos], 1)], 1)
    # Corners of each digit's bounding box, widened by the one pixel over
    # which bilinear interpolation fades the digit out.
    rows, cols = images.any(axis=2), images.any(axis=1)
    top, left = rows.argmax(1) - 1, cols.argmax(1) - 1
    bottom = DIGIT - rows[:, ::-1].argmax(1)
    right = DIGIT - cols[:, ::-1].argmax(1)
    corners = np.stack(
        [
            np.stack([top, left], 1),
            np.stack([top, right], 1),
            np.stack([bottom, left], 1),
            np.stack([bottom, right], 1),
        ],
        1,
    )
    moved = np.einsum("nij,nkj->nki", forward, corners)
    low, high = -moved.min(1), CANVAS - 1 - moved.max(1)
    shifts = low + rng.uniform(size=(n, 2)) * (high - low)
    inverse = np.linalg.inv(forward)
    offsets = -np.einsum("nij,nj->ni", inverse, shifts)
    pixels = images.astype("float32") / 255.0
    canvases = np.zeros((n, CANVAS, CANVAS), "float32")
    for i in range(n):
        ndimage.affine_transform(
            pixels[i],
            inverse[i],
            offset=offsets[i],
            output_shape=(CANVAS, CANVAS),
            output=canvases[i],
            order=1,
        )
    return np.clip(canvases, 0.0, 1.0)[..., None]


def prepare_data(
    path: Path,
    seed: int,
    train_samples: int | None = None,
    test_samples: int | None = None,
) -> tuple[tuple, tuple]:
    """Load MNIST, keep the first samples, and distort them.

    Args:
        path: the MNIST `.npz` file, as for `load_mnist`.
        seed: the training set is distorted with `seed`, the test set with
            `seed + 1`.
        train_samples: how many training images to keep; `None` for all.
        test_samples: how many test images to keep; `None` for all.

    Returns:
        `((x_train, y_train), (x_test, y_test))`: float32 images of shape
        `(n, 42, 42, 1)` and int32 labels.
    """
    (x_train, y_train), (x_test, y_test) = load_mnist(path)
    for name, count, available in (
        ("train-samples", train_samples, len(x_train)),
        ("test-samples", test_samples, len(x_test)),
    ):
        if count is not None and count > available:
            raise SystemExit(
                f"Error: --{name} must be at most {available}, the number "
                f"of images in the data. Received {count}."
            )
    train = (
        distort(x_train[:train_samples], seed),
        y_train[:train_samples].astype("int32"),
    )
    test = (
        distort(x_test[:test_samples], seed + 1),
        y_test[:test_samples].astype("int32"),
    )
    return train, test


def build_model(train_steps: int) -> keras.Sequential:
    """Build and compile the ST-CNN: a spatial transformer, then a CNN.

    Args:
        train_steps: the number of training steps (batches), over which the
            learning rate decays from 1e-3 to 0 along a cosine.

    Returns:
        A compiled `keras.Sequential` mapping `(batch, 42, 42, 1)` images to
        `(batch, 10)` class probabilities. Its first layer is the
        `SpatialTransformer`, which outputs `(batch, 28, 28, 1)`.
    """
    model = keras.Sequential(
        [
            keras.Input((CANVAS, CANVAS, 1)),
            SpatialTransformer(
                output_size=(DIGIT, DIGIT), name="spatial_transformer"
            ),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(10, activation="softmax"),
        ],
        name="st_cnn",
    )
    learning_rate = keras.optimizers.schedules.CosineDecay(1e-3, train_steps)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def _positive_int(text):
    """Parse a command-line argument that must be a positive integer."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer, received {text}"
        )
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line (`sys.argv[1:]` if `argv` is `None`)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--epochs",
        type=_positive_int,
        default=4,
        help="training epochs (default: %(default)s)",
    )
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        default=32,
        help="batch size (default: %(default)s)",
    )
    parser.add_argument(
        "--train-samples",
        type=_positive_int,
        help="use the first N training images (default: all)",
    )
    parser.add_argument(
        "--test-samples",
        type=_positive_int,
        help="use the first N test images (default: all)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the data and weights (default: %(default)s)",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=Path("outputs/mnist_demo"),
        help="where to save the model, results and picture "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="MNIST .npz file, downloaded with Keras if missing "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=1,
        help="Keras verbosity: 0 silent, 1 progress bar, 2 a line an "
        "epoch (default: %(default)s)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Run the demo; return the results that it saves in `results.json`.

    Their `seconds` is the wall time of this function, from loading the data
    to saving the results.
    """
    args = parse_args(argv)
    start = time.perf_counter()
    keras.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = prepare_data(
        args.data, args.seed, args.train_samples, args.test_samples
    )
    steps_per_epoch = -(-len(x_train) // args.batch_size)
    model = build_model(args.epochs * steps_per_epoch)
    snapshots = TransformerSnapshot(
        x_test[:8], output_dir=args.output_dir / "snapshots"
    )
    model.fit(
        x_train,
        y_train,
        batch_size=args.batch_size,
        epochs=args.epochs,
        verbose=args.verbose,
        callbacks=[snapshots],
    )
    loss, accuracy = model.evaluate(
        x_test, y_test, batch_size=args.batch_size, verbose=args.verbose
    )
    args.output_dir.mkdir(parents=True, exist_ok=True)
    model.save(args.output_dir / "st_cnn.keras")
    picture = draw_transformer(
        model.get_layer("spatial_transformer"), x_test[:8], columns=4
    )
    keras.utils.save_img(
        args.output_dir / "transformer_outputs.png", picture, scale=False
    )
    results = {
        "accuracy": float(accuracy),
        "loss": float(loss),
        "epochs": args.epochs,
        "backend": keras.backend.backend(),
        "seconds": round(time.perf_counter() - start, 1),
        "train_samples": len(x_train),
        "test_samples": len(x_test),
        "seed": args.seed,
    }
    (args.output_dir / "results.json").write_text(
        json.dumps(results, indent=2) + "\n"
    )
    print(
        f"Test accuracy: {accuracy:.4f} on {len(x_test)} images "
        f"(backend {results['backend']}, {results['seconds']} s). "
        f"Saved to {args.output_dir}."
    )
    return results


if __name__ == "__main__":
    main()
