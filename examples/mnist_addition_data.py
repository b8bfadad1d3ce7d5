"""The MNIST addition data set of the Spatial Transformer paper.

Jaderberg et al. (2015, appendix, MNIST addition): two MNIST digits, each
on its own channel of a 42x42 two-channel input, each rotated, scaled and
translated independently as the RTS set of `distortions.py` (rotation by
U(-45, 45) degrees, scaling by U(0.7, 1.2), a random position keeping the
digit whole); the label is their sum, one of 19 classes (0 to 18).
"""

from pathlib import Path
from typing import NamedTuple

import numpy as np

from distortions import distort
from mnist_data import load_mnist

NUM_CLASSES = 19
CHANNELS = 2
# The test pairs are drawn with this seed whatever the run's seed, so that
# every run is scored on the same pairs.
TEST_SEED = 2015


class AdditionSet(NamedTuple):
    """Pairs of distorted digits and their sums.

    Attributes:
        images: float32 inputs `(n, 42, 42, 2)` in [0, 1], one digit a
            channel.
        sums: int32 labels `(n,)`, the sum of the two digits.
        digits: int32 `(n, 2)`, the digit on each channel.
        indices: `(n, 2)`, the index of each channel's digit in the MNIST
            images it was drawn from.
        parameters: one dict a channel, the RTS parameters that
            `distortions.distort` drew for it (`"angle"`, `"scale"`,
            `"shift"`), one row a pair.
    """

    images: np.ndarray
    sums: np.ndarray
    digits: np.ndarray
    indices: np.ndarray
    parameters: tuple[dict, dict]


def make_pairs(
    images: np.ndarray, labels: np.ndarray, count: int, seed: int
) -> AdditionSet:
    """Draw `count` pairs of digits and distort each digit on its channel.

    Each pair's two digits are drawn uniformly, with replacement, from
    `images`; each channel is distorted with its own seed, drawn from
    `seed`, so the two digits' rotations, scales and positions are
    independent.

    Args:
        images: uint8 MNIST digits `(m, 28, 28)`.
        labels: their integer labels `(m,)`.
        count: how many pairs to make; may exceed `m`.
        seed: the result depends only on `images`, `labels`, `count` and
            `seed`.

    Returns:
        The pairs, an `AdditionSet`.

    Example:

    >>> digits = np.zeros((3, 28, 28), "uint8")
    >>> digits[:, 8:20, 12:16] = 255
    >>> pairs = make_pairs(digits, np.array([1, 4, 9]), count=5, seed=0)
    >>> pairs.images.shape, pairs.sums.shape
    ((5, 42, 42, 2), (5,))
    >>> bool(np.all(pairs.sums == pairs.digits.sum(axis=1)))
    True
    """
    if count < 1:
        raise ValueError(
            "Invalid value for argument `count`. Expected a strictly "
            f"positive integer. Received count={count!r}"
        )
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, len(images), (count, CHANNELS))
    channel_seeds = rng.integers(0, 2**31, CHANNELS)
    channels, parameters = [], []
    for channel in range(CHANNELS):
        canvases, drawn = distort(
            images[indices[:, channel]], "rts", int(channel_seeds[channel])
        )
        channels.append(canvases[..., 0])
        parameters.append(drawn)
    digits = np.asarray(labels)[indices].astype("int32")
    return AdditionSet(
        images=np.stack(channels, axis=-1),
        sums=digits.sum(axis=1).astype("int32"),
        digits=digits,
        indices=indices,
        parameters=tuple(parameters),
    )


def prepare_data(
    path: Path,
    seed: int,
    train_samples: int | None = None,
    test_samples: int | None = None,
) -> tuple[AdditionSet, AdditionSet]:
    """Load MNIST and make the training and test pairs.

    Args:
        path: the MNIST `.npz` file, as for `mnist_data.load_mnist`.
        seed: the seed of the training pairs. The test pairs use
            `TEST_SEED` whatever `seed` is.
        train_samples: how many training pairs, drawn from the training
            digits; `None` for as many as there are training digits.
        test_samples: how many test pairs, drawn from the test digits;
            `None` for as many as there are test digits.

    Returns:
        `(train, test)`, two `AdditionSet`s.
    """
    (x_train, y_train), (x_test, y_test) = load_mnist(path)
    train = make_pairs(x_train, y_train, train_samples or len(x_train), seed)
    test = make_pairs(x_test, y_test, test_samples or len(x_test), TEST_SEED)
    return train, test
