"""Train one of the paper's classifiers on MNIST addition.

The experiment of Jaderberg et al. (2015, appendix, MNIST addition): the
input holds two digits, each independently rotated, scaled and translated
on its own channel of a 42x42 image (`mnist_addition_data.py`); the net
outputs their sum (19 classes). The nets, all but the CNN with about the
parameter count of the affine 2xST-FCN, as in the paper:

- FCN: two fully connected layers, softmax (`mnist_models.dense_head`).
- CNN: two 5x5 convolutions of 32 filters with 2x2 max pooling, softmax
  (`mnist_models.convolutional_head`, the distorted-MNIST ST-CNN's head).
  A seventh of the others' parameters: matching them takes 112 filters,
  about 50 times the FCN-based nets' training time on a CPU.
- ST-FCN: a transformer (localization net: 3 fully connected layers of 32)
  sampling a 28x28 view of both channels, then an FCN.
- 2xST-FCN: two transformers in parallel, each reading both channels and
  sampling a 28x28 view of both; their four output channels are
  concatenated before the FCN. As in the paper, each is a
  `SpatialTransformer` of its own, with its own localization net, and
  neither is told which digit to follow.

Whether the two transformers specialize is measured on the test pairs
(`window_correlations`): for each transformer and channel, the correlation
between where the transformer looks (the input point that the centre of
its output samples) and where that channel's digit is.

`--protocol fresh` keeps the training pairs (which two digits each holds)
and distorts them anew each epoch (`experiment.FreshEpochs`), so that the
nets cannot learn the pairs' pictures by heart.

Usage (`--help` lists the options):

    KERAS_BACKEND=torch python examples/mnist_addition.py \\
        --model 2xst-fcn --transform affine --epochs 10

Outputs, in `--output-dir` (default `outputs/mnist_addition/<model>
[_<transform>]`): `model.keras`; `results.json` with the test error, the
correlations, the run's settings and wall time; for ST nets,
`transformer_outputs.png` (`draw_transformers`): test inputs (channel 0 in
magenta, channel 1 in cyan) with the outline of what each transformer
samples, beside its output, a block a transformer, and the first
transformer's picture at the start and after each epoch in `snapshots/`.
"""

import argparse
import time
from pathlib import Path

import keras
import numpy as np

from keras_stn import SpatialTransformer
from keras_stn.callbacks import draw_transformer

from arguments import check_choice
from distortions import CANVAS_SIZES
from experiment import PICTURE_SAMPLES
from experiment import TRANSFORMER_NAME
from experiment import add_protocol_argument
from experiment import add_training_arguments
from experiment import cosine_adam
from experiment import positive_int
from experiment import protocol_suffix
from experiment import save_model
from experiment import save_results
from experiment import training_data
from experiment import transformer_snapshots
from mnist_addition_data import CHANNELS
from mnist_addition_data import NUM_CLASSES
from mnist_addition_data import distort_pairs
from mnist_addition_data import prepare_data
from mnist_data import DIGIT
from mnist_models import ST_CNN_WIDTH
from mnist_models import ST_FCN_WIDTH
from mnist_models import TRANSFORMS
from mnist_models import closest_width
from mnist_models import convolutional_head
from mnist_models import count_parameters
from mnist_models import dense_head
from mnist_models import dense_localization_net

MODELS = ("fcn", "cnn", "st-fcn", "2xst-fcn")
CANVAS = CANVAS_SIZES["rts"]
INPUT_SHAPE = (CANVAS, CANVAS, CHANNELS)
# Jaderberg et al. (2015), MNIST addition: test error (%); the 2xST-FCN's
# figure is the thin-plate-spline one.
# White rows between the transformers' pictures.
GAP = 6
PAPER_ERRORS = {"fcn": 47.7, "cnn": 14.7, "st-fcn": 18.5, "2xst-fcn": 5.8}


