"""Guarded access to the frameworks' private functions.

Some questions have no public answer in the frameworks: whether a
TensorFlow tape records a tensor, whether a graph is compiled by XLA,
whether Keras traces a model for its own training and prediction loops.
The fast paths ask them through `private_function`, and take the generic
path, with the same numbers, where the function is gone or fails.
"""

import functools
import importlib


@functools.cache
def private_function(module: str, name: str):
    """Return a private function of a framework, or `None` where it is gone.

    Args:
        module: the module's dotted path.
        name: the function's name in it.

    Returns:
        The function, or `None`.

    Example:

    >>> private_function("keras.src.no_such_module", "anything") is None
    True
    """
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None
