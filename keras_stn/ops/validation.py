"""Argument checks shared by the grid generators, the sampler and the layers.

Every public entry point validates its arguments here, before any backend
op runs, so that bad input fails with a `ValueError` naming the argument
instead of a shape error from deep inside TensorFlow, JAX or PyTorch.
"""

import operator

import keras
import numpy as np
from keras import ops

from keras_stn.ops.dtypes import dtype_name
from keras_stn.typing import Size
from keras_stn.typing import Tensor

SAMPLING_MODES = ("bilinear", "nearest", "bicubic")
PADDING_MODES = ("zeros", "border", "reflection")
DATA_FORMATS = ("channels_last", "channels_first")
IMPLEMENTATIONS = ("auto", "keras")
INDEXINGS = ("xy", "ij")
_SIZE_LAYOUTS = {2: "(height, width)", 3: "(depth, height, width)"}


def check_choice(value, choices: tuple, name: str):
    """Return `value` if it is one of `choices`, else raise naming `name`."""
    if value not in choices:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected one of "
            f"{choices}. Received {name}={value!r}"
        )
    return value


def check_mode(mode: str, spatial_rank: int | None = None) -> str:
    """Return `mode` if it is a known sampling mode, else raise.

    Args:
        mode: the sampling mode.
        spatial_rank: 2 for images, 3 for volumes (which `"bicubic"` does
            not sample), or `None` if not known yet.

    Returns:
        `mode`.
    """
    check_choice(mode, SAMPLING_MODES, "mode")
    if mode == "bicubic" and spatial_rank == 3:
        raise ValueError(
            "Invalid value for argument `mode`. Expected 'bilinear' or "
            "'nearest' for volumes; 'bicubic' samples 2-D images only. "
            f"Received mode={mode!r}"
        )
    return mode


def check_padding_mode(padding_mode: str) -> str:
    """Return `padding_mode` if it is a known padding mode, else raise."""
    return check_choice(padding_mode, PADDING_MODES, "padding_mode")


def check_implementation(implementation: str) -> str:
    """Return `implementation` if it names a sampler implementation."""
    return check_choice(implementation, IMPLEMENTATIONS, "implementation")


def check_indexing(indexing: str) -> str:
    """Return `indexing` if it orders the vectors of a displacement field."""
    return check_choice(indexing, INDEXINGS, "indexing")


