"""The `SpatialTransformer` layer (Jaderberg et al., 2015)."""

import keras
import numpy as np
from keras import ops

from keras_stn.layers.localization_net import default_localization_net
from keras_stn.ops.validation import check_mode
from keras_stn.ops.validation import check_padding_mode
from keras_stn.ops.validation import standardize_data_format
from keras_stn.ops.validation import standardize_size
from keras_stn.ops.warp_affine import warp_affine
from keras_stn.typing import Size
from keras_stn.typing import Tensor

_LOW_PRECISION_DTYPES = ("float16", "bfloat16")


@keras.saving.register_keras_serializable(package="keras_stn")
class SpatialTransformer(keras.layers.Layer):
    """A spatial transformer: a layer that learns to warp its own input.

    From "Spatial Transformer Networks" (Jaderberg, Simonyan, Zisserman and
    Kavukcuoglu, 2015). The layer has three parts:

    1. a localization network maps the input to a feature vector, and a
       dense regression layer maps that to the transform `theta`, a 2x3
       affine matrix per example. The regression layer starts with a zero
       kernel and the identity as bias, so an untrained layer passes its
       input through unchanged;
    2. a grid generator maps each output pixel through `theta` to a point of
       the input (`keras_stn.ops.affine_grid`);
    3. a bilinear sampler reads the input at those points
       (`keras_stn.ops.grid_sample`), differentiably with respect to both
       the input and the points, so the whole layer trains end to end.

    Convention: `theta` maps normalized output coordinates in `[-1, 1]` to
    normalized input coordinates, as `torch.nn.functional.affine_grid`.

    Args:
        localization_net: a Keras layer or model mapping the layer's input
            to a batch of feature vectors `(batch, features)`. `None` builds
            `keras_stn.layers.default_localization_net`, a small conv net.
        output_size: `(height, width)` of the output, or `None` to keep the
            input's size.
        mode: sampling mode, `"bilinear"` or `"nearest"` (which passes no
            gradient to `theta`).
        padding_mode: the value of points outside the input: `"zeros"`,
            `"border"` or `"reflection"`.
        align_corners: if `True`, normalized -1 and 1 are the centres of the
            corner pixels; if `False`, their outer edges.
        data_format: `"channels_last"`, `"channels_first"`, or `None` for
            `keras.config.image_data_format()`.
        **kwargs: base layer arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: a batch of images, `(batch, height, width, channels)` or
            channels first.

    Returns:
        The warped batch, `(batch, out_height, out_width, channels)` (or
        channels first).

    Example:

    >>> model = keras.Sequential([
    ...     keras.Input((42, 42, 1)),
    ...     SpatialTransformer(output_size=(28, 28)),
    ...     keras.layers.Conv2D(8, 3, activation="relu"),
    ...     keras.layers.GlobalAveragePooling2D(),
    ...     keras.layers.Dense(10, activation="softmax"),
    ... ])
    >>> model.output_shape
    (None, 10)
    """

    def __init__(
        self,
        localization_net: keras.layers.Layer | None = None,
        output_size: Size | None = None,
        mode: str = "bilinear",
        padding_mode: str = "zeros",
        align_corners: bool = False,
        data_format: str | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if localization_net is not None and not isinstance(
            localization_net, keras.layers.Layer
        ):
            raise ValueError(
                "Invalid value for argument `localization_net`. Expected a "
                "Keras layer or model, or None. "
                f"Received localization_net={localization_net!r}"
            )
        self.output_size = standardize_size(
            output_size, "output_size", allow_none=True
        )
        self.mode = check_mode(mode)
        self.padding_mode = check_padding_mode(padding_mode)
        self.align_corners = bool(align_corners)
        self.data_format = standardize_data_format(data_format)
        self.localization_net = localization_net or default_localization_net(
            self.data_format, dtype=self.dtype_policy
        )
        # Under a float16 or bfloat16 policy, theta is still regressed in
        # float32, so that sampling coordinates keep sub-pixel precision.
        low_precision = self.compute_dtype in _LOW_PRECISION_DTYPES
        self.theta_regressor = keras.layers.Dense(
            6,
            kernel_initializer="zeros",
            bias_initializer=keras.initializers.Constant(
                np.eye(2, 3).flatten().tolist()
            ),
            dtype="float32" if low_precision else self.dtype_policy,
            name="theta_regressor",
        )
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape):
        if not self.localization_net.built:
            self.localization_net.build(input_shape)
        features_shape = self.localization_net.compute_output_shape(input_shape)
        if len(features_shape) != 2 or features_shape[-1] is None:
            raise ValueError(
                "The `localization_net` must map the input to a batch of "
                "feature vectors of shape (batch, features). Received an "
                f"output shape of {features_shape} for an input of shape "
                f"{input_shape}"
            )
        self.theta_regressor.build(features_shape)

    def compute_theta(self, inputs: Tensor) -> Tensor:
        """Return the transforms that the layer applies to `inputs`.

        Args:
            inputs: a batch of images, as for calling the layer.

        Returns:
            `theta`, a float tensor of shape `(batch, 2, 3)` mapping
            normalized output coordinates to normalized input coordinates.
            It is float32 under a float16 or bfloat16 dtype policy, so that
            sampling coordinates keep sub-pixel precision.
        """
        theta = self.theta_regressor(self.localization_net(inputs))
        return ops.reshape(theta, (-1, 2, 3))

    def call(self, inputs):
        return warp_affine(
            inputs,
            self.compute_theta(inputs),
            output_size=self.output_size,
            mode=self.mode,
            padding_mode=self.padding_mode,
            align_corners=self.align_corners,
            data_format=self.data_format,
        )

    def compute_output_shape(self, input_shape):
        if self.output_size is None:
            return tuple(input_shape)
        if self.data_format == "channels_first":
            return (input_shape[0], input_shape[1], *self.output_size)
        return (input_shape[0], *self.output_size, input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "localization_net": keras.saving.serialize_keras_object(
                    self.localization_net
                ),
                "output_size": self.output_size,
                "mode": self.mode,
                "padding_mode": self.padding_mode,
                "align_corners": self.align_corners,
                "data_format": self.data_format,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["localization_net"] = keras.saving.deserialize_keras_object(
            config["localization_net"]
        )
        return cls(**config)
