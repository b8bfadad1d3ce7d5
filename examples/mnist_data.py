"""Load MNIST for the examples: the local file, else Keras' download.

The examples read `../shared/data/mnist_subset.npz` next to the checkout
when it is there (it is not part of the repository) and otherwise download
MNIST with `keras.datasets.mnist.load_data()`.
"""

from pathlib import Path

import keras
import numpy as np

# The side of an MNIST digit, in pixels.
DIGIT = 28
DEFAULT_DATA = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist_subset.npz"
)


def load_mnist(path: Path) -> tuple[tuple, tuple]:
    """Load MNIST from an `.npz` file, or download it if the file is missing.

    Args:
        path: an `.npz` file with the arrays `x_train`, `y_train`, `x_test`
            and `y_test`, as `keras.datasets.mnist.load_data` returns them.

    Returns:
        `((x_train, y_train), (x_test, y_test))`: uint8 images of shape
        `(n, 28, 28)` and their integer labels.
    """
    path = Path(path)
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


def take_first(
    arrays: tuple[np.ndarray, ...], count: int | None, option: str
) -> tuple[np.ndarray, ...]:
    """Keep the first `count` samples of equally long arrays.

    Args:
        arrays: arrays whose first axis counts the samples.
        count: how many samples to keep; `None` keeps them all.
        option: the command-line option that set `count`, for the error.

    Returns:
        The arrays, cut to `count` samples.

    Raises:
        SystemExit: if `count` is more than the arrays hold.
    """
    available = len(arrays[0])
    if count is not None and count > available:
        raise SystemExit(
            f"Error: {option} must be at most {available}, the number of "
            f"images in the data. Received {count}."
        )
    return tuple(array[:count] for array in arrays)


def check_digits(images) -> np.ndarray:
    """Check that `images` are MNIST digits, of shape `(n, 28, 28)`.

    Args:
        images: the argument `images` of an example function.

    Returns:
        `images` as a NumPy array.

    Raises:
        ValueError: if they have another shape.

    Example:

    >>> check_digits(np.zeros((2, 28, 28), "uint8")).shape
    (2, 28, 28)
    >>> try:
    ...     check_digits(np.zeros((28, 28), "uint8"))
    ... except ValueError as error:
    ...     print(str(error).split(". ")[-1])
    Received shape (28, 28)
    """
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1:] != (DIGIT, DIGIT):
        raise ValueError(
            "Invalid value for argument `images`. Expected MNIST digits of "
            f"shape (n, {DIGIT}, {DIGIT}). Received shape {images.shape}"
        )
    return images
