"""Outputs and theta gradients of a saved spatial transformer model.

Run as a script under a chosen `KERAS_BACKEND` by `test_cross_backend.py`:

    python cross_backend_worker.py MODEL.keras INPUTS.npz RESULTS.npz
"""

import sys

import keras
import numpy as np
from keras import ops

from keras_stn.ops import warp_affine

from helpers import value_and_gradients


def evaluate(model_path, inputs_path):
    """Load the model and return its outputs, theta and theta gradient.

    Args:
        model_path: a `.keras` file of a model whose first layer is a
            `SpatialTransformer`.
        inputs_path: an `.npz` file with `images` and `upstream` (the
            gradient of the loss with respect to the layer's output).

    Returns:
        A dict of NumPy arrays: `outputs`, `theta`, `theta_gradient`.
    """
    model = keras.models.load_model(model_path)
    layer = model.layers[0]
    data = np.load(inputs_path)
    images, upstream = data["images"], data["upstream"]
    theta = ops.convert_to_numpy(layer.compute_theta(images))

    def loss(theta):
        out = warp_affine(
            images,
            theta,
            output_size=layer.output_size,
            mode=layer.mode,
            padding_mode=layer.padding_mode,
            align_corners=layer.align_corners,
            data_format=layer.data_format,
        )
        return ops.sum(ops.multiply(out, upstream))

    _, (theta_gradient,) = value_and_gradients(loss, theta)
    outputs = ops.convert_to_numpy(model.predict(images, verbose=0))
    return {
        "outputs": outputs,
        "theta": theta,
        "theta_gradient": theta_gradient,
    }


if __name__ == "__main__":
    model_path, inputs_path, results_path = sys.argv[1:4]
    np.savez(results_path, **evaluate(model_path, inputs_path))