def check_bool(value, name: str) -> bool:
    """Return `value` as a Python bool if it is one (or a NumPy bool), else
    raise naming `name`."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected True or False. "
            f"Received {name}={value!r}"
        )
    return bool(value)


def channels_last_batch(x: Tensor, name: str, data_format: str) -> Tensor:
    """Check a 4-D or 5-D batch laid out as `data_format` says; return it
    with its channels last.

    Args:
        x: a batch of images (4-D) or volumes (5-D).
        name: the argument's name, for the error message.
        data_format: `"channels_last"` or `"channels_first"`.

    Returns:
        `x`, channels last.
    """
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


def standardize_data_format(data_format: str | None) -> str:
    """Resolve `None` to the Keras image data format and check the value."""
    if data_format is None:
        data_format = keras.config.image_data_format()
    return check_choice(data_format, DATA_FORMATS, "data_format")


def standardize_size(
    size: Size | None,
    name: str,
    allow_none: bool = False,
    rank: int | None = 2,
    allow_traced: bool = False,
) -> tuple | None:
    """Return `size` as a tuple of positive Python ints.

    Args:
        size: `(height, width)` or `(depth, height, width)` of positive
            integers, or `None` when `allow_none` is true.
        name: the argument's name, for the error message.
        allow_none: whether `None` is accepted (and returned as is).
        rank: the expected number of spatial axes, 2 or 3; `None` accepts
            either.
        allow_traced: whether sizes only known when a traced graph runs
            (scalar tensors, JAX's and `torch.export`'s symbolic sizes)
            are accepted among the ints, and returned as they are.

    Returns:
        The sizes as Python ints (or as they are where traced), or `None`.
    """
    if size is None and allow_none:
        return None
    try:
        values = tuple(size)
    except TypeError:
        values = None
    ranks = (2, 3) if rank is None else (rank,)
    if (
        values is None
        or len(values) not in ranks
        or not all(
            (allow_traced and _is_traced_size(v)) or _is_positive_int(v)
            for v in values
        )
    ):
        expected = " or ".join(_SIZE_LAYOUTS[r] for r in ranks)
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected a tuple of "
            f"strictly positive integers {expected}. Received {name}={size!r}"
        )
    return tuple(
        v if allow_traced and _is_traced_size(v) else _as_int(v) for v in values
    )


def check_positive_number(
    value: float | None, name: str, allow_none: bool = False
) -> float | None:
    """Return `value` as a float if it is a finite number > 0.

    Args:
        value: the argument's value.
        name: the argument's name, for the error message.
        allow_none: whether `None` is valid (and returned as is).

    Returns:
        `float(value)`, or `None`.
    """
    if value is None and allow_none:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.number))
        or not np.isfinite(value)
        or value <= 0
    ):
        alternatives = "None or " if allow_none else ""
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected {alternatives}a "
            f"finite number > 0. Received {name}={value!r}"
        )
    return float(value)


def _as_int(value):
    # `operator.index` fixes a size that `torch.compile` traces as symbolic
    # (it looks like an int) to its value, as exact grid constants need;
    # `int` would keep it symbolic.
    return operator.index(value) if isinstance(value, int) else int(value)


def _is_traced_size(value):
    """Whether `value` may be a size only known when a traced graph runs.

    Scalar tensors, and symbolic sizes (whose types differ per backend),
    pass; numbers, which are checked as sizes, and the other values a
    caller mistakes for a size do not.
    """
    if ops.is_tensor(value):
        return len(value.shape) == 0
    excluded = (
        bool,
        int,
        float,
        str,
        bytes,
        tuple,
        list,
        np.generic,
        np.ndarray,
    )
    return value is not None and not isinstance(value, excluded)


def _is_positive_int(value):
    if isinstance(value, bool):
        return False
    try:
        return int(value) == value and int(value) > 0
    except (TypeError, ValueError):
        return False


def to_tensor(value, name: str) -> Tensor:
    """Convert an argument to a backend tensor, reading variables.

    Keras' `convert_to_tensor` passes a Keras variable or a TensorFlow
    variable through as it is; the samplers read it here instead, so that a
    gradient tape that watches the variable records what they compute.

    Args:
        value: a NumPy array, a nested list of numbers, a backend tensor,
            a TensorFlow variable, or a `keras.Variable`.
        name: the argument's name, for the error message.

    Returns:
        The value as a tensor of the backend.
    """
    if isinstance(value, keras.Variable):
        value = value.value
    try:
        tensor = ops.convert_to_tensor(value)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected a tensor, a "
            f"NumPy array or a nested list of numbers. Received "
            f"{name}={value!r} ({error})"
        ) from error
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if isinstance(tensor, tf.Variable):
            tensor = tf.convert_to_tensor(tensor)
    return tensor


def check_float_dtype(x: Tensor, name: str) -> None:
    """Raise if the tensor `x` does not have a floating-point dtype."""
    dtype = dtype_name(x.dtype)
    if not keras.backend.is_float_dtype(dtype):
        hint = ""
        if dtype == "uint8":
            hint = (
                f". Images stored as bytes need a cast and a scale first, "
                f"for example `{name} = {name}.astype('float32') / 255` "
                f"(or `keras.ops.cast({name}, 'float32') / 255`)"
            )
        raise ValueError(
            f"Invalid dtype for argument `{name}`. Expected a floating-point "
            f"tensor. Received {name} with dtype={dtype}{hint}"
        )


def check_shape(
    x: Tensor,
    name: str,
    rank: int,
    last_dims: tuple[int | None, ...] = (),
    description: str = "",
) -> None:
    """Raise if `x` does not have `rank` axes ending in `last_dims`.

    Args:
        x: the tensor to check.
        name: the argument's name, for the error message.
        rank: the expected number of axes.
        last_dims: the expected sizes of the trailing axes (`None` in the
            tuple accepts any size).
        description: the expected layout, spelled out for the message, for
            example `"(batch, 2, 3)"`.
    """
    shape = tuple(x.shape)
    trailing = shape[len(shape) - len(last_dims) :]
    dims_ok = all(
        expected is None or actual is None or actual == expected
        for actual, expected in zip(trailing, last_dims, strict=True)
    )
    if len(shape) != rank or not dims_ok:
        raise ValueError(
            f"Invalid shape for argument `{name}`. Expected a tensor of "
            f"shape {description}. Received {name}.shape={shape}"
        )


def check_spatial_axes_not_empty(
    images: Tensor, name: str, data_format: str
) -> None:
    """Raise if a statically known spatial size of `images` is 0.

    There is nothing to sample in an image of no pixels (PyTorch's
    `grid_sample` raises too); an empty batch is fine.

    Args:
        images: a batch of images or volumes, laid out as `data_format`
            says.
        name: the argument's name, for the error message.
        data_format: `"channels_last"` or `"channels_first"`.
    """
    shape = tuple(images.shape)
    spatial = shape[1:-1] if data_format == "channels_last" else shape[2:]
    if 0 in spatial:
        raise ValueError(
            f"Invalid shape for argument `{name}`. Expected every spatial "
            "axis (height, width and depth) to hold at least one pixel; "
            f"only the batch may be empty. Received {name}.shape={shape}"
        )


def check_same_batch(a: Tensor, a_name: str, b: Tensor, b_name: str) -> None:
    """Raise if the statically known batch sizes of `a` and `b` differ."""
    a_batch, b_batch = a.shape[0], b.shape[0]
    if a_batch is not None and b_batch is not None and a_batch != b_batch:
        raise ValueError(
            f"Arguments `{a_name}` and `{b_name}` must have the same batch "
            f"size. Received {a_name}.shape={tuple(a.shape)} and "
            f"{b_name}.shape={tuple(b.shape)}"
        )
