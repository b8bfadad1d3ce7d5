"""The projective transform family (homographies)."""

import keras
import numpy as np
from keras import ops

from keras_stn.ops.grids.projective import projective_grid
from keras_stn.ops.grids.projective import projective_map_points
from keras_stn.ops.grids.projective import projective_pixel_grid
from keras_stn.ops.matrices import invert_homography
from keras_stn.ops.validation import to_tensor
from keras_stn.transforms.transform import Transform


@keras.saving.register_keras_serializable(package="keras_stn")
class Projective(Transform):
    """Projective transforms: homographies with the last entry fixed at 1.

    The 8 parameters are the first 8 entries, row by row, of the 3x3 matrix
    of `keras_stn.ops.projective_grid`, whose last entry is 1 (15 of a 4x4
    matrix for volumes). The identity is the identity matrix. Points whose
    homogeneous denominator nears 0 are sent far outside the input, with
    finite values and gradients.

    Example:

    >>> Projective().identity(spatial_rank=2)
    array([1., 0., 0., 0., 1., 0., 0., 0.])
    """

    spatial_ranks = (2, 3)

    def parameter_shape(self, spatial_rank):
        return ((spatial_rank + 1) ** 2 - 1,)

    def identity(self, spatial_rank):
        return np.eye(spatial_rank + 1).flatten()[:-1]

    def to_homography(self, parameters):
        """Return the homographies that the parameters stand for.

        Args:
            parameters: float tensor of shape `(batch, 8)` (or
                `(batch, 15)`).

        Returns:
            The matrices, of shape `(batch, 3, 3)` (or `(batch, 4, 4)`).
        """
        parameters = to_tensor(parameters, "parameters")
        size = int(round((parameters.shape[-1] + 1) ** 0.5))
        last = ops.ones_like(parameters[:, :1])
        entries = ops.concatenate([parameters, last], axis=-1)
        return ops.reshape(entries, (-1, size, size))

    def pixel_grid(self, parameters, input_size, output_size, align_corners):
        return projective_pixel_grid(
            self.to_homography(parameters),
            input_size,
            output_size,
            align_corners,
        )

    def normalized_grid(self, parameters, output_size, align_corners):
        return projective_grid(
            self.to_homography(parameters), output_size, align_corners
        )

    def map_checked_points(self, parameters, points):
        return projective_map_points(self.to_homography(parameters), points)

    def invert(self, parameters):
        parameters = self.check_any_parameters(parameters)
        rank = 3 if parameters.shape[-1] == 15 else 2
        inverse = invert_homography(self.to_homography(parameters))
        return ops.reshape(inverse, (-1, (rank + 1) ** 2))[:, :-1]
