"""The default localization network of `SpatialTransformer`."""

import math

import keras

from keras_stn.ops.validation import standardize_data_format

# Per number of spatial axes: the convolution layer and its kernel size
# (smaller for volumes, whose kernels are cubes).
_CONVOLUTIONS = {
    2: (keras.layers.Conv2D, 5),
    3: (keras.layers.Conv3D, 3),
}


@keras.saving.register_keras_serializable(package="keras_stn")
class AxiswiseMaxPooling(keras.layers.Layer):
    """Max pooling of channels-last inputs, exportable to ONNX on JAX too.

    `keras.layers.MaxPooling2D(pool_size, padding=padding)`
    (`MaxPooling3D` for volumes), computed on JAX one spatial axis at a
    time, so that it exports to ONNX there too. On JAX, jax2onnx (0.17)
    exports Keras' 2-D and 3-D max pooling as an ONNX `MaxPool` over the
    batch and channel axes too, a window of 4 or 5 axes, which onnxruntime
    refuses at run time ("Unsupported pooling size"). This layer pools each
    spatial axis in turn with a 1-D max pooling of the input reshaped to
    `(-1, size, rest)`, which jax2onnx exports as a `MaxPool` over 3 axes,
    which onnxruntime runs. The outputs are exactly those of Keras' layers,
    since the maximum over a window is the maximum over one axis of the
    maxima over the others, and so are the gradients: the last axis is
    pooled first, so that a window's gradient goes to its first maximum in
    row-major order, as with Keras' layers on JAX. On TensorFlow and
    torch, whose exporters take Keras' max pooling, and on which a single
    pooling is faster, it is Keras' max pooling itself.

    Args:
        pool_size: the size of the window along each spatial axis, and its
            stride.
        padding: `"valid"` or `"same"`, as in `keras.layers.MaxPooling2D`.

    Input shape: `(batch, *spatial_sizes, channels)`, every size known but
        the batch size.

    Example:

    >>> import numpy as np
    >>> images = np.arange(2 * 5 * 5 * 3, dtype="float32").reshape(2, 5, 5, 3)
    >>> pooled = AxiswiseMaxPooling(2, padding="same")(images)
    >>> expected = keras.layers.MaxPooling2D(2, padding="same")(images)
    >>> bool(keras.ops.all(pooled == expected))
    True
    """

    def __init__(self, pool_size: int = 2, padding: str = "same", **kwargs):
        super().__init__(**kwargs)
        if padding not in ("valid", "same"):
            raise ValueError(
                "Invalid value for argument `padding`. Expected 'valid' or "
                f"'same'. Received padding={padding!r}"
            )
        self.pool_size = int(pool_size)
        self.padding = padding

    def build(self, input_shape):
        if len(input_shape) < 3 or None in input_shape[1:]:
            raise ValueError(
                "`AxiswiseMaxPooling` needs an input of shape (batch, "
                "*spatial_sizes, channels) whose sizes but the batch size "
                f"are known. Received an input of shape {tuple(input_shape)}"
            )
        self.input_spec = keras.layers.InputSpec(shape=(None, *input_shape[1:]))

    def call(self, inputs):
        if self.padding == "same":
            inputs = self._pad_to_same_size(inputs)
        if keras.backend.backend() != "jax":
            return keras.ops.max_pool(
                inputs,
                self.pool_size,
                strides=self.pool_size,
                padding="valid",
                data_format="channels_last",
            )
        sizes = list(inputs.shape[1:])
        outputs = inputs
        for axis in reversed(range(len(sizes) - 1)):
            rest = math.prod(sizes[axis + 1 :])
            outputs = keras.ops.reshape(outputs, (-1, sizes[axis], rest))
            outputs = keras.ops.max_pool(
                outputs,
                self.pool_size,
                strides=self.pool_size,
                padding="valid",
                data_format="channels_last",
            )
            sizes[axis] = (sizes[axis] - self.pool_size) // self.pool_size + 1
        return keras.ops.reshape(outputs, (-1, *sizes))

    def _pad_to_same_size(self, inputs):
        """Pad with -inf as `"same"` pads: half before, the rest after.

        Explicit, rather than Keras' `"same"`, which torch's backend
        implements with a replicate padding whose backward Inductor
        (`torch.compile`, `jit_compile=True`) fails to compile on
        channels-last tensors; and by concatenation, rather than
        `keras.ops.pad`, which creates a Keras operation on every call,
        whose global name registry `torch.compile(fullgraph=True)` cannot
        trace past.
        """
        for axis, size in enumerate(inputs.shape[1:-1], start=1):
            total = self._pooled_size(size) * self.pool_size - size
            if total == 0:
                continue
            edge = inputs[(slice(None),) * axis + (slice(0, 1),)]
            filler = keras.ops.full_like(edge, float("-inf"))
            before, after = total // 2, total - total // 2
            parts = (
                [keras.ops.repeat(filler, before, axis=axis)] if before else []
            )
            parts += [inputs, keras.ops.repeat(filler, after, axis=axis)]
            inputs = keras.ops.concatenate(parts, axis=axis)
        return inputs

    def _pooled_size(self, size):
        if size is None:
            return None
        if self.padding == "same":
            return -(-size // self.pool_size)
        return (size - self.pool_size) // self.pool_size + 1

    def compute_output_shape(self, input_shape):
        spatial = [self._pooled_size(size) for size in input_shape[1:-1]]
        return (input_shape[0], *spatial, input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update({"pool_size": self.pool_size, "padding": self.padding})
        return config


# Images of an unknown size, or larger than this along an axis, are resized
# to this size first, which bounds the net's cost and its number of weights.
LARGEST_IMAGE_SIZE = 64


def default_localization_net(
    data_format: str | None = None,
    dtype=None,
    spatial_rank: int = 2,
    input_size: tuple[int | None, ...] | None = None,
) -> keras.Sequential:
    """Build the default localization network: a small convolutional net.

    In the spirit of the paper's MNIST localization networks (Jaderberg et
    al., 2015, appendix A): two convolutions of 20 filters of 5x5, each
    followed by 2x2 max pooling, then a fully connected layer of 50 units.
    For volumes, the same with 3x3x3 convolutions and 2x2x2 pooling. The
    pooling is `AxiswiseMaxPooling`, `MaxPooling2D(2, padding="same")`
    (`MaxPooling3D`) in a form that exports to ONNX on JAX too. It maps
    a batch of images to a batch of feature vectors, from which
    `SpatialTransformer` regresses the transform. Images of an unknown size
    (`keras.Input((None, None, channels))`) or larger than 64 pixels along
    an axis are first resized to 64x64 (bilinearly, with antialiasing), so
    that the net works at any size at a bounded cost; volumes need known
    sizes. Channels-first input is transposed to channels last first,
    since TensorFlow has no channels-first convolution on the CPU.

    Args:
        data_format: `"channels_last"`, `"channels_first"`, or `None` for
            `keras.config.image_data_format()`.
        dtype: the dtype policy of its layers.
        spatial_rank: 2 for images, 3 for volumes.
        input_size: the input's spatial sizes (`None` for one unknown), or
            `None` if not known.

    Returns:
        An unbuilt `keras.Sequential` mapping `(batch, ...image...)` to
        `(batch, 50)`.

    Example:

    >>> net = default_localization_net("channels_last")
    >>> net.build((None, 28, 28, 1))
    >>> net.compute_output_shape((None, 28, 28, 1))
    (None, 50)
    """
    if spatial_rank not in _CONVOLUTIONS:
        raise ValueError(
            "Invalid value for argument `spatial_rank`. Expected 2 (images) "
            f"or 3 (volumes). Received spatial_rank={spatial_rank!r}"
        )
    convolution, kernel_size = _CONVOLUTIONS[spatial_rank]
    layers = []
    if standardize_data_format(data_format) == "channels_first":
        order = tuple(range(2, spatial_rank + 2)) + (1,)
        layers.append(keras.layers.Permute(order, dtype=dtype))
    if spatial_rank == 2 and any(
        size is None or size > LARGEST_IMAGE_SIZE for size in input_size or ()
    ):
        layers.append(
            keras.layers.Resizing(
                LARGEST_IMAGE_SIZE,
                LARGEST_IMAGE_SIZE,
                antialias=True,
                data_format="channels_last",
                dtype=dtype,
            )
        )
    for _ in range(2):
        layers.append(
            convolution(
                20, kernel_size, padding="same", activation="relu", dtype=dtype
            )
        )
        layers.append(AxiswiseMaxPooling(2, padding="same", dtype=dtype))
    layers.append(keras.layers.Flatten(dtype=dtype))
    layers.append(keras.layers.Dense(50, activation="relu", dtype=dtype))
    return keras.Sequential(layers, name="localization_net")
