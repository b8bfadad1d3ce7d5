"""Keras losses for learning dense deformations (image registration)."""

from keras_stn.losses.displacement_smoothness import DisplacementSmoothness
from keras_stn.losses.local_normalized_cross_correlation import (
    LocalNormalizedCrossCorrelation,
)

__all__ = [
    "DisplacementSmoothness",
    "LocalNormalizedCrossCorrelation",
]
