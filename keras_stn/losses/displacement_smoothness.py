"""The smoothness penalty of a displacement field (VoxelMorph's `Grad`)."""

import keras
from keras import ops

from keras_stn.ops.validation import channels_last_batch
from keras_stn.ops.validation import check_choice
from keras_stn.ops.validation import standardize_data_format
from keras_stn.typing import Tensor

PENALTIES = ("l2", "l1")


@keras.saving.register_keras_serializable(package="keras_stn")
class DisplacementSmoothness(keras.losses.Loss):
    """The mean squared (or absolute) spatial gradient of a field.

    For each example: per spatial axis, the mean over pixels and components
    of the squared (`"l2"`) or absolute (`"l1"`) forward differences of
    `y_pred` along that axis, averaged over the axes. These are the numbers
    of VoxelMorph's `Grad(penalty)` loss (Balakrishnan et al., 2019), the
    regularizer of its registration networks. `y_true` is ignored (give the
    model zeros as the field's target).

    Args:
        penalty: `"l2"` (squared differences) or `"l1"` (absolute ones).
        data_format: `"channels_last"`, `"channels_first"`, or `None` for
            `keras.config.image_data_format()`: where `y_pred` has its
            vector components.
        reduction: how the per-example values are reduced, as for any
            Keras loss.
        name: the loss's name.
        dtype: the dtype of the computation, as for any Keras loss.

    Call arguments:
        y_true: ignored.
        y_pred: a displacement field `(batch, height, width, 2)` or
            `(batch, depth, height, width, 3)` (or channels first); any
            number of channels is accepted.

    Returns:
        The reduced loss; with `reduction=None`, one value per example.

    Example:

    >>> import numpy as np
    >>> field = np.zeros((1, 3, 3, 2), "float32")
    >>> field[..., 0] = np.arange(3)  # x grows by 1 per column
    >>> loss = DisplacementSmoothness(data_format="channels_last")
    >>> float(loss(np.zeros_like(field), field))  # (1 / 2 + 0) / 2
    0.25
    """

    def __init__(
        self,
        penalty: str = "l2",
        data_format: str | None = None,
        reduction: str | None = "sum_over_batch_size",
        name: str = "displacement_smoothness",
        dtype: str | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.penalty = check_choice(penalty, PENALTIES, "penalty")
        self.data_format = standardize_data_format(data_format)

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        field = channels_last_batch(y_pred, "y_pred", self.data_format)
        rank = len(field.shape) - 2
        means = []
        for axis in range(1, rank + 1):
            size = field.shape[axis]
            ahead = field[(slice(None),) * axis + (slice(1, size),)]
            behind = field[(slice(None),) * axis + (slice(0, size - 1),)]
            difference = ahead - behind
            if self.penalty == "l2":
                penalty = difference * difference
            else:
                penalty = ops.abs(difference)
            means.append(ops.mean(penalty, axis=tuple(range(1, rank + 2))))
        return ops.sum(ops.stack(means, axis=0), axis=0) / rank

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {"penalty": self.penalty, "data_format": self.data_format}
        )
        return config
