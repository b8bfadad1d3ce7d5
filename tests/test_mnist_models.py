"""The distorted-MNIST classifiers, `examples/mnist_models.py`: parameter
counts against the paper's architectures counted here, the transformer's
start at the identity, and one training step."""

import functools

import keras
import numpy as np
import pytest
from scipy import ndimage

from keras_stn import SpatialTransformer
from keras_stn.transforms import Affine
from keras_stn.transforms import Projective
from keras_stn.transforms import ThinPlateSpline

import mnist_models

# `(input_size, output_size)` of the experiments: R, P and E on 28x28,
# RTS on 42x42 and TC on 60x60, zoomed to 28x28 by the transformer.
SIZES = [(28, 28), (42, 28), (60, 28)]
FAMILIES = {
    "affine": (Affine, 6),
    "projective": (Projective, 8),
    "tps": (ThinPlateSpline, 32),
}


@functools.cache
def classifier(model, input_size, output_size, transform="affine"):
    """`build_classifier(...)`, built once per module (do not train it)."""
    return mnist_models.build_classifier(
        model, input_size, output_size, transform
    )


def dense_count(inputs, units):
    """The parameters of a dense layer: kernel and bias."""
    return (inputs + 1) * units


def conv_count(channels, kernel, filters):
    """The parameters of a square `kernel` convolution with bias."""
    return (channels * kernel**2 + 1) * filters


def fcn_count(input_size, width):
    """The paper's FCN: two dense layers of `width`, then 10 classes."""
    return (
        dense_count(input_size**2, width)
        + dense_count(width, width)
        + dense_count(width, 10)
    )


def cnn_count(input_size, width):
    """The CNN: two 5x5 "same" convolutions of `width`, each with 2x2 max
    pooling, then 10 classes."""
    side = input_size // 2 // 2
    return (
        conv_count(1, 5, width)
        + conv_count(width, 5, width)
        + dense_count(side**2 * width, 10)
    )