def build_model(
    model: str,
    transform: str = "affine",
    theta_scale: float = 1.0,
    view_size: int = DIGIT,
) -> keras.Sequential:
    """Build one of the MNIST addition nets (uncompiled).

    The 2xST-FCN's head has `mnist_models.ST_FCN_WIDTH` units a layer, the
    CNN's `mnist_models.ST_CNN_WIDTH` filters; the FCN's and ST-FCN's width
    is chosen so that their parameter count is closest to the affine
    2xST-FCN's.

    Args:
        model: one of `MODELS`.
        transform: the ST nets' transform family, one of
            `mnist_models.TRANSFORMS`. Ignored by the plain nets.
        theta_scale: the ST nets' `SpatialTransformer(theta_scale=...)`.
        view_size: the side of the ST nets' square output. The plain nets
            are sized to match the 2xST-FCN with this view.

    Returns:
        A `keras.Sequential` mapping `(batch, 42, 42, 2)` inputs to
        `(batch, 19)` probabilities of the sums. The ST nets' first layer
        is the `SpatialTransformer`, named `"spatial_transformer"`, whose
        output has 2 channels a transformer.

    Example:

    >>> fcn = build_model("fcn")
    >>> two_st = build_model("2xst-fcn")
    >>> abs(fcn.count_params() / two_st.count_params() - 1) < 0.01
    True
    """
    check_choice(model, "model", MODELS)
    check_choice(transform, "transform", TRANSFORMS)
    if model == "2xst-fcn":
        return _st_net(
            model, 2, transform, ST_FCN_WIDTH, theta_scale, view_size
        )
    target = _st_count(2, "affine", ST_FCN_WIDTH, view_size)
    if model == "st-fcn":
        width = closest_width(
            lambda w: _st_count(1, "affine", w, view_size), target
        )
        return _st_net(model, 1, transform, width, theta_scale, view_size)
    if model == "cnn":
        head = convolutional_head(ST_CNN_WIDTH, NUM_CLASSES)
    else:
        width = closest_width(
            lambda w: count_parameters(
                dense_head(w, NUM_CLASSES), (None, *INPUT_SHAPE)
            ),
            target,
        )
        head = dense_head(width, NUM_CLASSES)
    return keras.Sequential([keras.Input(INPUT_SHAPE), *head], name=model)


def transformer_layers(model: keras.Model) -> list[SpatialTransformer]:
    """The spatial transformers of a net, in order.

    Args:
        model: one of the nets of `build_model`.

    Returns:
        Its `SpatialTransformer` layers: none for the plain nets, one for
        the ST-FCN, two for the 2xST-FCN (named `"spatial_transformer"` and
        `"spatial_transformer_2"`).
    """
    return [
        layer for layer in model.layers if isinstance(layer, SpatialTransformer)
    ]


def _transformer(transform, theta_scale, view_size, index=1):
    return SpatialTransformer(
        dense_localization_net(),
        transform=transform,
        output_size=(view_size, view_size),
        theta_scale=theta_scale,
        name=TRANSFORMER_NAME + (f"_{index}" if index > 1 else ""),
    )


def _st_count(num_transformers, transform, width, view_size):
    """The parameter count of an ST net whose head has `width` units."""
    transformer = _transformer(transform, 1.0, view_size)
    transformer.build((None, *INPUT_SHAPE))
    channels = num_transformers * CHANNELS
    head = dense_head(width, NUM_CLASSES)
    return num_transformers * transformer.count_params() + count_parameters(
        head, (None, view_size, view_size, channels)
    )


def _st_net(model, num_transformers, transform, width, theta_scale, view):
    inputs = keras.Input(INPUT_SHAPE)
    views = [
        _transformer(transform, theta_scale, view, index)(inputs)
        for index in range(1, num_transformers + 1)
    ]
    outputs = views[0] if len(views) == 1 else keras.layers.Concatenate()(views)
    for layer in dense_head(width, NUM_CLASSES):
        outputs = layer(outputs)
    return keras.Model(inputs, outputs, name=model)


def window_correlations(
    layers: list[SpatialTransformer], images: np.ndarray, shifts: np.ndarray
) -> np.ndarray:
    """How closely each transformer's view follows each channel's digit.

    A transformer looks at the input point that the centre of its output
    samples (`map_points` of the output's centre). For each transformer and
    channel, this is the Pearson correlation, across the examples, between
    that point and the centre of the channel's digit, averaged over the two
    axes. The digits' positions on the two channels are independent, so a
    transformer that follows one digit correlates with it and not with the
    other; one that looks between them correlates with both, about
    equally; one whose view does not move correlates with neither (0).

    Args:
        layers: built `SpatialTransformer`s on 42x42 two-channel inputs,
            of one transformer each.
        images: their inputs, `(n, 42, 42, 2)`.
        shifts: `(n, 2, 2)`: for each example and channel, the digit
            centre's `(row, col)` offset from the canvas centre, as
            `distortions.distort` draws it.

    Returns:
        `(len(layers), 2)`: one row a transformer, one column a channel.
    """
    centres = np.zeros((len(images), 1, 2), "float32")
    # The digits' offsets as `(x, y)`, as the points are.
    digits = np.asarray(shifts)[..., ::-1]
    correlations = np.zeros((len(layers), CHANNELS))
    for row, layer in enumerate(layers):
        looks = keras.ops.convert_to_numpy(layer.map_points(images, centres))
        for channel in range(CHANNELS):
            correlations[row, channel] = np.mean(
                [
                    _pearson(looks[:, 0, axis], digits[:, channel, axis])
                    for axis in range(2)
                ]
            )
    return correlations


