"""The PyTorch "Spatial Transformer Networks" tutorial, ported to Keras.

The net of the tutorial
(https://pytorch.org/tutorials/intermediate/spatial_transformer_tutorial.html)
as a Keras user writes it: Keras' default initializers, the tutorial's
localization net given to `keras_stn.SpatialTransformer` (with its default
options), then the tutorial's small CNN, trained with SGD (learning rate
0.01, batches of 64) on MNIST normalized with mean 0.1307 and standard
deviation 0.3081. It prints the test accuracy and where the transformer
samples: the largest translation of `theta` (1 is the input's edge), the
range of the singular values of its linear part (1 at the identity, above 1
zooms out), and the fraction of test images whose output is nearly blank.
`pytorch_tutorial_reference.py` is the same in pure PyTorch; `--compare`
also runs it.

Usage (`--help` lists the options):

    KERAS_BACKEND=torch python examples/pytorch_tutorial.py --seed 0 --compare
"""

import argparse
import time

import keras
import numpy as np
from keras import layers

import keras_stn

from experiment import add_data_arguments
from experiment import positive_int
from mnist_data import load_mnist
from mnist_data import take_first

MEAN = 0.1307
STD = 0.3081
TRANSFORMER_NAME = "spatial_transformer"


def localization_net() -> keras.Sequential:
    """The tutorial's localization net: two convolutions and a dense layer.

    Returns:
        A `keras.Sequential` mapping `(batch, 28, 28, 1)` to `(batch, 32)`
        features, from which `SpatialTransformer` regresses `theta`.
    """
    return keras.Sequential(
        [
            layers.Conv2D(8, 7),
            layers.MaxPooling2D(2),
            layers.ReLU(),
            layers.Conv2D(10, 5),
            layers.MaxPooling2D(2),
            layers.ReLU(),
            layers.Flatten(),
            layers.Dense(32, activation="relu"),
        ],
        name="localization_net",
    )


def build_model(
    transformer: keras_stn.SpatialTransformer | None = None,
) -> keras.Sequential:
    """The tutorial's classifier: a spatial transformer, then a small CNN.

    Args:
        transformer: the transformer layer; `None` for
            `SpatialTransformer(localization_net=localization_net())`.

    Returns:
        An uncompiled `keras.Sequential` mapping normalized images
        `(batch, 28, 28, 1)` to the probabilities of the 10 digits.
    """
    if transformer is None:
        transformer = keras_stn.SpatialTransformer(
            localization_net=localization_net(), name=TRANSFORMER_NAME
        )
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            transformer,
            layers.Conv2D(10, 5),
            layers.MaxPooling2D(2),
            layers.ReLU(),
            layers.Conv2D(20, 5),
            layers.SpatialDropout2D(0.5),
            layers.MaxPooling2D(2),
            layers.ReLU(),
            layers.Flatten(),
            layers.Dense(50, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(10, activation="softmax"),
        ]
    )


def normalize(images: np.ndarray) -> np.ndarray:
    """uint8 images `(n, 28, 28)` to normalized float32 `(n, 28, 28, 1)`."""
    return ((images.astype("float32") / 255.0 - MEAN) / STD)[..., None]


def theta_statistics(
    transformer: keras_stn.SpatialTransformer,
    images: np.ndarray,
    batch_size: int = 1000,
) -> dict:
    """Where the transformer samples the test images, and what it sees.

    Args:
        transformer: the trained affine transformer.
        images: uint8 images `(n, 28, 28)`.
        batch_size: images per call.

    Returns:
        A dict with `max_translation` (the largest translation of `theta`,
        in normalized coordinates: 1 is the input's edge),
        `min_singular_value` and `max_singular_value` (of the linear parts
        of `theta`), and `blank_fraction`: the fraction of images that the
        transform of their normalized version sends to no pixel brighter
        than 0.5 (on a 0-1 scale).
    """
    thetas, brightest = [], []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        theta = transformer.compute_theta(normalize(batch))
        raw = batch[..., None].astype("float32") / 255.0
        warped = keras.ops.convert_to_numpy(transformer.warp(raw, theta))
        thetas.append(keras.ops.convert_to_numpy(theta))
        brightest.append(warped.max(axis=(1, 2, 3)))
    theta = np.concatenate(thetas)
    singular_values = np.linalg.svd(theta[:, :, :2], compute_uv=False)
    return {
        "max_translation": float(np.abs(theta[:, :, 2]).max()),
        "min_singular_value": float(singular_values.min()),
        "max_singular_value": float(singular_values.max()),
        "blank_fraction": float(np.mean(np.concatenate(brightest) < 0.5)),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line (`sys.argv[1:]` if `argv` is `None`)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the weights, dropout and shuffling "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--epochs",
        type=positive_int,
        default=1,
        help="training epochs (default: %(default)s)",
    )
    parser.add_argument(
        "--train-images",
        type=positive_int,
        help="use the first N training images (default: all)",
    )
    parser.add_argument(
        "--test-images",
        type=positive_int,
        help="test on the first N test images (default: all)",
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="also train pytorch_tutorial_reference.py's pure-PyTorch net "
        "(needs PyTorch) and print both accuracies",
    )
    add_data_arguments(parser, verbose=2)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Train and test the Keras port; return its results.

    Returns:
        A dict with the test `accuracy`, `theta_statistics`' entries,
        `seconds` (wall time of the Keras run), the settings and, with
        `--compare`, `reference_accuracy`.
    """
    args = parse_args(argv)
    start = time.perf_counter()
    keras.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = load_mnist(args.data)
    x_train, y_train = take_first(
        (x_train, y_train), args.train_images, "--train-images"
    )
    x_test, y_test = take_first(
        (x_test, y_test), args.test_images, "--test-images"
    )
    model = build_model()
    model.compile(
        keras.optimizers.SGD(0.01),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(
        normalize(x_train),
        y_train,
        batch_size=64,
        epochs=args.epochs,
        shuffle=True,
        verbose=args.verbose,
    )
    _, accuracy = model.evaluate(
        normalize(x_test), y_test, batch_size=1000, verbose=0
    )
    transformer = model.get_layer(TRANSFORMER_NAME)
    results = {
        "accuracy": float(accuracy),
        **theta_statistics(transformer, x_test),
        "seconds": round(time.perf_counter() - start, 1),
        "backend": keras.backend.backend(),
        "epochs": args.epochs,
        "train_images": len(x_train),
        "seed": args.seed,
    }
    print(
        f"Keras ({results['backend']}): test accuracy "
        f"{100 * results['accuracy']:.1f}% on {len(x_test)} images after "
        f"{args.epochs} epoch(s) on {len(x_train)} images (seed {args.seed}, "
        f"{results['seconds']} s).\n"
        f"theta on the test images: max |translation| "
        f"{results['max_translation']:.2f}, singular values "
        f"{results['min_singular_value']:.2f} to "
        f"{results['max_singular_value']:.2f}, "
        f"{100 * results['blank_fraction']:.1f}% nearly blank outputs."
    )
    if args.compare:
        import pytorch_tutorial_reference

        reference = pytorch_tutorial_reference.main(
            [f"--seed={args.seed}", f"--epochs={args.epochs}"]
            + [f"--data={args.data}"]
            + [f"--train-images={len(x_train)}"]
        )
        results["reference_accuracy"] = reference["accuracy"]
        print(
            f"Test accuracy: Keras {100 * results['accuracy']:.1f}%, "
            f"PyTorch reference {100 * reference['accuracy']:.1f}%."
        )
    return results


if __name__ == "__main__":
    main()
