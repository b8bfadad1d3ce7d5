"""The training-step benchmark, `benchmarks/training_step.py`: its Keras and
pure-PyTorch CNNs compute the same function, so that the ST-CNN / pure
PyTorch ratio compares one architecture."""

import keras
import numpy as np
import pytest
import torch

import training_step


def copy_weights(keras_cnn, torch_cnn):
    """Copy the Keras CNN's weights into the PyTorch CNN, channels first.

    The first dense layer's inputs are permuted too: Keras flattens its
    feature maps as (height, width, channels), PyTorch as (channels,
    height, width).
    """
    keras_layers = [layer for layer in keras_cnn.layers if layer.weights]
    torch_layers = [
        module
        for module in torch_cnn
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear))
    ]
    flatten = next(
        layer
        for layer in keras_cnn.layers
        if isinstance(layer, keras.layers.Flatten)
    )
    _, height, width, channels = flatten.input.shape
    first_dense = True
    for keras_layer, torch_layer in zip(
        keras_layers, torch_layers, strict=True
    ):
        kernel, bias = keras_layer.get_weights()
        if isinstance(torch_layer, torch.nn.Conv2d):
            kernel = kernel.transpose(3, 2, 0, 1)
        else:
            if first_dense:
                kernel = kernel.reshape(height, width, channels, -1)
                kernel = kernel.transpose(2, 0, 1, 3).reshape(
                    height * width * channels, -1
                )
                first_dense = False
            kernel = kernel.T
        with torch.no_grad():
            torch_layer.weight.copy_(torch.tensor(np.ascontiguousarray(kernel)))
            torch_layer.bias.copy_(torch.tensor(bias))


@pytest.mark.parametrize("name", list(training_step.ARCHITECTURES))
def test_pytorch_cnn_computes_the_keras_cnn(name):
    architecture = training_step.ARCHITECTURES[name]
    keras.utils.set_random_seed(0)
    keras_cnn = training_step.keras_model(architecture)
    torch_cnn = training_step.torch_cnn(architecture)
    copy_weights(keras_cnn, torch_cnn)
    images = np.random.default_rng(1).uniform(
        size=(2, training_step.SIZE, training_step.SIZE, training_step.CHANNELS)
    )
    images = images.astype("float32")
    # The features before the softmax, and the probabilities.
    keras_features = keras.Model(
        keras_cnn.inputs, keras_cnn.layers[-1].input
    ).predict(images, verbose=0)
    with torch.no_grad():
        torch_features = torch_cnn[:-1](
            torch.tensor(np.moveaxis(images, -1, 1))
        )
        torch_probabilities = torch.softmax(
            torch_cnn[-1](torch_features), dim=-1
        )
    scale = np.abs(keras_features).max()
    assert scale > 0
    np.testing.assert_allclose(
        torch_features.numpy(), keras_features, rtol=1e-4, atol=1e-5 * scale
    )
    np.testing.assert_allclose(
        torch_probabilities.numpy(),
        keras_cnn.predict(images, verbose=0),
        rtol=1e-4,
        atol=1e-6,
    )
