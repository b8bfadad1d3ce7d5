"""The sampler as one XLA computation on the TensorFlow backend.

Keras compiles a TensorFlow model's training step into a graph but, on a CPU,
not with XLA (`jit_compile="auto"`), so each of the generic sampler's
dozens of small ops runs as its own kernel, with its own memory pass. Run
through `tf.function(jit_compile=True)`, the same ops become one XLA
cluster, forward and backward, which fuses the elementwise work around the
gather: the same computation, so the same numbers up to float rounding.
The cluster compiles once per input shape and is inlined where the caller
already compiles with XLA.
"""

import functools

import keras

from keras_stn.typing import Tensor


def has_xla_sampler() -> bool:
    """Whether the sampler runs as one XLA cluster: on TensorFlow."""
    return keras.backend.backend() == "tensorflow"


def xla_compiled(function, *tensors: Tensor, **options) -> Tensor:
    """Call `function(*tensors, **options)` compiled by TensorFlow's XLA.

    Args:
        function: a function of tensors (possibly lists of tensors) and of
            hashable options that select what it computes.
        *tensors: its tensor arguments.
        **options: its other arguments, fixed at compile time.

    Returns:
        What `function` returns.
    """
    return _compiled(function, tuple(sorted(options.items())))(*tensors)


@functools.cache
def _compiled(function, options):
    import tensorflow as tf

    return tf.function(
        functools.partial(function, **dict(options)),
        jit_compile=True,
    )
