"""Backend-agnostic spatial transformer functions, written in `keras.ops`."""

from keras_stn.ops.affine_warping import warp_affine
from keras_stn.ops.dense_warping import warp
from keras_stn.ops.displacement import affine_to_displacement
from keras_stn.ops.displacement import compose_displacements
from keras_stn.ops.displacement import integrate_velocity
from keras_stn.ops.displacement import jacobian_determinant
from keras_stn.ops.displacement import resize_displacement
from keras_stn.ops.grids.affine import affine_grid
from keras_stn.ops.grids.projective import projective_grid
from keras_stn.ops.grids.thin_plate_spline import tps_grid
from keras_stn.ops.matrices import compose_affine
from keras_stn.ops.matrices import invert_affine
from keras_stn.ops.pixel_matrix import pixel_matrix_to_theta
from keras_stn.ops.pixel_matrix import theta_to_pixel_matrix
from keras_stn.ops.point_pairs import get_affine_transform
from keras_stn.ops.point_pairs import get_perspective_transform
from keras_stn.ops.sampled_regions import SampledBoxes
from keras_stn.ops.sampled_regions import sampled_boxes
from keras_stn.ops.sampled_regions import sampled_outlines
from keras_stn.ops.sampling.sampler import grid_sample

__all__ = [
    "affine_grid",
    "grid_sample",
    "projective_grid",
    "tps_grid",
    "warp_affine",
    "warp",
    "affine_to_displacement",
    "compose_displacements",
    "integrate_velocity",
    "jacobian_determinant",
    "resize_displacement",
    "SampledBoxes",
    "compose_affine",
    "get_affine_transform",
    "get_perspective_transform",
    "invert_affine",
    "pixel_matrix_to_theta",
    "sampled_boxes",
    "sampled_outlines",
    "theta_to_pixel_matrix",
]
