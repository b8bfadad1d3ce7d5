"""Read whole street numbers with a CNN, an ST-CNN or a multi-ST-CNN.

The experiment of Jaderberg et al. (2015, section 4.2, Table 2): a CNN reads
a number of up to five digits from a 64x64 crop, with one softmax for the
number's length and one for each of the five digits (Goodfellow et al.,
2013). The ST-CNN puts a spatial transformer in front of it; the
multi-ST-CNN puts one in front of each of its first four convolutions, the
deeper three warping feature maps. The nets here are narrower than the
paper's, to train on a CPU, and read a 32x64 view of the 64x64 crop (a
number is a wide strip): the CNN averages row pairs, and the ST nets' first
transformer samples the 32x64 view from wherever it chooses, so zooming in on
the number buys resolution. At the identity the two views are the same.

The data: SVHN (`--svhn FOLDER`, the extracted full-number `train/` and
`test/` folders, see `street_numbers_data.load_svhn`), or, without it,
synthetic street numbers made from MNIST digits
(`street_numbers_data.synthetic_street_numbers`; `--train-samples` and
`--test-samples` then say how many to make).

Usage (`--help` lists the options):

    KERAS_BACKEND=torch python examples/street_numbers.py --model st-cnn

Outputs, in `--output-dir` (default `outputs/street_numbers/<model>`): the
trained model `model.keras`; `results.json` with the sequence accuracy (a
number counts as read when its length and all its digits are right) and the
run's settings and wall time; for ST nets, `transformer_outputs.png`: test
crops, each with the outline of what the first transformer samples, beside
its output, and the same picture at the start and after each epoch in
`snapshots/`.
"""

import argparse
import time
from pathlib import Path

import keras
import numpy as np

from keras_stn import SpatialTransformer

from arguments import check_choice
from experiment import add_training_arguments
from experiment import cosine_adam
from experiment import save_model
from experiment import save_results
from experiment import transformer_snapshots
from mnist_data import load_mnist
from mnist_data import take_first
from street_numbers_data import CANVAS
from street_numbers_data import MAX_DIGITS
from street_numbers_data import load_svhn
from street_numbers_data import synthetic_street_numbers

MODELS = ("cnn", "st-cnn", "multi-st-cnn")
# The classifier's convolutions (3x3, each followed by batch normalization,
# ReLU and 2x2 max pooling) and its fully connected layer.
FILTERS = (16, 32, 48, 64)
UNITS = 256
NUM_DIGIT_CLASSES = 11  # 0-9 and `BLANK`.
TRANSFORMED_CONVOLUTIONS = 4
# The multi-ST-CNN's transformers learn this many times slower than the rest
# of the net (`SpatialTransformer(theta_scale=...)`). At the full rate, the
# first one ran off within a few epochs: some numbers were mapped off the
# crop, to blank outputs, and the digit losses stayed near chance.
MULTI_ST_THETA_SCALE = 0.1
SYNTHETIC_TRAIN = 40000
SYNTHETIC_TEST = 4000


def output_names() -> list[str]:
    """The names of the nets' outputs: the length, then each digit.

    Returns:
        `["length", "digit_1", ..., "digit_5"]`.
    """
    return ["length"] + [f"digit_{i + 1}" for i in range(MAX_DIGITS)]


def targets(lengths: np.ndarray, digits: np.ndarray) -> dict:
    """The training targets of the nets' outputs, by output name.

    Args:
        lengths: int `(n,)`, the numbers' lengths, 1 to 5.
        digits: int `(n, 5)`, their digits, `BLANK` past the last.

    Returns:
        A dict from `output_names()` to int32 class indices `(n,)`; the
        length's classes are 0 to 4 for lengths 1 to 5.
    """
    names = output_names()
    columns = [lengths - 1] + [digits[:, i] for i in range(MAX_DIGITS)]
    return {
        name: column.astype("int32")
        for name, column in zip(names, columns, strict=True)
    }


