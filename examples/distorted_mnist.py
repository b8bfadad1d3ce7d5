"""Train one of the paper's classifiers on one distorted MNIST data set.

The experiment of Jaderberg et al. (2015, section 4.1, Table 1): FCN, CNN,
ST-FCN or ST-CNN (with an affine, projective or thin-plate-spline
transformer) on MNIST rotated (R), rotated, translated and scaled (RTS),
projectively (P) or elastically (E) distorted, or translated in clutter
(TC). `distortions.py` makes the data, `mnist_models.py` the nets. The
transformers of the RTS and TC nets sample a 28x28 view of their larger
canvas; the others keep the input's size (`--view-size` changes it).

Two protocols (`--protocol`): `fixed` trains on one distortion of the
training digits, drawn once from the seed; `fresh` distorts them anew each
epoch, as the paper does on the fly (`experiment.FreshEpochs`). Both test on one
distortion of the test digits, drawn from the seed + 1.

Usage (`--help` lists the options):

    KERAS_BACKEND=jax python examples/distorted_mnist.py \\
        --distortion rts --model st-cnn --transform affine --epochs 8

Outputs, in `--output-dir` (default `outputs/distorted_mnist/<distortion>_
<model>[_<transform>]`): the trained model `model.keras`; `results.json`
with the test error and the run's settings and wall time; for ST nets,
`transformer_outputs.png`: test inputs, each with the outline of the region
that the transformer samples, beside what it made of them, and the same
picture at the start and after each epoch in `snapshots/`.
"""

import argparse
import time
from pathlib import Path

import keras

from arguments import check_choice
from distortions import CANVAS_SIZES
from distortions import DISTORTIONS
from distortions import PROJECTIVE_CORNER_STD
from distortions import distort
from experiment import PROTOCOLS
from experiment import add_protocol_argument
from experiment import add_training_arguments
from experiment import cosine_adam
from experiment import positive_int
from experiment import protocol_suffix
from experiment import save_model
from experiment import save_results
from experiment import training_data
from experiment import transformer_snapshots
from mnist_data import DIGIT
from mnist_data import load_mnist
from mnist_data import take_first
from mnist_models import MODELS
from mnist_models import TRANSFORMS
from mnist_models import build_classifier

# The distortions whose transformer samples a digit-sized view of a larger
# canvas.
ZOOMED = ("rts", "cluttered")


