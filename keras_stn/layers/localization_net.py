"""The default localization network of `SpatialTransformer`."""

import keras

from keras_stn.ops.validation import standardize_data_format


def default_localization_net(
    data_format: str | None = None, dtype=None
) -> keras.Sequential:
    """Build the default localization network: a small convolutional net.

    In the spirit of the paper's MNIST localization networks (Jaderberg et
    al., 2015, appendix A): two convolutions of 20 filters of 5x5, each
    followed by 2x2 max pooling, then a fully connected layer of 50 units.
    It maps a batch of images to a batch of feature vectors, from which
    `SpatialTransformer` regresses the transform. Sized for small images
    (up to about 64x64); give `SpatialTransformer` a net of your own for
    larger ones. Channels-first input is transposed to channels last first,
    since TensorFlow has no channels-first convolution on the CPU.

    Args:
        data_format: `"channels_last"`, `"channels_first"`, or `None` for
            `keras.config.image_data_format()`.
        dtype: the dtype policy of its layers.

    Returns:
        An unbuilt `keras.Sequential` mapping `(batch, ...image...)` to
        `(batch, 50)`.

    Example:

    >>> net = default_localization_net("channels_last")
    >>> net.build((None, 28, 28, 1))
    >>> net.compute_output_shape((None, 28, 28, 1))
    (None, 50)
    """

    layers = []
    if standardize_data_format(data_format) == "channels_first":
        layers.append(keras.layers.Permute((2, 3, 1), dtype=dtype))
    for _ in range(2):
        layers.append(
            keras.layers.Conv2D(
                20, 5, padding="same", activation="relu", dtype=dtype
            )
        )
        layers.append(keras.layers.MaxPooling2D(2, padding="same", dtype=dtype))
    layers.append(keras.layers.Flatten(dtype=dtype))
    layers.append(keras.layers.Dense(50, activation="relu", dtype=dtype))
    return keras.Sequential(layers, name="localization_net")
