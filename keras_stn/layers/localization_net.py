"""The default localization network of `SpatialTransformer`."""

import keras


def default_localization_net(data_format=None, dtype=None):
    """Build the default localization network: a small convolutional net.

    In the spirit of the paper's MNIST localization networks (Jaderberg et
    al., 2015, appendix A): two convolutions of 20 filters of 5x5, each
    followed by 2x2 max pooling, then a fully connected layer of 50 units.
    It maps a batch of images to a batch of feature vectors, from which
    `SpatialTransformer` regresses the transform. Sized for small images
    (up to about 64x64); give `SpatialTransformer` a net of your own for
    larger ones.

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

    def conv_block():
        return [
            keras.layers.Conv2D(
                20,
                5,
                padding="same",
                activation="relu",
                data_format=data_format,
                dtype=dtype,
            ),
            keras.layers.MaxPooling2D(
                2, padding="same", data_format=data_format, dtype=dtype
            ),
        ]

    return keras.Sequential(
        [
            *conv_block(),
            *conv_block(),
            keras.layers.Flatten(data_format=data_format, dtype=dtype),
            keras.layers.Dense(50, activation="relu", dtype=dtype),
        ],
        name="localization_net",
    )
