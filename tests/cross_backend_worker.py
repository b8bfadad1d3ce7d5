"""Outputs and gradients of saved spatial transformer and dense-field models.

Run as a script under a chosen `KERAS_BACKEND` by `test_cross_backend.py`:

    python cross_backend_worker.py CASES_FOLDER RESULTS_NAME

evaluates every `CASES_FOLDER/*/model.keras` on the `inputs.npz` beside it
and writes the results there as `RESULTS_NAME.npz`.
"""

import sys
from pathlib import Path

import keras
import numpy as np
from keras import ops

from keras_stn import SpatialTransformer

from helpers import value_and_gradients


def evaluate(model_path, inputs_path):
    """Load the model and return its outputs and gradients.

    Args:
        model_path: a `.keras` file of a model whose first layer is a
            `SpatialTransformer`, or (with a `field` in the inputs) of a
            model of `[images, field]`.
        inputs_path: an `.npz` file with `images`, `upstream` (the
            gradient of the loss with respect to the layer's or model's
            output) and possibly `field`.

    Returns:
        A dict of NumPy arrays: `outputs`, `theta`, `theta_gradient`; with
        a `field`, `outputs`, `images_gradient`, `field_gradient`.
    """
    model = keras.models.load_model(model_path)
    data = np.load(inputs_path)
    images, upstream = data["images"], data["upstream"]
    if "field" in data:
        return evaluate_dense(model, images, data["field"], upstream)
    layer = model.layers[0]
    assert isinstance(layer, SpatialTransformer)
    theta = ops.convert_to_numpy(layer.compute_theta(images))

    def loss(theta):
        return ops.sum(ops.multiply(layer.warp(images, theta), upstream))

    _, (theta_gradient,) = value_and_gradients(loss, theta)
    outputs = ops.convert_to_numpy(model.predict(images, verbose=0))
    return {
        "outputs": outputs,
        "theta": theta,
        "theta_gradient": theta_gradient,
    }


def evaluate_dense(model, images, field, upstream):
    """A dense-field model's outputs and gradients by its two inputs."""

    def loss(images, field):
        return ops.sum(ops.multiply(model([images, field]), upstream))

    _, (images_gradient, field_gradient) = value_and_gradients(
        loss, images, field
    )
    outputs = model.predict([images, field], verbose=0)
    return {
        "outputs": ops.convert_to_numpy(outputs),
        "images_gradient": images_gradient,
        "field_gradient": field_gradient,
    }


if __name__ == "__main__":
    cases_folder, results_name = Path(sys.argv[1]), sys.argv[2]
    for case in sorted(p for p in cases_folder.iterdir() if p.is_dir()):
        results = evaluate(case / "model.keras", case / "inputs.npz")
        np.savez(case / f"{results_name}.npz", **results)