def st_count(model, input_size, output_size, parameters=6):
    """The paper's ST-FCN or ST-CNN: localization net, regressor of the
    transform's `parameters`, and the classifier on the output size."""
    if model == "st-fcn":
        localization = dense_count(input_size**2, 32) + 2 * dense_count(32, 32)
        features, head = 32, fcn_count(output_size, 128)
    else:
        # 2x2 pooling, then two (5x5 "same" convolution of 20, 2x2 "same"
        # pooling, which rounds up).
        side = input_size // 2
        for _ in range(2):
            side = -(-side // 2)
        localization = (
            conv_count(1, 5, 20)
            + conv_count(20, 5, 20)
            + dense_count(side**2 * 20, 50)
        )
        features, head = 50, cnn_count(output_size, 32)
    return localization + dense_count(features, parameters) + head


def fake_digits(count, size, seed=0):
    """float32 images `(count, size, size, 1)`: random strokes in [0, 1]."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(size=(count, size, size, 1)).astype("float32")
    images[images < 0.6] = 0.0
    return images


@pytest.mark.parametrize("input_size,output_size", SIZES)
@pytest.mark.parametrize("model", ["st-fcn", "st-cnn"])
def test_st_nets_have_the_paper_architecture(model, input_size, output_size):
    net = classifier(model, input_size, output_size)
    assert net.count_params() == st_count(model, input_size, output_size)
    transformer = net.layers[0]
    assert isinstance(transformer, SpatialTransformer)
    assert transformer.name == "spatial_transformer"
    assert isinstance(transformer.transform, Affine)
    assert transformer.output_size == (output_size, output_size)
    assert net.input_shape == (None, input_size, input_size, 1)
    assert net.output_shape == (None, 10)


@pytest.mark.parametrize("input_size,output_size", SIZES)
@pytest.mark.parametrize("model", ["fcn", "cnn"])
def test_plain_nets_match_their_st_net_in_parameters(
    model, input_size, output_size
):
    net = classifier(model, input_size, output_size)
    target = classifier(f"st-{model}", input_size, output_size).count_params()
    kinds = (
        keras.layers.Conv2D,
        keras.layers.MaxPooling2D,
        keras.layers.Flatten,
        keras.layers.Dense,
    )
    assert all(isinstance(layer, kinds) for layer in net.layers)
    weighted = [layer for layer in net.layers if layer.weights]
    if model == "fcn":
        widths = [layer.units for layer in weighted]
        count = functools.partial(fcn_count, input_size)
    else:
        widths = [layer.filters for layer in weighted[:2]]
        widths.append(weighted[2].units)
        count = functools.partial(cnn_count, input_size)
    width = widths[0]
    assert widths == [width, width, 10]
    assert net.count_params() == count(width)
    assert abs(net.count_params() / target - 1) < 0.03
    # The closest width: one more or one less is no closer to the target.
    for other in (width - 1, width + 1):
        assert abs(count(width) - target) <= abs(count(other) - target)


@pytest.mark.parametrize("transform", sorted(FAMILIES))
@pytest.mark.parametrize("model", ["st-fcn", "st-cnn"])
def test_transformer_starts_at_the_identity(model, transform):
    family, parameters = FAMILIES[transform]
    net = classifier(model, 28, 28, transform)
    assert net.count_params() == st_count(model, 28, 28, parameters)
    transformer = net.get_layer("spatial_transformer")
    assert net.layers[0] is transformer
    assert isinstance(transformer.transform, family)
    images = fake_digits(4, 28)
    theta = keras.ops.convert_to_numpy(transformer.compute_theta(images))
    if transform == "affine":
        identity = [[1, 0, 0], [0, 1, 0]]
    elif transform == "projective":
        identity = [1, 0, 0, 0, 1, 0, 0, 0]
    else:
        # The 4x4 control points, `(x, y)` on [-1, 1], row by row.
        xs, ys = np.meshgrid(np.linspace(-1, 1, 4), np.linspace(-1, 1, 4))
        identity = np.stack([xs.ravel(), ys.ravel()], axis=-1)
    np.testing.assert_allclose(
        theta, np.broadcast_to(identity, theta.shape), atol=1e-6
    )
    outputs = keras.ops.convert_to_numpy(transformer(images))
    np.testing.assert_allclose(outputs, images, atol=1e-5)


@pytest.mark.parametrize("input_size", [42, 60])
def test_zooming_transformer_starts_by_resizing_the_whole_input(input_size):
    transformer = classifier("st-cnn", input_size, 28).layers[0]
    images = fake_digits(3, input_size)
    outputs = keras.ops.convert_to_numpy(transformer(images))
    # Bilinear resizing with pixel centres aligned as areas (half-pixel).
    axis = (np.arange(28) + 0.5) * input_size / 28 - 0.5
    points = np.stack(np.meshgrid(axis, axis, indexing="ij"))
    expected = [
        ndimage.map_coordinates(image[..., 0], points, order=1)
        for image in images
    ]
    np.testing.assert_allclose(outputs[..., 0], expected, atol=1e-5)


def test_output_size_defaults_to_the_input_size():
    net = mnist_models.build_classifier("st-fcn", 42)
    assert net.layers[0].output_size == (42, 42)
    assert net.count_params() == st_count("st-fcn", 42, 42)


@pytest.mark.parametrize("input_size,output_size", SIZES)
@pytest.mark.parametrize("model", mnist_models.MODELS)
def test_nets_output_class_probabilities(model, input_size, output_size):
    net = classifier(model, input_size, output_size)
    probabilities = keras.ops.convert_to_numpy(net(fake_digits(4, input_size)))
    assert probabilities.shape == (4, 10)
    assert np.all(probabilities >= 0.0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    has_transformer = any(
        isinstance(layer, SpatialTransformer) for layer in net.layers
    )
    assert has_transformer == model.startswith("st-")


def test_training_reaches_the_transformer():
    net = mnist_models.build_classifier("st-fcn", 28)
    regressor = net.get_layer("spatial_transformer").theta_regressor
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in regressor.weights)
    assert not np.any(kernel)
    net.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    labels = np.random.default_rng(1).integers(0, 10, 32)
    history = net.fit(
        fake_digits(32, 28), labels, batch_size=16, epochs=1, verbose=0
    )
    assert np.isfinite(history.history["loss"][0])
    trained = [keras.ops.convert_to_numpy(w) for w in regressor.weights]
    assert np.abs(trained[0] - kernel).max() > 1e-5
    assert np.abs(trained[1] - bias).max() > 1e-5


def test_the_cluttered_recipe_reaches_the_layers():
    net = mnist_models.build_classifier(
        "st-cnn", 60, 28, theta_scale=0.1, localization_batch_norm=True
    )
    layer = net.get_layer("spatial_transformer")
    assert layer.theta_scale == 0.1
    norms = [
        sublayer
        for sublayer in layer.localization_net.layers
        if isinstance(sublayer, keras.layers.BatchNormalization)
    ]
    assert len(norms) == 2
    # The transformer still starts at the identity.
    digits = fake_digits(2, 60)
    theta = keras.ops.convert_to_numpy(layer.compute_theta(digits))
    np.testing.assert_array_equal(theta, np.tile(np.eye(2, 3), (2, 1, 1)))


def test_unknown_model_is_rejected():
    with pytest.raises(ValueError, match="`model`.*'rnn'"):
        mnist_models.build_classifier("rnn", 28)


@pytest.mark.parametrize("transform", ["shear", "attention"])
def test_unknown_transform_is_rejected(transform):
    with pytest.raises(ValueError, match=f"`transform`.*'{transform}'"):
        mnist_models.build_classifier("st-cnn", 28, transform=transform)
