"""keras-stn: Spatial Transformer Networks for Keras 3."""

from keras_stn import callbacks
from keras_stn import losses
from keras_stn import ops
from keras_stn import transforms
from keras_stn.layers import SpatialTransformer
from keras_stn.version import __version__

__all__ = [
    "SpatialTransformer",
    "callbacks",
    "losses",
    "ops",
    "transforms",
    "__version__",
]
