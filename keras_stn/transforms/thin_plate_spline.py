"""The thin-plate spline transform family."""

import keras
import numpy as np

from keras_stn.ops.grids.thin_plate_spline import spline_system
from keras_stn.ops.grids.thin_plate_spline import tps_grid
from keras_stn.ops.grids.thin_plate_spline import tps_map_points
from keras_stn.ops.grids.thin_plate_spline import tps_pixel_grid
from keras_stn.ops.validation import standardize_size
from keras_stn.transforms.transform import Transform


@keras.saving.register_keras_serializable(package="keras_stn")
class ThinPlateSpline(Transform):
    """Thin-plate splines on a regular grid of control points.

    The control points form a `grid_size` grid spanning the output's
    normalized square `[-1, 1]^2`, row by row; the parameters are their
    targets, the normalized input points `(x, y)` that they sample (see
    `keras_stn.ops.tps_grid`). The identity is the control points
    themselves. The paper uses a 4x4 grid (16 points, 32 parameters) on
    distorted MNIST. Images only.

    Args:
        grid_size: `(rows, columns)` of the control-point grid, each at
            least 2.

    Example:

    >>> tps = ThinPlateSpline(grid_size=(2, 3))
    >>> tps.parameter_shape(spatial_rank=2)
    (6, 2)
    >>> tps.identity(spatial_rank=2)[:3].tolist()
    [[-1.0, -1.0], [0.0, -1.0], [1.0, -1.0]]
    """

    # The spline's basis is computed in NumPy for each output size.
    unknown_sizes = False

    def __init__(self, grid_size=(4, 4)):
        size = standardize_size(grid_size, "grid_size")
        if min(size) < 2:
            raise ValueError(
                "Invalid value for argument `grid_size`. Expected at least "
                "2 control points along each axis, (rows, columns) >= "
                f"(2, 2). Received grid_size={grid_size!r}"
            )
        self.grid_size = size
        # Solved once here, outside any traced call.
        self._system = spline_system(self.control_points)

    @property
    def control_points(self) -> np.ndarray:
        """The control points: float64, of shape `(rows * columns, 2)`."""
        rows, columns = self.grid_size
        xs, ys = np.meshgrid(
            np.linspace(-1.0, 1.0, columns), np.linspace(-1.0, 1.0, rows)
        )
        return np.stack([xs.ravel(), ys.ravel()], axis=-1)

    def parameter_shape(self, spatial_rank):
        return (self.grid_size[0] * self.grid_size[1], 2)

    def identity(self, spatial_rank):
        return self.control_points

    def pixel_grid(self, parameters, input_size, output_size, align_corners):
        return tps_pixel_grid(
            parameters,
            self._system,
            input_size,
            output_size,
            align_corners,
        )

    def normalized_grid(self, parameters, output_size, align_corners):
        return tps_grid(parameters, output_size, self._system, align_corners)

    def map_checked_points(self, parameters, points):
        return tps_map_points(parameters, self._system, points)

    def get_config(self):
        return {"grid_size": self.grid_size}
