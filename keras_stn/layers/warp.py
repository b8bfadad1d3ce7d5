"""The `Warp` layer: images warped by a dense displacement field."""

import keras
from keras import ops

from keras_stn.ops.dense_warping import prepare_warp
from keras_stn.ops.dense_warping import warp_pixels
from keras_stn.ops.precision import at_least_float32
from keras_stn.ops.sampling.sampler import from_channels_last
from keras_stn.ops.validation import check_implementation
from keras_stn.ops.validation import check_indexing
from keras_stn.ops.validation import check_mode
from keras_stn.ops.validation import check_padding_mode
from keras_stn.ops.validation import standardize_data_format


@keras.saving.register_keras_serializable(package="keras_stn")
class Warp(keras.layers.Layer):
    """Warp images (or volumes) with a dense displacement field.

    The layer form of `keras_stn.ops.warp`, VoxelMorph's
    `SpatialTransformer` layer: output pixel `p` samples the images at
    `p + displacement[p]`, in pixels. Under a float16 or bfloat16 policy the
    images are sampled in the compute dtype and the field is kept in float32
    (at least), so that the sampling points are not rounded.

    Args:
        mode: `"bilinear"` (trilinear for volumes), `"nearest"` or
            `"bicubic"` (images only).
        padding_mode: `"zeros"`, `"border"` or `"reflection"`.
        data_format: `"channels_last"`, `"channels_first"`, or `None` for
            `keras.config.image_data_format()`; the images and the field
            follow it.
        indexing: `"xy"` (vectors `(x, y[, z])`) or `"ij"` (array-axis
            order, as VoxelMorph's fields).
        implementation: `"auto"` or `"keras"`, as in
            `keras_stn.ops.grid_sample`.
        **kwargs: base layer arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: `[images, displacement]`: images `(batch, height, width,
            channels)` (or volumes, or channels first) and a field of the
            same batch and spatial sizes with 2 (3) vector components.
        training: whether the call is part of a training step (on
            TensorFlow, `"auto"` compiles the sampler with XLA in training
            only, as `SpatialTransformer` does).

    Returns:
        The warped images, shaped as the images.

    Example:

    >>> moving = keras.Input((32, 32, 1))
    >>> field = keras.layers.Conv2D(2, 3, padding="same")(moving)
    >>> moved = Warp(data_format="channels_last")([moving, field])
    >>> tuple(moved.shape)
    (None, 32, 32, 1)
    """

    def __init__(
        self,
        mode: str = "bilinear",
        padding_mode: str = "zeros",
        data_format: str | None = None,
        indexing: str = "xy",
        implementation: str = "auto",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.mode = check_mode(mode)
        self.padding_mode = check_padding_mode(padding_mode)
        self.data_format = standardize_data_format(data_format)
        self.indexing = check_indexing(indexing)
        self.implementation = check_implementation(implementation)
        # The field keeps its float32 precision under mixed precision.
        self.autocast = False

    def call(self, inputs, training=None):
        images, displacement = _pair(inputs)
        images = ops.cast(images, self.compute_dtype)
        displacement = ops.cast(
            displacement, at_least_float32(self.compute_dtype)
        )
        images, field, data_format = prepare_warp(
            images,
            displacement,
            self.mode,
            self.padding_mode,
            self.data_format,
            self.indexing,
            self.implementation,
        )
        outputs = warp_pixels(
            images,
            field,
            self.mode,
            self.padding_mode,
            self.implementation,
            inference=not training,
        )
        return from_channels_last(outputs, data_format)

    def compute_output_shape(self, input_shape):
        images_shape, displacement_shape = _pair(input_shape)
        # The checks of `warp`, on symbolic tensors: a field that does not
        # fit the images fails when the model is built.
        prepare_warp(
            keras.KerasTensor(images_shape),
            keras.KerasTensor(displacement_shape),
            self.mode,
            self.padding_mode,
            self.data_format,
            self.indexing,
            self.implementation,
        )
        return tuple(images_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "mode": self.mode,
                "padding_mode": self.padding_mode,
                "data_format": self.data_format,
                "indexing": self.indexing,
                "implementation": self.implementation,
            }
        )
        return config


def _pair(inputs):
    if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
        raise ValueError(
            "Invalid value for argument `inputs`. Expected a list "
            "`[images, displacement]`. Received "
            f"inputs={inputs!r}"
        )
    return inputs
