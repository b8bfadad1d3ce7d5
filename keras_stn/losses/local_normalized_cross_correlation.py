"""Local normalized cross-correlation (VoxelMorph's `NCC`), as a loss."""

import math

import keras
import numpy as np
from keras import ops

from keras_stn.ops.validation import channels_last_batch
from keras_stn.ops.validation import check_positive_number
from keras_stn.ops.validation import standardize_data_format
from keras_stn.typing import Tensor


@keras.saving.register_keras_serializable(package="keras_stn")
class LocalNormalizedCrossCorrelation(keras.losses.Loss):
    """Minus the mean squared local correlation of two images.

    In a window around each pixel (voxel), over the window's pixels and
    all channels, the squared correlation of `y_true` and `y_pred`,
    `cross ** 2 / (var_true * var_pred + epsilon)` with `cross` and the
    variances the window's sums of centred products; the loss is minus its
    mean over pixels, per example: -1 where the images match up to a
    scale of intensity (away from the borders, up to an affine change), 0
    where they are uncorrelated. The numbers
    of VoxelMorph's `NCC` (Balakrishnan et al., 2019, PyTorch version),
    including its treatment of the borders: windows reach past the edges
    into zeros and always count `prod(window) * channels` pixels.

    Args:
        window: the window's size, an int for every spatial axis or one int
            per axis (VoxelMorph's default, 9).
        epsilon: added to the product of the variances, so that flat
            windows give 0 rather than NaN.
        data_format: `"channels_last"`, `"channels_first"`, or `None` for
            `keras.config.image_data_format()`.
        reduction: how the per-example values are reduced, as for any
            Keras loss.
        name: the loss's name.
        dtype: the dtype of the computation, as for any Keras loss.

    Call arguments:
        y_true: the fixed images, `(batch, height, width, channels)` or
            `(batch, depth, height, width, channels)` (or channels first).
        y_pred: the moved images, of the same shape.

    Returns:
        The reduced loss; with `reduction=None`, one value per example.

    Example:

    >>> import numpy as np
    >>> images = np.random.default_rng(0).random((2, 16, 16, 1))
    >>> loss = LocalNormalizedCrossCorrelation(window=5,
    ...                                        data_format="channels_last")
    >>> round(float(loss(images, 2 * images)), 4)
    -1.0
    """

    def __init__(
        self,
        window: int | tuple[int, ...] = 9,
        epsilon: float = 1e-5,
        data_format: str | None = None,
        reduction: str | None = "sum_over_batch_size",
        name: str = "local_normalized_cross_correlation",
        dtype: str | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        windows = window if isinstance(window, (tuple, list)) else (window,)
        if (
            not windows
            or len(windows) > 3
            or not all(
                isinstance(w, (int, np.integer))
                and not isinstance(w, bool)
                and w > 0
                for w in windows
            )
        ):
            raise ValueError(
                "Invalid value for argument `window`. Expected a strictly "
                "positive integer, or one per spatial axis. "
                f"Received window={window!r}"
            )
        self.window = (
            tuple(int(w) for w in window)
            if isinstance(window, (tuple, list))
            else int(window)
        )
        self.epsilon = check_positive_number(epsilon, "epsilon")
        self.data_format = standardize_data_format(data_format)

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        fixed = channels_last_batch(y_true, "y_true", self.data_format)
        moved = channels_last_batch(y_pred, "y_pred", self.data_format)
        rank = len(fixed.shape) - 2
        window = self.window
        if isinstance(window, int):
            window = (window,) * rank
        elif len(window) != rank:
            raise ValueError(
                f"Argument `window` must have one size per spatial axis of "
                f"the images. Received window={self.window!r} for images of "
                f"shape {tuple(fixed.shape)} (channels last)"
            )
        # The window's sums of the five products, summed over the channels.
        products = [fixed, moved, fixed * fixed, moved * moved, fixed * moved]
        sums = ops.stack([ops.sum(p, axis=-1) for p in products], axis=-1)
        for axis, size in enumerate(window):
            sums = _box_sum(sums, axis + 1, size)
        fixed_sum, moved_sum, fixed2, moved2, cross_sum = (
            sums[..., k] for k in range(5)
        )
        count = math.prod(window) * fixed.shape[-1]
        fixed_mean = fixed_sum / count
        moved_mean = moved_sum / count
        cross = (
            cross_sum
            - moved_mean * fixed_sum
            - fixed_mean * moved_sum
            + fixed_mean * moved_mean * count
        )
        fixed_var = fixed2 - 2 * fixed_mean * fixed_sum
        fixed_var = fixed_var + fixed_mean * fixed_mean * count
        moved_var = moved2 - 2 * moved_mean * moved_sum
        moved_var = moved_var + moved_mean * moved_mean * count
        correlation = cross * cross / (fixed_var * moved_var + self.epsilon)
        return -ops.mean(correlation, axis=tuple(range(1, rank + 1)))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "window": self.window,
                "epsilon": self.epsilon,
                "data_format": self.data_format,
            }
        )
        return config


def _box_sum(x, axis, size):
    """Sums over windows of `size` along `axis`, zeros beyond the edges.

    As a convolution with `"same"` padding: `(size - 1) // 2` pixels before
    the centre, `size // 2` after.
    """
    padding = [(0, 0)] * len(x.shape)
    padding[axis] = ((size - 1) // 2, size // 2)
    padded = ops.pad(x, padding)
    length = x.shape[axis]
    total = None
    for shift in range(size):
        part = padded[(slice(None),) * axis + (slice(shift, shift + length),)]
        total = part if total is None else total + part
    return total