def prepare_data(
    path: Path,
    distortion: str,
    seed: int,
    train_samples: int | None = None,
    test_samples: int | None = None,
    protocol: str = "fixed",
    corner_std: float = PROJECTIVE_CORNER_STD,
) -> tuple[tuple, tuple]:
    """Load MNIST, keep the first samples, and distort them.

    Args:
        path: the MNIST `.npz` file, as for `mnist_data.load_mnist`.
        distortion: one of `distortions.DISTORTIONS`.
        seed: the training set is distorted with `seed`, the test set with
            `seed + 1`.
        train_samples: how many training images to keep; `None` for all.
        test_samples: how many test images to keep; `None` for all.
        protocol: one of `PROTOCOLS`; under `"fresh"`, the training digits
            are left undistorted, for `experiment.FreshEpochs`.
        corner_std: the projective distortion's corner shifts, as for
            `distortions.distort`.

    Returns:
        `((x_train, y_train), (x_test, y_test))`: float32 images of shape
        `(n, size, size, 1)` (under `"fresh"`, `x_train` are the uint8
        digits `(n, 28, 28)`) and int32 labels.
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
        x_train = distort(x_train, distortion, seed, corner_std)[0]
    train = x_train, y_train.astype("int32")
    x_test = distort(x_test, distortion, seed + 1, corner_std)[0]
    test = x_test, y_test.astype("int32")
    return train, test


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line (`sys.argv[1:]` if `argv` is `None`)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--distortion",
        choices=DISTORTIONS,
        default="rts",
        help="the data set (default: %(default)s)",
    )
    parser.add_argument(
        "--model",
        choices=MODELS,
        default="st-cnn",
        help="the classifier (default: %(default)s)",
    )
    parser.add_argument(
        "--transform",
        choices=TRANSFORMS,
        default="affine",
        help="the ST nets' transform family (default: %(default)s)",
    )
    parser.add_argument(
        "--theta-scale",
        type=float,
        default=1.0,
        help="ST nets: the transformer learns this many times slower "
        "(SpatialTransformer's theta_scale; default: %(default)s)",
    )
    parser.add_argument(
        "--localization-batch-norm",
        action="store_true",
        help="ST-CNN: batch normalization after each convolution of the "
        "localization net",
    )
    parser.add_argument(
        "--corner-std",
        type=float,
        default=PROJECTIVE_CORNER_STD,
        help="P: the standard deviation of each corner's shift, in pixels "
        "(default: %(default)s, our reading of the paper)",
    )
    parser.add_argument(
        "--view-size",
        type=positive_int,
        help="the side of the ST nets' square output (default: 28 on the RTS "
        "and TC canvases, else the input's)",
    )
    parser.add_argument(
        "--antialias",
        action="store_true",
        help="ST nets: read a prefiltered input where the transformer zooms "
        "out (SpatialTransformer's antialias)",
    )
    add_protocol_argument(parser)
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=1e-3,
        help="Adam's initial learning rate, decayed to 0 along a cosine "
        "(default: %(default)s)",
    )
    add_training_arguments(parser, epochs=8, batch_size=64)
    args = parser.parse_args(argv)
    if args.output_dir is None:
        name = f"{args.distortion}_{args.model}"
        if args.model.startswith("st-"):
            name += f"_{args.transform}"
        if args.corner_std != PROJECTIVE_CORNER_STD:
            name += f"_corners{args.corner_std:g}"
        if args.view_size is not None:
            name += f"_view{args.view_size}"
        if args.antialias:
            name += "_antialias"
        name += protocol_suffix(args)
        args.output_dir = Path("outputs") / "distorted_mnist" / name
    return args


def main(argv: list[str] | None = None) -> dict:
    """Run the experiment; return the results it saves in `results.json`.

    Their `seconds` is the wall time of this function, from loading the data
    to saving the results.
    """
    args = parse_args(argv)
    start = time.perf_counter()
    keras.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = prepare_data(
        args.data,
        args.distortion,
        args.seed,
        args.train_samples,
        args.test_samples,
        args.protocol,
        args.corner_std,
    )

    def distorted(digits, seed):
        return distort(digits, args.distortion, seed, args.corner_std)[0]

    fit_data = training_data(x_train, y_train, args, distorted)
    size = CANVAS_SIZES[args.distortion]
    output_size = args.view_size or (
        DIGIT if args.distortion in ZOOMED else size
    )
    model = build_classifier(
        args.model,
        size,
        output_size,
        args.transform,
        args.theta_scale,
        args.localization_batch_norm,
        args.antialias,
    )
    model.compile(
        optimizer=cosine_adam(
            args.epochs, len(x_train), args.batch_size, args.learning_rate
        ),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    transformed = args.model.startswith("st-")
    callbacks = [transformer_snapshots(args, x_test)] if transformed else []
    model.fit(
        **fit_data,
        epochs=args.epochs,
        verbose=args.verbose,
        callbacks=callbacks,
    )
    loss, accuracy = model.evaluate(
        x_test, y_test, batch_size=args.batch_size, verbose=args.verbose
    )
    save_model(model, args.output_dir, x_test if transformed else None)
    results = {
        "distortion": args.distortion,
        "model": args.model,
        "transform": args.transform if transformed else None,
        "theta_scale": args.theta_scale if transformed else None,
        "localization_batch_norm": args.localization_batch_norm,
        "view_size": output_size,
        "antialias": args.antialias if transformed else None,
        "parameters": model.count_params(),
        "error_percent": round(100 * (1 - float(accuracy)), 2),
        "accuracy": float(accuracy),
        "loss": float(loss),
        "protocol": args.protocol,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "backend": keras.backend.backend(),
        "seconds": round(time.perf_counter() - start, 1),
        "train_samples": len(x_train),
        "test_samples": len(x_test),
        "seed": args.seed,
    }
    save_results(args.output_dir, results)
    print(
        f"Test error: {results['error_percent']}% on {len(x_test)} images "
        f"({args.distortion}, {args.model}, backend {results['backend']}, "
        f"{results['seconds']} s)."
    )
    return results


if __name__ == "__main__":
    main()
