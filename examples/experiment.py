"""What the example scripts share: command-line options and results files."""

import argparse
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import keras
import numpy as np

from keras_stn.callbacks import TransformerSnapshot
from keras_stn.callbacks import draw_transformer

from mnist_data import DEFAULT_DATA

# The experiments' nets name their (first) transformer so, and the pictures
# show it on this many test inputs.
TRANSFORMER_NAME = "spatial_transformer"
PICTURE_SAMPLES = 8
# `--protocol`: `fixed` makes the training inputs once, `fresh` anew each
# epoch (`FreshEpochs`).
PROTOCOLS = ("fixed", "fresh")


def positive_int(text: str) -> int:
    """Parse a command-line argument that must be a positive integer.

    Args:
        text: the argument as typed.

    Returns:
        Its value.

    Raises:
        argparse.ArgumentTypeError: if it is not a positive integer.
    """
    return _int_at_least(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """Parse a command-line argument that must be an integer, 0 or more.

    Args:
        text: the argument as typed.

    Returns:
        Its value.

    Raises:
        argparse.ArgumentTypeError: if it is not an integer of 0 or more.
    """
    return _int_at_least(text, 0, "an integer of 0 or more")


def _int_at_least(text, low, expected):
    value = int(text)
    if value < low:
        raise argparse.ArgumentTypeError(
            f"expected {expected}, received {text}"
        )
    return value


def add_training_arguments(
    parser: argparse.ArgumentParser, epochs: int, batch_size: int
) -> None:
    """Add the options of the classification experiments.

    They are `--epochs`, `--batch-size`, `--train-samples`,
    `--test-samples`, those of `add_run_arguments` and `--log-dir`.

    Args:
        parser: the script's parser.
        epochs: the default number of epochs.
        batch_size: the default batch size.
    """
    parser.add_argument(
        "--epochs",
        type=positive_int,
        default=epochs,
        help="training epochs (default: %(default)s)",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=batch_size,
        help="batch size (default: %(default)s)",
    )
    parser.add_argument(
        "--train-samples",
        type=positive_int,
        help="use the first N training images (default: all)",
    )
    parser.add_argument(
        "--test-samples",
        type=positive_int,
        help="use the first N test images (default: all)",
    )
    add_run_arguments(parser)
    parser.add_argument(
        "--log-dir",
        type=Path,
        help="also write TensorBoard logs here: the transformer pictures "
        "(the 3-D experiment: the training curves)",
    )


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of every experiment's run: seed, outputs and data.

    They are `--seed`, `--output-dir` (no default: `None`) and those of
    `add_data_arguments`.

    Args:
        parser: the script's parser.
    """
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the data and weights (default: %(default)s)",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        help="where to save the model, results and pictures",
    )
    add_data_arguments(parser)


def add_data_arguments(
    parser: argparse.ArgumentParser, verbose: int = 1
) -> None:
    """Add `--data` (the MNIST file) and `--verbose` (Keras' verbosity).

    Args:
        parser: the script's parser.
        verbose: the default verbosity.
    """
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
        default=verbose,
        help="Keras verbosity: 0 silent, 1 progress bar, 2 a line an "
        "epoch (default: %(default)s)",
    )


def add_protocol_argument(parser: argparse.ArgumentParser) -> None:
    """Add `--protocol`, one of `PROTOCOLS` (default `"fixed"`).

    Args:
        parser: the script's parser.
    """
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="fixed",
        help="fixed: the training inputs are made once for the whole run; "
        "fresh: anew each epoch (default: %(default)s)",
    )


def protocol_suffix(args: argparse.Namespace) -> str:
    """What a run's default output folder adds for its `--protocol`:
    `"_fresh"`, or nothing for `"fixed"` (the runs made before the option).

    Example:

    >>> protocol_suffix(argparse.Namespace(protocol="fresh"))
    '_fresh'
    """
    return "_fresh" if args.protocol == "fresh" else ""


class FreshEpochs(keras.utils.PyDataset):
    """Training batches made anew each epoch from the same digits.

    Epoch `e` makes the inputs with a seed drawn from `(seed, e)` and
    visits the digits in an order drawn from the same seed, so that the
    sequence of epochs depends only on the digits, `make` and `seed`.
    Batch `i` is batch `i % steps_per_epoch` of epoch `i //
    steps_per_epoch`: what it holds depends on its index only, not on when
    Keras calls the epoch callbacks, so `fit` takes `**fit_arguments()`.
    While an epoch trains, a background thread makes the next one, up to
    `epochs`.

    Args:
        digits: uint8 digits `(n, 28, 28)`.
        labels: their labels, `(n,)`.
        make: `make(digits, seed)` returns the inputs that `digits` make
            with the random draws of `seed`, one per digit, in order (for
            example the digits distorted).
        seed: seed of the epochs.
        batch_size: the batch size; each epoch's last batch may be smaller.
        epochs: the number of epochs that `fit` trains, past which no epoch
            is made; `None` for no end.

    Example:

    >>> digits, labels = np.zeros((5, 28, 28), "uint8"), np.arange(5)
    >>> def shifted(images, seed):
    ...     return np.roll(images, seed % 28, axis=2)[..., None] / 255.0
    >>> batches = FreshEpochs(digits, labels, shifted, seed=0, batch_size=2)
    >>> batches.steps_per_epoch, batches[3][0].shape  # epoch 1, batch 0
    (3, (2, 28, 28, 1))
    """

    def __init__(
        self,
        digits: np.ndarray,
        labels: np.ndarray,
        make: Callable[[np.ndarray, int], np.ndarray],
        seed: int,
        batch_size: int,
        epochs: int | None = None,
    ):
        super().__init__()
        self.digits, self.labels = digits, labels
        self.make, self.seed = make, seed
        self.batch_size, self.epochs = batch_size, epochs
        self.steps_per_epoch = -(-len(digits) // batch_size)
        self.epoch = 0
        self._executor = ThreadPoolExecutor(max_workers=1)
        self._inputs, self._batch_labels = self.draw(0)
        self._next = self._prefetch(1)

    def draw(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """Make and shuffle the training set of one epoch.

        Args:
            epoch: the epoch, from 0.

        Returns:
            `(inputs, labels)`: what `make` returns for the digits, and
            their labels, in the epoch's order.
        """
        sequence = np.random.SeedSequence((self.seed, epoch))
        epoch_seed = int(sequence.generate_state(1)[0])
        order = np.random.default_rng(epoch_seed).permutation(len(self.digits))
        return self.make(self.digits[order], epoch_seed), self.labels[order]

    def _prefetch(self, epoch):
        """Start making `epoch` in the background; `None` past the last."""
        if self.epochs is not None and epoch >= self.epochs:
            return None
        return self._executor.submit(self.draw, epoch)

    def fit_arguments(self) -> dict:
        """`fit`'s arguments for these batches: `x`, `steps_per_epoch` and
        `shuffle=False` (the batches come shuffled, epoch by epoch)."""
        return {
            "x": self,
            "steps_per_epoch": self.steps_per_epoch,
            "shuffle": False,
        }

    @property
    def num_batches(self) -> None:
        return None

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        epoch, step = divmod(index, self.steps_per_epoch)
        if epoch < self.epoch:
            raise IndexError(
                f"Batch {index} is from epoch {epoch}, whose inputs are "
                f"gone: the dataset is at epoch {self.epoch}."
            )
        if self.epochs is not None and epoch >= self.epochs:
            raise IndexError(
                f"Batch {index} is from epoch {epoch}, past the "
                f"{self.epochs} epochs of these batches."
            )
        while self.epoch < epoch:
            self.epoch += 1
            self._inputs, self._batch_labels = self._next.result()
            self._next = self._prefetch(self.epoch + 1)
        batch = slice(step * self.batch_size, (step + 1) * self.batch_size)
        return self._inputs[batch], self._batch_labels[batch]


def training_data(
    images: np.ndarray,
    labels: np.ndarray,
    args: argparse.Namespace,
    make: Callable[[np.ndarray, int], np.ndarray],
    seed: int | None = None,
    epochs: int | None = None,
) -> dict:
    """`fit`'s training arguments under the run's `--protocol`.

    Args:
        images: the training inputs under `"fixed"`; the digits that
            `make` takes under `"fresh"`.
        labels: their labels.
        args: the parsed command line (`--protocol`, `--seed`,
            `--batch-size`, `--epochs`).
        make: what `FreshEpochs` makes each epoch's inputs with.
        seed: the seed of `FreshEpochs`; `None` for `--seed`.
        epochs: the epochs that `fit` trains on these data; `None` for
            `--epochs`.

    Returns:
        A dict of `fit` arguments: `x`, `y` and `batch_size` of the arrays
        under `"fixed"`; `FreshEpochs.fit_arguments` under `"fresh"`.
    """
    if args.protocol == "fresh":
        batches = FreshEpochs(
            images,
            labels,
            make,
            args.seed if seed is None else seed,
            args.batch_size,
            args.epochs if epochs is None else epochs,
        )
        return batches.fit_arguments()
    return {"x": images, "y": labels, "batch_size": args.batch_size}


def cosine_adam(
    epochs: int,
    train_samples: int,
    batch_size: int,
    learning_rate: float = 1e-3,
) -> keras.optimizers.Adam:
    """Adam whose learning rate decays to 0 along a cosine.

    It starts at `learning_rate`; the decay spans the run's training
    steps: `epochs` times the batches that `train_samples` make, the last
    one possibly smaller.

    Args:
        epochs: the run's epochs.
        train_samples: the number of training samples.
        batch_size: the batch size.
        learning_rate: the initial learning rate.

    Returns:
        The optimizer.
    """
    steps = epochs * -(-train_samples // batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, steps)
    return keras.optimizers.Adam(schedule)


def transformer_snapshots(
    args: argparse.Namespace, images
) -> TransformerSnapshot:
    """The callback that draws the transformer during training.

    Args:
        args: the parsed command line, for `--output-dir` and `--log-dir`.
        images: test inputs; the first `PICTURE_SAMPLES` are drawn.

    Returns:
        A `TransformerSnapshot` of the layer `TRANSFORMER_NAME`, writing
        PNGs to `snapshots/` in the output folder.
    """
    return TransformerSnapshot(
        images[:PICTURE_SAMPLES],
        output_dir=args.output_dir / "snapshots",
        log_dir=args.log_dir,
        layer=TRANSFORMER_NAME,
    )


def save_model(model: keras.Model, output_dir: Path, images=None) -> None:
    """Save `model.keras` and, given inputs, the transformer's picture.

    Args:
        model: the trained net.
        output_dir: the run's output folder; created if missing.
        images: test inputs, for nets with a transformer: the first
            `PICTURE_SAMPLES` are drawn beside what the layer
            `TRANSFORMER_NAME` makes of them, in `transformer_outputs.png`.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save(output_dir / "model.keras")
    if images is not None:
        picture = draw_transformer(
            model.get_layer(TRANSFORMER_NAME),
            images[:PICTURE_SAMPLES],
            columns=4,
        )
        keras.utils.save_img(
            output_dir / "transformer_outputs.png", picture, scale=False
        )


def save_results(output_dir: Path, results: dict) -> None:
    """Write `results` as `results.json` in `output_dir`, and say where.

    Args:
        output_dir: the run's output folder; created if missing.
        results: what the run measured, JSON-serializable.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "results.json").write_text(
        json.dumps(results, indent=2) + "\n"
    )
    print(f"Saved the model, results.json and pictures to {output_dir}.")
