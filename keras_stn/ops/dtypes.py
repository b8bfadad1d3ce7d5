"""Dtype names as Keras spells them, looked up once per dtype.

`keras.backend.standardize_dtype` takes about a microsecond a call, and the
sampler asks for the names of its arguments' dtypes several times a call:
at MNIST size, a tenth of what keras-stn adds around PyTorch's 0.1 ms
kernel. Its answers depend on the dtype alone (but for `None`, whose name
follows `keras.config.floatx()`), so they are kept per dtype.
"""

import functools

import keras


def dtype_name(dtype) -> str:
    """The standard name of `dtype`: `keras.backend.standardize_dtype`'s.

    Args:
        dtype: a backend's dtype, a NumPy dtype or a name, as a tensor's
            `dtype` attribute holds it.

    Returns:
        The name, such as `"float32"`.

    Example:

    >>> dtype_name(keras.ops.ones((1,), "bfloat16").dtype)
    'bfloat16'
    """
    if dtype is None:
        return keras.backend.standardize_dtype(dtype)
    return _standardized(dtype)


_standardized = functools.cache(keras.backend.standardize_dtype)
