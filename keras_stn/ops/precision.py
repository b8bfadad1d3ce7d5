"""The float dtype of precision-sensitive math under low-precision policies.

Sampling coordinates and the weighted sums of the sampler are computed in
float32 when the images are float16 or bfloat16 (as under the
`mixed_float16` and `mixed_bfloat16` policies): in float16, the pixel
coordinates of a 200-pixel image would be rounded to 1/8 of a pixel.
`keras.backend.result_type` cannot say this, since outside TensorFlow it
maps float64 to float32.
"""

from keras_stn.ops.dtypes import dtype_name

LOW_PRECISION_DTYPES = ("float16", "bfloat16")


def is_low_precision(dtype) -> bool:
    """Whether `dtype` is float16 or bfloat16.

    Args:
        dtype: a dtype, by name or as a backend dtype.

    Returns:
        `True` for float16 and bfloat16.
    """
    return dtype_name(dtype) in LOW_PRECISION_DTYPES


def at_least_float32(dtype) -> str:
    """The dtype in which to compute coordinates and sums for `dtype`.

    Args:
        dtype: a float dtype, by name or as a backend dtype.

    Returns:
        `"float32"` for float16 and bfloat16, else `dtype` by name.

    Example:

    >>> at_least_float32("bfloat16"), at_least_float32("float64")
    ('float32', 'float64')
    """
    if is_low_precision(dtype):
        return "float32"
    return dtype_name(dtype)
