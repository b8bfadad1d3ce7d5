"""Tensors of Python numbers, made in one call on every backend.

The grid generators turn exact constants, computed in plain Python (see
`keras_stn.ops.coordinates`), into tensors on each call. Keras' torch backend
converts a Python list element by element (it looks for the symbolic sizes of
`torch.export` in it), which costs 0.1-1 ms per constant in an eager call,
more than the grid's arithmetic at MNIST size; `torch.as_tensor` reads the
list in one call. NumPy arrays are no way around it: `torch.compile` breaks
its graph where it meets one.
"""

import keras
from keras import ops

from keras_stn.ops.dtypes import dtype_name
from keras_stn.typing import Tensor


def constant(values, like: Tensor) -> Tensor:
    """Return Python numbers as a tensor beside `like`.

    Args:
        values: a Python number, or nested lists or tuples of them.
        like: a tensor: the result has its dtype and, on torch, its device.

    Returns:
        A tensor of the shape of `values`.

    Example:

    >>> like = keras.ops.ones((2,), "float32")
    >>> out = constant([[0.5, 1.0]], like)
    >>> (tuple(out.shape), keras.backend.standardize_dtype(out.dtype))
    ((1, 2), 'float32')
    """
    dtype = dtype_name(like.dtype)
    if keras.backend.backend() == "torch":
        import torch

        return torch.as_tensor(
            values, dtype=getattr(torch, dtype), device=like.device
        )
    return ops.convert_to_tensor(values, dtype)
