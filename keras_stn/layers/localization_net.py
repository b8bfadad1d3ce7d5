"""The default localization network of `SpatialTransformer`."""

import keras

from keras_stn.ops.validation import standardize_data_format

# Per number of spatial axes: the convolution and pooling layers, and the
# convolutions' kernel size (smaller for volumes, whose kernels are cubes).
_CONVOLUTIONS = {
    2: (keras.layers.Conv2D, keras.layers.MaxPooling2D, 5),
    3: (keras.layers.Conv3D, keras.layers.MaxPooling3D, 3),
}


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
    For volumes, the same with 3x3x3 convolutions and 2x2x2 pooling. It maps
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
    convolution, pooling, kernel_size = _CONVOLUTIONS[spatial_rank]
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
        layers.append(pooling(2, padding="same", dtype=dtype))
    layers.append(keras.layers.Flatten(dtype=dtype))
    layers.append(keras.layers.Dense(50, activation="relu", dtype=dtype))
    return keras.Sequential(layers, name="localization_net")
