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

from arguments import check_choice
from distortions import distort
from experiment import PROTOCOLS
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
            channel; from `make_pairs(..., distorted=False)`, the uint8
            digits of each pair `(n, 2, 28, 28)`, which `distort_pairs`
            distorts.
        sums: int32 labels `(n,)`, the sum of the two digits.
        digits: int32 `(n, 2)`, the digit on each channel.
        indices: `(n, 2)`, the index of each channel's digit in the MNIST
            images it was drawn from.
        parameters: one dict a channel, the RTS parameters that
            `distortions.distort` drew for it (`"angle"`, `"scale"`,
            `"shift"`), one row a pair; `None` where not distorted.
    """

    images: np.ndarray
    sums: np.ndarray
    digits: np.ndarray
    indices: np.ndarray
    parameters: tuple[dict, dict]


def make_pairs(
    images: np.ndarray,
    labels: np.ndarray,
    count: int,
    seed: int,
    distorted: bool = True,
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
        distorted: `False` draws the pairs but leaves their digits as they
            are (for `experiment.FreshEpochs`, which distorts them anew
            each epoch with `distort_pairs`).

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
    pairs, parameters = images[indices], None
    if distorted:
        pairs, parameters = _distort_pairs(pairs, rng)
    digits = np.asarray(labels)[indices].astype("int32")
    return AdditionSet(
        images=pairs,
        sums=digits.sum(axis=1).astype("int32"),
        digits=digits,
        indices=indices,
        parameters=parameters,
    )


def distort_pairs(digit_pairs: np.ndarray, seed: int) -> np.ndarray:
    """Distort the digits of pairs, each channel with its own seed.

    Args:
        digit_pairs: uint8 digits `(n, 2, 28, 28)`, two a pair.
        seed: the result depends only on `digit_pairs` and `seed`.

    Returns:
        float32 inputs `(n, 42, 42, 2)` in [0, 1], as `make_pairs` makes.

    Example:

    >>> pairs = np.zeros((3, 2, 28, 28), "uint8")
    >>> distort_pairs(pairs, seed=0).shape
    (3, 42, 42, 2)
    """
    return _distort_pairs(digit_pairs, np.random.default_rng(seed))[0]


def _distort_pairs(digit_pairs, rng):
    """The pairs distorted with channel seeds drawn from `rng`, and the
    parameters drawn, one dict a channel."""
    channel_seeds = rng.integers(0, 2**31, CHANNELS)
    channels, parameters = [], []
    for channel in range(CHANNELS):
        canvases, drawn = distort(
            digit_pairs[:, channel], "rts", int(channel_seeds[channel])
        )
        channels.append(canvases[..., 0])
        parameters.append(drawn)
    return np.stack(channels, axis=-1), tuple(parameters)


def prepare_data(
    path: Path,
    seed: int,
    train_samples: int | None = None,
    test_samples: int | None = None,
    protocol: str = "fixed",
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
        protocol: `"fixed"` or `"fresh"`; under `"fresh"`, the training
            pairs are left undistorted (`make_pairs(distorted=False)`), for
            `experiment.FreshEpochs`.

    Returns:
        `(train, test)`, two `AdditionSet`s.
    """
    check_choice(protocol, "protocol", PROTOCOLS)
    (x_train, y_train), (x_test, y_test) = load_mnist(path)
    train = make_pairs(
        x_train,
        y_train,
        train_samples or len(x_train),
        seed,
        distorted=protocol == "fixed",
    )
    test = make_pairs(x_test, y_test, test_samples or len(x_test), TEST_SEED)
    return train, test
