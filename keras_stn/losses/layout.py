"""The layout of the losses' inputs."""

from keras import ops

from keras_stn.ops.validation import check_shape
from keras_stn.typing import Tensor


def channels_last_batch(x: Tensor, name: str, data_format: str) -> Tensor:
    """Check a 4-D or 5-D batch; return it with its channels last."""
    rank = len(x.shape)
    check_shape(
        x,
        name,
        rank=rank if rank in (4, 5) else 4,
        description="(batch, height, width, channels), (batch, depth, "
        "height, width, channels) or the same with channels first",
    )
    if data_format == "channels_first":
        return ops.moveaxis(x, 1, -1)
    return x