def draw_transformers(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """Draw what each transformer of a net makes of some inputs.

    Args:
        model: an ST net of `build_model`.
        images: inputs `(n, 42, 42, 2)`.

    Returns:
        An RGB picture, `uint8` `(height, width, 3)`: for each transformer
        in turn, a block of the inputs (channel 0 in magenta, channel 1 in
        cyan) with the outline of what it samples, beside its output,
        `keras_stn.callbacks.draw_transformer`'s picture, four examples a
        row.
    """
    pictures = [
        draw_transformer(layer, images, columns=4)
        for layer in transformer_layers(model)
    ]
    gap = np.full((GAP, *pictures[0].shape[1:]), 255, "uint8")
    blocks = [pictures[0]]
    for picture in pictures[1:]:
        blocks += [gap, picture]
    return np.concatenate(blocks, axis=0)


def _pearson(a, b):
    """The correlation of `a` and `b`; 0 where either is constant."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line (`sys.argv[1:]` if `argv` is `None`)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model",
        choices=MODELS,
        default="2xst-fcn",
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
        help="ST nets: the transformers learn this many times slower "
        "(SpatialTransformer's theta_scale; default: %(default)s)",
    )
    parser.add_argument(
        "--view-size",
        type=positive_int,
        default=DIGIT,
        help="the side of the ST nets' square output (default: %(default)s)",
    )
    add_protocol_argument(parser)
    add_training_arguments(parser, epochs=10, batch_size=64)
    args = parser.parse_args(argv)
    if args.output_dir is None:
        name = args.model
        if "st-" in args.model:
            name += f"_{args.transform}"
        if args.view_size != DIGIT:
            name += f"_view{args.view_size}"
        name += protocol_suffix(args)
        args.output_dir = Path("outputs") / "mnist_addition" / name
    return args


def main(argv: list[str] | None = None) -> dict:
    """Run the experiment; return the results it saves in `results.json`.

    Their `seconds` is the wall time of this function, from making the data
    to saving the results. The training pairs are drawn with `--seed`, the
    test pairs always with `mnist_addition_data.TEST_SEED`;
    `--train-samples` and `--test-samples` are numbers of pairs (default:
    as many as the split's digits).
    """
    args = parse_args(argv)
    start = time.perf_counter()
    keras.utils.set_random_seed(args.seed)
    train, test = prepare_data(
        args.data,
        args.seed,
        args.train_samples,
        args.test_samples,
        args.protocol,
    )
    # Under `--protocol fresh`, the same pairs of digits, distorted anew
    # each epoch.
    fit_data = training_data(train.images, train.sums, args, distort_pairs)
    model = build_model(
        args.model, args.transform, args.theta_scale, args.view_size
    )
    model.compile(
        optimizer=cosine_adam(args.epochs, len(train.sums), args.batch_size),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    transformed = "st-" in args.model
    callbacks = (
        [transformer_snapshots(args, test.images)] if transformed else []
    )
    model.fit(
        **fit_data,
        epochs=args.epochs,
        verbose=args.verbose,
        callbacks=callbacks,
    )
    loss, accuracy = model.evaluate(
        test.images, test.sums, batch_size=args.batch_size, verbose=args.verbose
    )
    save_model(model, args.output_dir)
    correlations = None
    if transformed:
        picture = draw_transformers(model, test.images[:PICTURE_SAMPLES])
        keras.utils.save_img(
            args.output_dir / "transformer_outputs.png", picture, scale=False
        )
        shifts = np.stack([p["shift"] for p in test.parameters], axis=1)
        correlations = window_correlations(
            transformer_layers(model), test.images, shifts
        )
    results = {
        "experiment": "mnist_addition",
        "model": args.model,
        "transform": args.transform if transformed else None,
        "theta_scale": args.theta_scale if transformed else None,
        "view_size": args.view_size,
        "parameters": model.count_params(),
        "error_percent": round(100 * (1 - float(accuracy)), 2),
        "paper_error_percent": PAPER_ERRORS[args.model],
        "accuracy": float(accuracy),
        "loss": float(loss),
        # One row a transformer, one column an input channel.
        "window_digit_correlation": (
            np.round(correlations, 3).tolist() if transformed else None
        ),
        "protocol": args.protocol,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "backend": keras.backend.backend(),
        "seconds": round(time.perf_counter() - start, 1),
        "train_samples": len(train.sums),
        "test_samples": len(test.sums),
        "seed": args.seed,
    }
    save_results(args.output_dir, results)
    print(
        f"Test error: {results['error_percent']}% on {len(test.sums)} pairs "
        f"({args.model}, {model.count_params():,} parameters, backend "
        f"{results['backend']}, {results['seconds']} s)."
    )
    if transformed:
        for index, row in enumerate(correlations):
            print(
                f"Transformer {index + 1}: its view follows channel 0's digit "
                f"with correlation {row[0]:.2f}, channel 1's with {row[1]:.2f}."
            )
    return results


if __name__ == "__main__":
    main()
