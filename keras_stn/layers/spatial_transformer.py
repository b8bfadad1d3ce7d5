"""The `SpatialTransformer` layer (Jaderberg et al., 2015)."""

import keras
import numpy as np
from keras import ops

from keras_stn import transforms
from keras_stn.layers.localization_net import default_localization_net
from keras_stn.ops.coordinates import are_static
from keras_stn.ops.coordinates import spatial_sizes
from keras_stn.ops.coordinates import unnormalize
from keras_stn.ops.precision import is_low_precision
from keras_stn.ops.sampling.sampler import prepare_images
from keras_stn.ops.sampling.sampler import sample_pixels
from keras_stn.ops.validation import check_bool
from keras_stn.ops.validation import check_implementation
from keras_stn.ops.validation import check_mode
from keras_stn.ops.validation import check_padding_mode
from keras_stn.ops.validation import check_positive_number
from keras_stn.ops.validation import check_shape
from keras_stn.ops.validation import standardize_data_format
from keras_stn.ops.validation import standardize_size
from keras_stn.ops.validation import to_tensor
from keras_stn.typing import Size
from keras_stn.typing import Tensor

MERGE_MODES = ("concat", "stack")


@keras.saving.register_keras_serializable(package="keras_stn")
class SpatialTransformer(keras.layers.Layer):
    """A spatial transformer: a layer that learns to warp its own input.

    From "Spatial Transformer Networks" (Jaderberg, Simonyan, Zisserman and
    Kavukcuoglu, 2015). The layer has three parts:

    1. a localization network maps the input to a feature vector, and a
       dense regression layer maps that to the transform's parameters
       `theta` (a 2x3 affine matrix per example by default). The regression
       layer starts with a zero kernel and the transform's identity as
       bias, so an untrained layer passes its input through unchanged;
    2. a grid generator maps each output pixel through `theta` to a point of
       the input (`keras_stn.ops.affine_grid`, or the grid of another
       transform family);
    3. a sampler reads the input at those points
       (`keras_stn.ops.grid_sample`), differentiably with respect to both
       the input and the points, so the whole layer trains end to end.

    It warps images (4-D inputs) and, with the `"affine"`, `"attention"` and
    `"projective"` families, volumes (5-D inputs). With `num_transformers=N`
    it regresses `N` transforms from one localization network and returns
    the `N` warped copies of its input, as the paper's parallel transformers
    on CUB.

    Convention: `theta` maps normalized output coordinates in `[-1, 1]` to
    normalized input coordinates, as `torch.nn.functional.affine_grid`.

    Args:
        localization_net: a Keras layer or model mapping the layer's input
            to a batch of feature vectors `(batch, features)`. `None` builds
            `keras_stn.layers.default_localization_net`, a small conv net,
            when the layer is built.
        transform: the transform family: `"affine"` (6 parameters),
            `"attention"` (3: scale and translation), `"similarity"` (4:
            scale, rotation and translation), `"projective"` (8) or `"tps"`
            (a thin-plate spline on 4x4 control points, 32), or a
            `keras_stn.transforms.Transform` for other options, such as
            `ThinPlateSpline(grid_size=(3, 3))`.
        output_size: `(height, width)` (or `(depth, height, width)`) of the
            output, or `None` to keep the input's size.
        num_transformers: how many transforms to regress and apply.
        merge_mode: how the outputs of several transformers are returned:
            `"concat"` concatenates them along the channels, `"stack"`
            stacks them along a new axis 1, `(batch, num_transformers,
            ...)`. Also applies when `num_transformers=1`.
        mode: sampling mode, `"bilinear"` (trilinear for volumes),
            `"nearest"` (which passes no gradient to `theta`) or
            `"bicubic"` (images only).
        padding_mode: the value of points outside the input: `"zeros"`,
            `"border"` or `"reflection"`.
        align_corners: if `True`, normalized -1 and 1 are the centres of the
            corner pixels; if `False`, their outer edges.
        data_format: `"channels_last"`, `"channels_first"`, or `None` for
            `keras.config.image_data_format()`.
        implementation: `"auto"` samples with the backend's fastest path
            for the call (keras-stn's C++ kernel, PyTorch's `grid_sample`,
            or XLA clusters on TensorFlow in training; the table is in
            `keras_stn.ops.sampling.dispatch`), with the same numbers up to
            float rounding; `"keras"` always with the `keras.ops` sampler
            as it is.
        theta_scale: a positive factor on the regression layer's output,
            which is then the offset of `theta` from the identity. With
            Adam and other optimizers whose steps do not grow with the
            gradient, the transform learns about `theta_scale` times slower
            than the rest of the net: the remedy for a localization net
            that runs away in the first steps (a lower learning rate for it
            alone). `1.0` (the default) regresses `theta` directly.
        normalize_features: if `True` (the default), the localization
            net's feature vectors are scaled to unit length before the
            regression layer. With SGD, the first step of `theta` grows with
            the squared length of the features, which depends on the
            localization net's initializers and width: with Keras' default
            (Glorot) initializers it sent the grid off the image in the
            first steps of the PyTorch STN tutorial's model
            (docs/guides/porting-from-pytorch.md). Unit-length features
            make that step independent of their scale; the kernel starts at
            zero, so the layer still starts exactly at the identity.
            `False` regresses from the features as they are (the paper's
            layer, and that of models saved before this option).
        theta_bound: `None` (the default) regresses `theta` without limits.
            A positive number keeps each parameter within `theta_bound` of
            the identity's: the regression layer (starting at zero) gives
            an offset, and `theta = identity + theta_bound * tanh(offset /
            theta_bound)`. The slope at the identity is still 1, but a
            localization net that runs away can no longer send the sampling
            grid off the input, where zero padding passes no gradient back.
            For example, `theta_bound=1.0` keeps an affine transform's
            scales in `(0, 2)` and its translations within the input.
        antialias: if `True`, where the transform zooms out (its grid is
            sparser than the input's pixels), each output pixel reads a
            prefiltered copy of the input, chosen from the local spacing of
            the grid, as `keras_stn.ops.grid_sample(..., antialias=True)`
            does; the identity and zooming in are unchanged. `False` (the
            default, and that of models saved before this option) samples
            the input as it is.
        **kwargs: base layer arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: a batch of images, `(batch, height, width, channels)`, or of
            volumes, `(batch, depth, height, width, channels)`, or the same
            with channels first.

    Returns:
        The warped batch, `(batch, out_height, out_width, channels)` (or
        channels first, or with a depth axis), with
        `num_transformers * channels` channels for `"concat"` and a new
        axis 1 of size `num_transformers` for `"stack"`.

    Example:

    >>> model = keras.Sequential([
    ...     keras.Input((42, 42, 1)),
    ...     SpatialTransformer(transform="attention", output_size=(28, 28)),
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
        transform: str | transforms.Transform = "affine",
        output_size: Size | None = None,
        num_transformers: int = 1,
        merge_mode: str = "concat",
        mode: str = "bilinear",
        padding_mode: str = "zeros",
        align_corners: bool = False,
        data_format: str | None = None,
        implementation: str = "auto",
        theta_scale: float = 1.0,
        theta_bound: float | None = None,
        normalize_features: bool = True,
        antialias: bool = False,
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
        if (
            isinstance(num_transformers, bool)
            or not isinstance(num_transformers, (int, np.integer))
            or num_transformers < 1
        ):
            raise ValueError(
                "Invalid value for argument `num_transformers`. Expected a "
                "strictly positive integer. "
                f"Received num_transformers={num_transformers!r}"
            )
        if merge_mode not in MERGE_MODES:
            raise ValueError(
                "Invalid value for argument `merge_mode`. Expected one of "
                f"{MERGE_MODES}. Received merge_mode={merge_mode!r}"
            )
        self.localization_net = localization_net
        self.transform = transforms.get(transform)
        self.output_size = standardize_size(
            output_size, "output_size", allow_none=True, rank=None
        )
        self.num_transformers = int(num_transformers)
        self.merge_mode = merge_mode
        self.mode = check_mode(mode)
        self.padding_mode = check_padding_mode(padding_mode)
        self.align_corners = bool(align_corners)
        self.data_format = standardize_data_format(data_format)
        self.implementation = check_implementation(implementation)
        self.theta_scale = check_positive_number(theta_scale, "theta_scale")
        self.theta_bound = check_positive_number(
            theta_bound, "theta_bound", allow_none=True
        )
        self.normalize_features = bool(normalize_features)
        self.antialias = check_bool(antialias, "antialias")
        self.input_spec = keras.layers.InputSpec(min_ndim=4, max_ndim=5)
        # The spatial shape the layer was built for (`build`).
        self._built_spatial_shape = None

    def build(self, input_shape):
        spatial_rank = len(input_shape) - 2
        self.transform.check_spatial_rank(spatial_rank)
        if (
            spatial_rank == 3
            and None in self._spatial_shape(input_shape)
            and self.localization_net is None
        ):
            raise ValueError(
                "The default localization net needs the spatial sizes of "
                "volumes, since it flattens its feature maps. For volumes "
                "of any size, pass a `localization_net` that maps them to "
                "feature vectors, for example one that ends in global "
                f"pooling. Received an input of shape {tuple(input_shape)}"
            )
        if self.output_size is not None and (
            len(self.output_size) != spatial_rank
        ):
            raise ValueError(
                "Invalid value for argument `output_size`. Expected "
                f"{spatial_rank} sizes for an input with {spatial_rank} "
                f"spatial axes. Received output_size={self.output_size} for "
                f"an input of shape {tuple(input_shape)}"
            )
        check_mode(self.mode, spatial_rank)
        self._built_spatial_shape = self._spatial_shape(input_shape)
        if self.localization_net is None:
            self.localization_net = default_localization_net(
                self.data_format,
                self.dtype_policy,
                spatial_rank,
                self._spatial_shape(input_shape),
            )
        features_shape = self._localization_features_shape(input_shape)
        if len(features_shape) != 2 or features_shape[-1] is None:
            raise ValueError(
                "The `localization_net` must map the input to a batch of "
                "feature vectors of shape (batch, features). Received an "
                f"output shape of {features_shape} for an input of shape "
                f"{input_shape}"
            )
        identity = np.tile(
            self.transform.identity(spatial_rank).flatten(),
            self.num_transformers,
        )
        # With a scale or a bound, the regression layer gives the offset
        # from the identity, added in `compute_theta`.
        self._identity_theta = identity
        bias = np.zeros_like(identity) if self._regresses_offset else identity
        # Under a float16 or bfloat16 policy, theta is still regressed in
        # float32, so that sampling coordinates keep sub-pixel precision.
        low_precision = is_low_precision(self.compute_dtype)
        self.theta_regressor = keras.layers.Dense(
            identity.size,
            kernel_initializer="zeros",
            bias_initializer=keras.initializers.Constant(bias.tolist()),
            dtype="float32" if low_precision else self.dtype_policy,
            name="theta_regressor",
        )
        self.theta_regressor.build(features_shape)

    def _localization_features_shape(self, input_shape):
        """Build the localization net; the shape of its features."""
        try:
            if not self.localization_net.built:
                self.localization_net.build(input_shape)
            return self.localization_net.compute_output_shape(input_shape)
        except Exception as error:
            layout = (
                "channels first, (batch, channels, *spatial)"
                if self.data_format == "channels_first"
                else "channels last, (batch, *spatial, channels)"
            )
            raise ValueError(
                "The `localization_net` could not take the layer's input, of "
                f"shape {tuple(input_shape)}: it receives the input as it "
                f"is, {layout} (data_format={self.data_format!r}). Give it "
                "layers of that data format, or start it with "
                "`keras.layers.Permute` to move the channels. The error was: "
                f"{error}"
            ) from error

    def compute_theta(self, inputs: Tensor) -> Tensor:
        """Return the transform parameters that the layer applies to `inputs`.

        Args:
            inputs: a batch of images, as for calling the layer.

        Returns:
            `theta`, a float tensor of shape `(batch, *parameter_shape)`
            (for example `(batch, 2, 3)` for 2-D affine transforms), with an
            axis of size `num_transformers` after the batch when that is
            more than 1. It is float32 under a float16 or bfloat16 dtype
            policy, so that sampling coordinates keep sub-pixel precision.
        """
        if not self.built:
            # Called before the layer: build it for these inputs.
            self.build(tuple(ops.shape(inputs)))
        features = self.localization_net(inputs)
        if self.normalize_features:
            features = ops.cast(features, self.theta_regressor.compute_dtype)
            squared_length = ops.sum(ops.square(features), -1, keepdims=True)
            # All-zero features (dead ReLUs) stay zero: theta is the bias.
            features = features * ops.rsqrt(squared_length + 1e-3)
        theta = self.theta_regressor(features)
        if self._regresses_offset:
            offset = theta * self.theta_scale
            if self.theta_bound is not None:
                offset = ops.tanh(offset / self.theta_bound) * self.theta_bound
            theta = ops.cast(self._identity_theta, theta.dtype) + offset
        spatial_rank = len(inputs.shape) - 2
        return ops.reshape(theta, (-1, *self._theta_shape(spatial_rank)))

    def map_points(self, inputs: Tensor, points: Tensor) -> Tensor:
        """Map points of the layer's output to the input points they sample.

        `compute_theta(inputs)`, then the family's `map_points`: for
        example, to carry a box or keypoints found on the transformer's
        output back to the input it came from. Points are normalized
        coordinates in `[-1, 1]` (the convention of `align_corners`;
        `keras_stn.ops.theta_to_pixel_matrix` gives the map in pixels for
        the affine and projective families).

        Args:
            inputs: a batch of images (or volumes), as for calling the
                layer.
            points: float tensor of shape `(batch, num_points, 2)` (or `3`
                for volumes): normalized `(x, y[, z])` of the output. With
                `num_transformers > 1`, the same points for every
                transformer, or `(batch, num_transformers, num_points, 2)`.

        Returns:
            The normalized `(x, y[, z])` of the input that each point
            samples, `(batch, num_points, 2)` (or `3`), with an axis of size
            `num_transformers` after the batch when that is more than 1.

        Example:

        >>> layer = SpatialTransformer(output_size=(16, 16))
        >>> images = np.random.rand(2, 32, 32, 1).astype("float32")
        >>> corners = np.array([[[-1.0, -1.0], [1.0, 1.0]]] * 2, "float32")
        >>> mapped = layer.map_points(images, corners)  # untrained: identity
        >>> ops.convert_to_numpy(mapped)[0].tolist()
        [[-1.0, -1.0], [1.0, 1.0]]
        """
        theta = self.compute_theta(inputs)
        spatial_rank = len(inputs.shape) - 2
        points = to_tensor(points, "points")
        count = self.num_transformers
        if count == 1:
            return self.transform.map_points(theta, points)
        if len(points.shape) == 3:
            points = ops.repeat(points[:, None], count, axis=1)
        if len(points.shape) != 4 or points.shape[1] != count:
            raise ValueError(
                "Invalid shape for argument `points`. Expected a tensor of "
                f"shape (batch, num_points, {spatial_rank}) or (batch, "
                f"{count}, num_points, {spatial_rank}) for a layer of "
                f"num_transformers={count}. "
                f"Received points.shape={tuple(points.shape)}"
            )
        shape = self.transform.parameter_shape(spatial_rank)
        mapped = self.transform.map_points(
            ops.reshape(theta, (-1, *shape)),
            ops.reshape(points, (-1, *points.shape[2:])),
        )
        return ops.reshape(mapped, (-1, count, *mapped.shape[1:]))

    @property
    def _regresses_offset(self):
        """Whether the regression layer gives theta's offset from identity."""
        return self.theta_scale != 1.0 or self.theta_bound is not None

    def _theta_shape(self, spatial_rank):
        """The shape of one example's `theta`."""
        shape = self.transform.parameter_shape(spatial_rank)
        if self.num_transformers > 1:
            return (self.num_transformers, *shape)
        return shape

    def call(self, inputs, training=None):
        return self.warp(inputs, self.compute_theta(inputs), training)

    def warp(
        self, inputs: Tensor, theta: Tensor, training: bool | None = None
    ) -> Tensor:
        """Warp `inputs` with given transform parameters.

        What calling the layer does, with `theta` given instead of regressed:
        for example to apply the transforms that `compute_theta` found on a
        small input to a larger version of it (coordinates are normalized,
        so the same `theta` fits any size).

        Args:
            inputs: a batch of images, as for calling the layer.
            theta: the transforms' parameters, shaped as `compute_theta`
                returns them.
            training: whether the call is part of a training step. On
                TensorFlow, `implementation="auto"` compiles the sampler
                with XLA in training only, where its backward pass gains
                most; elsewhere (inference, `model.export`) it records
                plain TensorFlow ops, which every exporter and converter
                accepts (tf2onnx cannot convert an XLA-compiled function).

        Returns:
            The warped batch, as calling the layer returns it.
        """
        images, data_format = prepare_images(
            inputs,
            self.mode,
            self.padding_mode,
            self.data_format,
            self.implementation,
        )
        input_size = self._input_size(images)
        output_size = self.output_size or input_size
        theta = to_tensor(theta, "theta")
        theta_shape = self._theta_shape(len(input_size))
        check_shape(
            theta,
            "theta",
            rank=len(theta_shape) + 1,
            last_dims=theta_shape,
            description=f"(batch, {', '.join(map(str, theta_shape))})",
        )
        if self.num_transformers > 1:
            parameter_shape = self.transform.parameter_shape(len(input_size))
            theta = ops.reshape(theta, (-1, *parameter_shape))
        if are_static(input_size):
            points = self.transform.pixel_grid(
                theta, input_size, output_size, self.align_corners
            )
        else:
            sizes = spatial_sizes(images)
            output_size = self.output_size or tuple(reversed(sizes))
            points = self._points_for_any_size(theta, sizes, output_size)
        # The transformers' points of one example sample the same image:
        # shape (batch, num_transformers, *output_size).
        if self.num_transformers > 1:
            shape = (-1, self.num_transformers, *output_size)
            points = [ops.reshape(p, shape) for p in points]
        else:
            points = [p[:, None] for p in points]
        outputs = sample_pixels(
            images,
            points,
            self.mode,
            self.padding_mode,
            self.align_corners,
            self.implementation,
            self.antialias,
            inference=not training,
        )
        return self._merge(outputs, data_format)

    def _input_size(self, images):
        """The spatial sizes of channels-last `images`, as `images.shape`
        gives them, or as the layer was built where TorchScript's tracer
        gives them as tensors (the torch ONNX export of a model whose batch
        size only is dynamic: the other sizes are those of its inputs)."""
        input_size = tuple(images.shape[1:-1])
        if (
            keras.backend.backend() == "torch"
            and not are_static(input_size)
            and self._built_spatial_shape is not None
            and are_static(self._built_spatial_shape)
        ):
            import torch

            if torch.jit.is_tracing():
                return self._built_spatial_shape
        return input_size

    def _points_for_any_size(self, theta, input_size, output_size):
        """The sampling points, in a graph traced for inputs of any size.

        TensorFlow traces such graphs (`model.export` of an input with
        unknown sizes, or `fit` on a second image size, which relaxes the
        traced shapes), and so do JAX's `model.export` (with symbolic sizes)
        and `torch.export` (with dynamic sizes); the sizes are then only
        known when the graph runs. The points come from the family's
        normalized grid, as `grid_sample` takes them: the identity is then
        exact up to float rounding only.

        Args:
            theta: the parameters, `(batch, *parameter_shape)`.
            input_size: the input's sizes, in the order `x, y[, z]`
                (`spatial_sizes`).
            output_size: `self.output_size`, or the input's sizes.
        """
        if not (are_static(output_size) or self.transform.unknown_sizes):
            raise ValueError(
                f"SpatialTransformer(transform={self.transform!r}, "
                "output_size=None) gives outputs of the input's spatial "
                "sizes, which this traced graph does not know, and this "
                "family's grid needs them. Pass `output_size` to use it on "
                "inputs of unknown sizes. Received an input of sizes "
                f"{tuple(reversed(input_size))}"
            )
        grid = self.transform.normalized_grid(
            theta, output_size, self.align_corners
        )
        return [
            unnormalize(grid[..., axis], size, self.align_corners)
            for axis, size in enumerate(input_size)
        ]

    def _merge(self, outputs, data_format):
        """Lay out `(batch, num_transformers, *spatial, channels)` outputs."""
        if self.num_transformers == 1 and self.merge_mode != "stack":
            outputs = outputs[:, 0]
            if data_format == "channels_first":
                return ops.moveaxis(outputs, -1, 1)
            return outputs
        if data_format == "channels_first":
            outputs = ops.moveaxis(outputs, -1, 2)
        if self.merge_mode == "stack":
            return outputs
        shape = ops.shape(outputs)
        if data_format == "channels_first":
            return ops.reshape(outputs, (-1, shape[1] * shape[2], *shape[3:]))
        outputs = ops.moveaxis(outputs, 1, -2)
        return ops.reshape(outputs, (-1, *shape[2:-1], shape[1] * shape[-1]))

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        output_size = self.output_size or self._spatial_shape(input_shape)
        channels_first = self.data_format == "channels_first"
        channels = input_shape[1 if channels_first else -1]
        if self.merge_mode == "stack":
            if channels_first:
                return (
                    input_shape[0],
                    self.num_transformers,
                    channels,
                    *output_size,
                )
            return (
                input_shape[0],
                self.num_transformers,
                *output_size,
                channels,
            )
        if channels is not None:
            channels *= self.num_transformers
        if channels_first:
            return (input_shape[0], channels, *output_size)
        return (input_shape[0], *output_size, channels)

    def _spatial_shape(self, input_shape):
        if self.data_format == "channels_first":
            return tuple(input_shape[2:])
        return tuple(input_shape[1:-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "localization_net": keras.saving.serialize_keras_object(
                    self.localization_net
                ),
                "transform": keras.saving.serialize_keras_object(
                    self.transform
                ),
                "output_size": self.output_size,
                "num_transformers": self.num_transformers,
                "merge_mode": self.merge_mode,
                "mode": self.mode,
                "padding_mode": self.padding_mode,
                "align_corners": self.align_corners,
                "data_format": self.data_format,
                "implementation": self.implementation,
                "theta_scale": self.theta_scale,
                "theta_bound": self.theta_bound,
                "normalize_features": self.normalize_features,
                "antialias": self.antialias,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("localization_net") is not None:
            config["localization_net"] = keras.saving.deserialize_keras_object(
                config["localization_net"]
            )
        if "transform" in config:
            config["transform"] = transforms.get(config["transform"])
        # Models saved before the option regressed from raw features.
        config.setdefault("normalize_features", False)
        return cls(**config)
