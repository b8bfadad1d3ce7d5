"""The `IntegrateVelocity` layer: scaling and squaring of a velocity."""

import keras
from keras import ops

from keras_stn.ops.dense_warping import field_to_xy
from keras_stn.ops.displacement import integrate_velocity
from keras_stn.ops.precision import at_least_float32
from keras_stn.ops.validation import check_indexing
from keras_stn.ops.validation import standardize_data_format


@keras.saving.register_keras_serializable(package="keras_stn")
class IntegrateVelocity(keras.layers.Layer):
    """Integrate a stationary velocity field into a displacement field.

    The layer form of `keras_stn.ops.integrate_velocity`, VoxelMorph's
    `VecInt`: scaling and squaring, for diffeomorphic warps. The field is
    computed and returned in float32 (at least) under a float16 or
    bfloat16 policy.

    Args:
        steps: the number of squarings, an integer >= 0 (VoxelMorph's
            default, 7).
        data_format: `"channels_last"`, `"channels_first"`, or `None` for
            `keras.config.image_data_format()`.
        indexing: `"xy"` or `"ij"`, as in `keras_stn.ops.warp`.
        **kwargs: base layer arguments, such as `name` and `dtype`.

    Call arguments:
        velocity: a field `(batch, height, width, 2)` or `(batch, depth,
            height, width, 3)` (or channels first), in pixels.

    Returns:
        The displacement field, shaped as `velocity`.

    Example:

    >>> velocity = keras.Input((16, 16, 2))
    >>> field = IntegrateVelocity(data_format="channels_last")(velocity)
    >>> tuple(field.shape)
    (None, 16, 16, 2)
    """

    def __init__(
        self,
        steps: int = 7,
        data_format: str | None = None,
        indexing: str = "xy",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(
                "Invalid value for argument `steps`. Expected an integer "
                f">= 0. Received steps={steps!r}"
            )
        self.steps = steps
        self.data_format = standardize_data_format(data_format)
        self.indexing = check_indexing(indexing)
        self.autocast = False

    def call(self, velocity):
        velocity = ops.cast(velocity, self._field_dtype)
        return integrate_velocity(
            velocity, self.steps, self.data_format, self.indexing
        )

    @property
    def _field_dtype(self):
        return at_least_float32(self.compute_dtype)

    def compute_output_spec(self, velocity):
        # The checks of `integrate_velocity`, on the symbolic input.
        field_to_xy(
            ops.cast(velocity, self._field_dtype),
            "velocity",
            self.data_format,
            self.indexing,
        )
        return keras.KerasTensor(velocity.shape, dtype=self._field_dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "steps": self.steps,
                "data_format": self.data_format,
                "indexing": self.indexing,
            }
        )
        return config
