"""Type aliases used in the annotations of keras-stn's public functions."""

from collections.abc import Sequence
from typing import Any

# A backend tensor, a NumPy array, or anything `keras.ops.convert_to_tensor`
# accepts. Keras has no common tensor type across backends.
Tensor = Any

# A `(height, width)` pair of positive integers.
Size = Sequence[int]
