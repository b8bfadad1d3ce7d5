"""The distorted-MNIST classifiers of the Spatial Transformer paper.

Jaderberg et al. (2015, appendix A) compare a fully connected net (FCN) and
a convolutional net (CNN) with the same nets behind a spatial transformer
(ST-FCN, ST-CNN), each pair with about the same number of parameters:

- CNN: two 5x5 convolutions of `width` filters with "same" padding, each
  followed by 2x2 max pooling, then softmax. (The paper's CNN has 9x9 and
  7x7 convolutions without padding; on 28x28 inputs those leave 2x2 maps,
  which underfit in the few epochs that a CPU affords: 84% training
  accuracy on P after 8 epochs.)
- FCN: two fully connected layers of `width` units, softmax.
- ST-FCN: a transformer whose localization net is 3 fully connected layers
  of 32 units, then an FCN of width 128.
- ST-CNN: a transformer whose localization net is 2x2 max pooling, then
  two 5x5 convolutions of 20 filters each followed by 2x2 max pooling, then
  a fully connected layer of 50 units, then a CNN of width 32.

The plain nets' `width` is chosen so that their parameter count matches
the ST net's with an affine transformer. All layers but the last use ReLU.
"""

import bisect
import math
from collections.abc import Callable

import keras

from keras_stn import SpatialTransformer

from arguments import check_choice

MODELS = ("fcn", "cnn", "st-fcn", "st-cnn")
TRANSFORMS = ("affine", "projective", "tps")
NUM_CLASSES = 10
ST_CNN_WIDTH = 32
ST_FCN_WIDTH = 128
_MAX_WIDTH = 1024


def build_classifier(
    model: str,
    input_size: int,
    output_size: int | None = None,
    transform: str = "affine",
    theta_scale: float = 1.0,
    localization_batch_norm: bool = False,
    antialias: bool = False,
) -> keras.Sequential:
    """Build one of the paper's digit classifiers (uncompiled).

    Args:
        model: one of `MODELS`.
        input_size: the side of the square, one-channel input images.
        output_size: the side of the transformer's square output; `None`
            keeps `input_size`. The plain nets are sized to match the ST
            net with this output size.
        transform: the ST nets' transform family, one of `TRANSFORMS`.
            Ignored by the plain nets.
        theta_scale: the ST nets' `SpatialTransformer(theta_scale=...)`:
            below 1, the transformer learns that many times slower.
        localization_batch_norm: whether the ST-CNN's localization net
            normalizes each convolution's output (`BatchNormalization`
            after it), which keeps its features alive where they would
            otherwise die out (translated cluttered MNIST).
        antialias: the ST nets' `SpatialTransformer(antialias=...)`: where
            the transformer zooms out, read a prefiltered input.

    Returns:
        A `keras.Sequential` mapping `(batch, input_size, input_size, 1)`
        images to `(batch, 10)` class probabilities. The ST nets' first
        layer is the `SpatialTransformer`, named `"spatial_transformer"`.

    Example:

    >>> cnn = build_classifier("cnn", input_size=28)
    >>> st_cnn = build_classifier("st-cnn", input_size=28)
    >>> abs(cnn.count_params() / st_cnn.count_params() - 1) < 0.05
    True
    """
    check_choice(model, "model", MODELS)
    check_choice(transform, "transform", TRANSFORMS)
    output_size = output_size or input_size
    if model.startswith("st-"):
        return _st_classifier(
            model,
            input_size,
            output_size,
            transform,
            theta_scale,
            localization_batch_norm,
            antialias,
        )
    return _plain_classifier(model, input_size, output_size)


def _st_classifier(
    model,
    input_size,
    output_size,
    transform,
    theta_scale=1.0,
    localization_batch_norm=False,
    antialias=False,
):
    """An ST-CNN or ST-FCN."""
    if model == "st-cnn":
        localization_net = convolutional_localization_net(
            localization_batch_norm
        )
        head = convolutional_head(ST_CNN_WIDTH)
    else:
        localization_net = dense_localization_net()
        head = dense_head(ST_FCN_WIDTH)
    transformer = SpatialTransformer(
        localization_net,
        transform=transform,
        output_size=(output_size, output_size),
        theta_scale=theta_scale,
        antialias=antialias,
        name="spatial_transformer",
    )
    return _sequential(model, input_size, [transformer, *head])


