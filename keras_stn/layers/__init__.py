"""Keras layers of keras-stn."""

from keras_stn.layers.integrate_velocity import IntegrateVelocity
from keras_stn.layers.localization_net import AxiswiseMaxPooling
from keras_stn.layers.localization_net import default_localization_net
from keras_stn.layers.spatial_transformer import SpatialTransformer
from keras_stn.layers.warp import Warp

__all__ = [
    "AxiswiseMaxPooling",
    "SpatialTransformer",
    "default_localization_net",
    "Warp",
    "IntegrateVelocity",
]
