"""Backend-agnostic spatial transformer functions, written in `keras.ops`."""

from keras_stn.ops.affine_grid import affine_grid
from keras_stn.ops.grid_sample import grid_sample
from keras_stn.ops.projective_grid import projective_grid
from keras_stn.ops.tps_grid import tps_grid
from keras_stn.ops.warp_affine import warp_affine

__all__ = [
    "affine_grid",
    "grid_sample",
    "projective_grid",
    "tps_grid",
    "warp_affine",
]