def sequence_accuracy(
    predictions: dict, lengths: np.ndarray, digits: np.ndarray
) -> float:
    """The fraction of numbers whose length and digits are all right.

    Digits past the predicted length are not read, as in Goodfellow et al.
    (2013).

    Args:
        predictions: the nets' outputs by name, class probabilities.
        lengths: int `(n,)`, the true lengths.
        digits: int `(n, 5)`, the true digits.

    Returns:
        The sequence accuracy, in [0, 1].
    """
    length = np.argmax(predictions["length"], axis=-1) + 1
    read = np.stack(
        [np.argmax(predictions[name], -1) for name in output_names()[1:]], 1
    )
    within = np.arange(MAX_DIGITS) < lengths[:, None]
    right = np.all((read == digits) | ~within, axis=1) & (length == lengths)
    return float(np.mean(right))


def build_reader(model: str, size: int = CANVAS) -> keras.Model:
    """Build a street-number reader (uncompiled).

    The convolutions read a `(size // 2, size)` view of the input: the
    CNN's average of each pair of rows, the first transformer's output in
    the ST nets (which at the identity transform is that same average).

    Args:
        model: `"cnn"`, `"st-cnn"` (a spatial transformer on the input) or
            `"multi-st-cnn"` (one in front of each of the first four
            convolutions).
        size: the side of the square RGB input, even.

    Returns:
        A functional `keras.Model` mapping `(batch, size, size, 3)` images
        to a dict of class probabilities by `output_names()`. Its first
        transformer, if any, is named `"spatial_transformer"`.

    Example:

    >>> reader = build_reader("st-cnn", size=32)
    >>> outputs = reader(np.zeros((1, 32, 32, 3)))
    >>> tuple(outputs["length"].shape), tuple(outputs["digit_1"].shape)
    ((1, 5), (1, 11))
    """
    check_choice(model, "model", MODELS)
    inputs = keras.Input((size, size, 3))
    view = (size // 2, size)
    if model == "cnn":
        x = keras.layers.AveragePooling2D((2, 1))(inputs)
    elif model == "st-cnn":
        x = SpatialTransformer(
            _convolutional_localization_net(),
            output_size=view,
            name="spatial_transformer",
        )(inputs)
    else:
        x = inputs
    for index, filters in enumerate(FILTERS):
        if model == "multi-st-cnn" and index < TRANSFORMED_CONVOLUTIONS:
            name = "spatial_transformer" + (f"_{index}" if index else "")
            x = SpatialTransformer(
                _dense_localization_net(),
                output_size=None if index else view,
                theta_scale=MULTI_ST_THETA_SCALE,
                name=name,
            )(x)
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(UNITS, activation="relu")(x)
    outputs = {
        "length": keras.layers.Dense(
            MAX_DIGITS, activation="softmax", name="length"
        )(x)
    }
    for name in output_names()[1:]:
        outputs[name] = keras.layers.Dense(
            NUM_DIGIT_CLASSES, activation="softmax", name=name
        )(x)
    return keras.Model(inputs, outputs, name=model.replace("-", "_"))


def _convolutional_localization_net():
    """The single transformer's localization net: a small CNN."""
    return keras.Sequential(
        [
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(20, 5, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(20, 5, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(50, activation="relu"),
        ],
        name="localization_net",
    )


def _dense_localization_net():
    """A multi-ST localization net: 2x2 pooling, 2 layers of 32 units."""
    return keras.Sequential(
        [
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(32, activation="relu"),
        ],
        name="localization_net",
    )


def prepare_data(args: argparse.Namespace) -> tuple[tuple, tuple]:
    """Load SVHN from `args.svhn`, or make synthetic numbers from MNIST.

    SVHN's splits are cut to `args.train_samples` and `args.test_samples`.
    Synthetic sets have that many numbers (by default `SYNTHETIC_TRAIN`
    and `SYNTHETIC_TEST`): the training set made from the MNIST training
    digits with `args.seed`, the test set from the MNIST test digits with
    `args.seed + 1`.

    Args:
        args: the parsed command line.

    Returns:
        `((x_train, lengths, digits), (x_test, lengths, digits))`: float32
        images of shape `(n, 64, 64, 3)`, each scaled by `standardize`,
        and their labels.
    """
    if args.svhn is not None:
        train, test = (
            load_svhn(args.svhn, split) for split in ("train", "test")
        )
        train = take_first(train, args.train_samples, "--train-samples")
        test = take_first(test, args.test_samples, "--test-samples")
    else:
        (x_train, y_train), (x_test, y_test) = load_mnist(args.data)
        train = synthetic_street_numbers(
            x_train, y_train, args.train_samples or SYNTHETIC_TRAIN, args.seed
        )[:3]
        test = synthetic_street_numbers(
            x_test, y_test, args.test_samples or SYNTHETIC_TEST, args.seed + 1
        )[:3]
    return tuple(
        (standardize(images), *labels) for images, *labels in (train, test)
    )


def standardize(images: np.ndarray) -> np.ndarray:
    """Scale each image to zero mean and unit variance over its pixels.

    Numbers come in every colour on every background; this removes the
    brightness and contrast of each image, as Goodfellow et al. (2013)
    subtract each image's mean.

    Args:
        images: `(n, height, width, channels)`, any real dtype.

    Returns:
        float32 images of the same shape.
    """
    images = np.asarray(images, "float32")
    mean = images.mean(axis=(1, 2, 3), keepdims=True)
    std = images.std(axis=(1, 2, 3), keepdims=True)
    return (images - mean) / np.maximum(std, 1e-6)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line (`sys.argv[1:]` if `argv` is `None`)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model",
        choices=MODELS,
        default="st-cnn",
        help="the reader (default: %(default)s)",
    )
    parser.add_argument(
        "--svhn",
        type=Path,
        help="folder with SVHN's extracted train/ and test/ folders "
        "(default: synthetic numbers made from MNIST digits)",
    )
    add_training_arguments(parser, epochs=10, batch_size=64)
    args = parser.parse_args(argv)
    if args.output_dir is None:
        args.output_dir = Path("outputs") / "street_numbers" / args.model
    return args


def main(argv: list[str] | None = None) -> dict:
    """Run the experiment; return the results it saves in `results.json`.

    Their `seconds` is the wall time of this function, from loading the data
    to saving the results.
    """
    args = parse_args(argv)
    start = time.perf_counter()
    keras.utils.set_random_seed(args.seed)
    (x_train, *train_labels), (x_test, *test_labels) = prepare_data(args)
    model = build_reader(args.model)
    model.compile(
        optimizer=cosine_adam(args.epochs, len(x_train), args.batch_size),
        loss=dict.fromkeys(output_names(), "sparse_categorical_crossentropy"),
    )
    transformed = args.model != "cnn"
    callbacks = [transformer_snapshots(args, x_test)] if transformed else []
    model.fit(
        x_train,
        targets(*train_labels),
        batch_size=args.batch_size,
        epochs=args.epochs,
        verbose=args.verbose,
        callbacks=callbacks,
    )
    predictions = model.predict(
        x_test, batch_size=args.batch_size, verbose=args.verbose
    )
    accuracy = sequence_accuracy(predictions, *test_labels)
    save_model(model, args.output_dir, x_test if transformed else None)
    results = {
        "model": args.model,
        "data": str(args.svhn) if args.svhn else "synthetic",
        "parameters": model.count_params(),
        "sequence_accuracy": accuracy,
        "sequence_error_percent": round(100 * (1 - accuracy), 2),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "backend": keras.backend.backend(),
        "seconds": round(time.perf_counter() - start, 1),
        "train_samples": len(x_train),
        "test_samples": len(x_test),
        "seed": args.seed,
    }
    save_results(args.output_dir, results)
    print(
        f"Sequence accuracy: {accuracy:.4f} on {len(x_test)} numbers "
        f"({args.model}, backend {results['backend']}, "
        f"{results['seconds']} s)."
    )
    return results


if __name__ == "__main__":
    main()
