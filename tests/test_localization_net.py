"""The default localization net and its pooling, `AxiswiseMaxPooling`: the
outputs and gradients of Keras' max pooling (ties included), and of the net
as it was built with `MaxPooling2D` (`MaxPooling3D`), with the same weights.
The layer pools one axis at a time on JAX only; its ONNX export there is
tested in `test_export.py`."""

import keras
import numpy as np
import pytest

from keras_stn.layers import AxiswiseMaxPooling
from keras_stn.layers import default_localization_net

from helpers import value_and_gradients

MAX_POOLING = {4: keras.layers.MaxPooling2D, 5: keras.layers.MaxPooling3D}


def rectified_with_ties(rng, shape):
    """Rectified noise, with a constant patch: ties in the windows."""
    x = np.maximum(rng.normal(size=shape), 0.0).astype("float32")
    x[:, :4, :4] = 1.5
    return x


def weighted_sum(pool, upstream):
    """The sum of `pool`'s outputs weighted by `upstream`."""
    upstream = keras.ops.convert_to_tensor(upstream)
    return lambda x: keras.ops.sum(keras.ops.multiply(pool(x), upstream))


@pytest.mark.parametrize(
    "shape,padding",
    [
        ((3, 24, 24, 5), "same"),
        ((2, 25, 27, 3), "same"),
        ((2, 25, 27, 3), "valid"),
        ((2, 7, 9, 5, 4), "same"),
    ],
)
def test_axiswise_max_pooling_is_max_pooling(shape, padding):
    rng = np.random.default_rng(0)
    x = rectified_with_ties(rng, shape)
    expected_layer = MAX_POOLING[len(shape)](2, padding=padding)
    layer = AxiswiseMaxPooling(2, padding=padding)
    expected = keras.ops.convert_to_numpy(expected_layer(x))
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(layer(x)), expected
    )
    assert layer.compute_output_shape((None, *shape[1:])) == (
        None,
        *expected.shape[1:],
    )
    upstream = rng.normal(size=expected.shape).astype("float32")
    _, (grad,) = value_and_gradients(weighted_sum(layer, upstream), x)
    _, (expected_grad,) = value_and_gradients(
        weighted_sum(expected_layer, upstream), x
    )
    np.testing.assert_array_equal(grad, expected_grad)


@pytest.mark.parametrize("shape", [(None, 28, 28, 1), (None, 6, 7, 5, 2)])
def test_default_net_is_the_max_pooling_net(shape):
    """The same outputs as the net with Keras' max pooling layers."""
    spatial_rank = len(shape) - 2
    net = default_localization_net("channels_last", spatial_rank=spatial_rank)
    net.build(shape)
    layers = [
        MAX_POOLING[len(shape)].from_config(
            {**layer.get_config(), "name": None}
        )
        if isinstance(layer, AxiswiseMaxPooling)
        else layer.__class__.from_config(layer.get_config())
        for layer in net.layers
    ]
    reference = keras.Sequential(layers)
    reference.build(shape)
    assert reference.count_params() == net.count_params()
    reference.set_weights(net.get_weights())
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, *shape[1:])).astype("float32")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(net(x)),
        keras.ops.convert_to_numpy(reference(x)),
    )


def test_axiswise_max_pooling_needs_known_sizes():
    with pytest.raises(ValueError, match="known"):
        AxiswiseMaxPooling().build((None, None, 8, 3))
    with pytest.raises(ValueError, match="padding"):
        AxiswiseMaxPooling(padding="causal")