def _plain_classifier(model, input_size, output_size):
    """The plain net whose parameter count is closest to its ST net's."""
    head = convolutional_head if model == "cnn" else dense_head
    target = _st_classifier(
        f"st-{model}", input_size, output_size, "affine"
    ).count_params()
    shape = (None, input_size, input_size, 1)
    width = closest_width(
        lambda width: count_parameters(head(width), shape), target
    )
    return _sequential(model, input_size, head(width))


def closest_width(count: Callable[[int], int], target: int) -> int:
    """The width whose parameter count is closest to `target`.

    Args:
        count: the parameter count of a net of a given width, growing with
            the width.
        target: the parameter count to match.

    Returns:
        The width from 1 to 1024 whose `count` is closest to `target`.

    Example:

    >>> closest_width(lambda width: 10 * width, 1234)
    123
    """
    # Bisect for the first width at or above the target, then keep it or
    # the one below, whichever is closer.
    widths = range(1, _MAX_WIDTH + 1)
    width = widths[bisect.bisect_left(widths, target, key=count)]
    if width > 1 and target - count(width - 1) < count(width) - target:
        width -= 1
    return width


def count_parameters(
    layers: list[keras.layers.Layer], input_shape: tuple
) -> int:
    """The parameter count of unbuilt convolution, pooling and dense layers.

    Convolutions are `Conv2D` or `Conv3D`, channels last. From their output
    shapes alone, without creating (and, on JAX,
    compiling the initializers of) their weights.

    Args:
        layers: the layers, in the order they apply; layers other than
            convolutions and `Dense` are counted as weightless.
        input_shape: the shape of their input, batch axis included.

    Returns:
        The number of weights of the layers once built.

    Example:

    >>> count_parameters(dense_head(8), (None, 28, 28, 1))
    6442
    """
    count = 0
    shape = input_shape
    for layer in layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv3D)):
            inputs = shape[-1] * math.prod(layer.kernel_size)
            count += (inputs + 1) * layer.filters
        elif isinstance(layer, keras.layers.Dense):
            count += (shape[-1] + 1) * layer.units
        shape = layer.compute_output_shape(shape)
    return count


def _sequential(name, input_size, layers):
    return keras.Sequential(
        [keras.Input((input_size, input_size, 1)), *layers], name=name
    )


def convolutional_head(
    width: int, num_classes: int = NUM_CLASSES
) -> list[keras.layers.Layer]:
    """The CNN's layers: two convolutions with max pooling, then softmax.

    Args:
        width: the filters of each 5x5 convolution.
        num_classes: the units of the softmax layer.

    Returns:
        The layers, unbuilt.
    """
    return [
        keras.layers.Conv2D(width, 5, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(width, 5, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(num_classes, activation="softmax"),
    ]


def dense_head(
    width: int, num_classes: int = NUM_CLASSES
) -> list[keras.layers.Layer]:
    """The FCN's layers: two fully connected layers, then softmax.

    Args:
        width: the units of each of the two hidden layers.
        num_classes: the units of the softmax layer.

    Returns:
        The layers, unbuilt.
    """
    return [
        keras.layers.Flatten(),
        keras.layers.Dense(width, activation="relu"),
        keras.layers.Dense(width, activation="relu"),
        keras.layers.Dense(num_classes, activation="softmax"),
    ]


def convolutional_localization_net(
    batch_norm: bool = False,
) -> keras.Sequential:
    """The ST-CNN's localization net (see the module docstring).

    Args:
        batch_norm: whether each convolution's output is normalized
            (`BatchNormalization` after it).

    Returns:
        A `keras.Sequential` named `"localization_net"`, from images to
        50 features.
    """
    layers = [keras.layers.MaxPooling2D(2)]
    for _ in range(2):
        layers.append(
            keras.layers.Conv2D(20, 5, padding="same", activation="relu")
        )
        if batch_norm:
            layers.append(keras.layers.BatchNormalization())
        layers.append(keras.layers.MaxPooling2D(2, padding="same"))
    layers.append(keras.layers.Flatten())
    layers.append(keras.layers.Dense(50, activation="relu"))
    return keras.Sequential(layers, name="localization_net")


def dense_localization_net() -> keras.Sequential:
    """The ST-FCN's localization net: 3 fully connected layers of 32.

    Returns:
        A `keras.Sequential` named `"localization_net"`, unbuilt, that
        flattens its input.
    """
    layers = [keras.layers.Flatten()]
    layers += [keras.layers.Dense(32, activation="relu") for _ in range(3)]
    return keras.Sequential(layers, name="localization_net")
