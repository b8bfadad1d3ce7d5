"""Export and serving of a model with a `SpatialTransformer` or `Warp` inside.

Each test trains a small ST model (or a convolution predicting a dense
field for `Warp`) a few steps on the current backend,
exports it, runs the artifact with its own runtime (TensorFlow's SavedModel
loader, onnxruntime, the LiteRT interpreter, `torch.export.load`) and
compares the outputs with the Keras model's. The paths that a backend
cannot take are listed in docs/guides/saving-and-export.md, with the
exact error; each backend here tests the paths it can take:

- TensorFlow: SavedModel, ONNX (tf2onnx), LiteRT (the TensorFlow converter,
  builtin ops only, and `format="litert"`), run by `ai-edge-litert`'s
  interpreter;
- JAX: SavedModel (jax2tf), ONNX (jax2onnx), LiteRT from the SavedModel
  of a static batch size;
- torch: ONNX (`torch.onnx.export`) and `torch.export` (`.pt2`), with a
  dynamic batch size.

Every artifact is run on a batch size other than the one it was traced
with, where its batch size is dynamic.
"""

import keras
import numpy as np
import pytest

from keras_stn import SpatialTransformer
from keras_stn.layers import Warp

from helpers import BACKEND

SHAPE = (24, 24, 2)
# Relative and absolute tolerance of an artifact's outputs (of size about
# 1): float32 rounding, in sums taken in another order (measured up to
# 1.3e-5: JAX's SavedModel, whose module TensorFlow's XLA compiles anew).
TOLERANCE = 2e-5
# LiteRT's kernels round differently (measured up to 1.7e-5).
LITERT_TOLERANCE = 5e-5


def trained_model(transform="affine", defaults=False):
    """A small ST regressor, trained a few steps away from the identity.

    Its transformer has the default localization net (with max pooling).

    Args:
        transform: the transform family, or `"warp"`: a convolution
            predicts a dense displacement field, which `Warp` applies.
        defaults: if true, the layer's other options are its defaults
            (`output_size=None`, no `theta_bound`); else it has an output
            size of its own and a bound.

    Returns:
        `(model, images)`: the model and a batch of 5 test images.
    """
    keras.utils.set_random_seed(0)
    inputs = keras.Input(SHAPE)
    options = {
        "output_size": (16, 16),
        # Keeps the few steps of training from sending the grid off the
        # images (where zero padding would make the outputs constant).
        "theta_bound": 0.5,
    }
    if transform == "warp":
        field = keras.layers.Conv2D(2, 3, padding="same", name="field")(inputs)
        warped = Warp(name="transformer")([inputs, field])
    else:
        warped = SpatialTransformer(
            transform=transform,
            name="transformer",
            **({} if defaults else options),
        )(inputs)
    # A linear head: every output depends on every warped pixel.
    features = keras.layers.Flatten()(warped)
    model = keras.Model(inputs, keras.layers.Dense(3)(features))
    model.compile(keras.optimizers.SGD(0.01), "mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, *SHAPE)).astype("float32")
    y = rng.normal(size=(16, 3)).astype("float32")
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    images = rng.normal(size=(5, *SHAPE)).astype("float32")
    # The test is void at the identity, which samples pixel centres only,
    # or if the outputs did not depend on the images.
    if transform == "warp":
        field = keras.ops.convert_to_numpy(model.get_layer("field")(images))
        assert np.abs(field).mean() > 0.1
    else:
        transformer = model.get_layer("transformer")
        theta = transformer.compute_theta(images)
        identity = transformer.transform.identity(2)
        assert np.abs(keras.ops.convert_to_numpy(theta) - identity).max() > 1e-3
    assert keras_outputs(model, images).std(axis=0).min() > 0.1
    return model, images


def keras_outputs(model, images):
    """The model's outputs as a NumPy array."""
    return keras.ops.convert_to_numpy(model(images, training=False))


def litert_outputs(model_content, images):
    """Run a LiteRT model on `images`, resizing its input to their shape."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_content)
    (input_details,) = interpreter.get_input_details()
    interpreter.resize_tensor_input(input_details["index"], images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(input_details["index"], images)
    interpreter.invoke()
    (output_details,) = interpreter.get_output_details()
    return interpreter.get_tensor(output_details["index"])


def convert_saved_model(path):
    """Convert a SavedModel to LiteRT with TensorFlow's builtin ops only."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(path))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


def onnx_outputs(path, images):
    """Run an ONNX model on `images` with onnxruntime."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path))
    (model_input,) = session.get_inputs()
    return session.run(None, {model_input.name: images})[0]


def assert_close(outputs, expected, tolerance, label):
    """Assert `outputs` match `expected` and print the max error."""
    error = float(np.abs(outputs - expected).max())
    print(f"{BACKEND} {label}: max error {error:.1e}")
    np.testing.assert_allclose(
        outputs, expected, rtol=tolerance, atol=tolerance
    )


# Every kind of model: the defaults, other options, a dense field.
MODELS = (("affine", True), ("affine", False), ("warp", False))


@pytest.mark.parametrize("transform,defaults", (*MODELS, ("tps", False)))
def test_onnx(tmp_path, transform, defaults):
    model, images = trained_model(transform, defaults)
    path = tmp_path / "model.onnx"
    model.export(path, format="onnx", verbose=False)
    outputs = onnx_outputs(path, images)
    assert_close(outputs, keras_outputs(model, images), TOLERANCE, "onnx")


@pytest.mark.parametrize("transform,defaults", MODELS)
def test_saved_model_or_torch_export(tmp_path, transform, defaults):
    """SavedModel on TensorFlow and JAX; `torch.export` on torch."""
    model, images = trained_model(transform, defaults)
    expected = keras_outputs(model, images)
    if BACKEND == "torch":
        import torch

        path = tmp_path / "model.pt2"
        batch = torch.export.Dim("batch", min=1, max=1024)
        model.export(
            path, format="torch", verbose=False, dynamic_shapes={0: batch}
        )
        program = torch.export.load(str(path)).module()
        outputs = program(torch.from_numpy(images)).detach().numpy()
        assert_close(outputs, expected, TOLERANCE, "torch.export")
        return
    import tensorflow as tf

    path = tmp_path / "saved_model"
    model.export(path, verbose=False)
    # Keep the loaded object: its variables live as long as it does.
    loaded = tf.saved_model.load(str(path))
    outputs = loaded.serve(tf.constant(images)).numpy()
    assert_close(outputs, expected, TOLERANCE, "SavedModel")


@pytest.mark.parametrize("transform,defaults", MODELS)
def test_litert_or_dynamic_onnx(tmp_path, transform, defaults):
    """LiteRT from a SavedModel; on torch, ONNX with a dynamic batch.

    On JAX the SavedModel has a static batch size (LiteRT cannot convert
    jax2tf's gathers of a dynamic shape); on torch, whose LiteRT export
    needs the `litert-torch` package, the same model goes to ONNX with the
    default localization net and is run on two batch sizes.
    """
    model, images = trained_model(transform, defaults)
    expected = keras_outputs(model, images)
    if BACKEND == "torch":
        path = tmp_path / "model.onnx"
        model.export(path, format="onnx", verbose=False)
        for batch in (1, 5):
            outputs = onnx_outputs(path, images[:batch])
            assert_close(outputs, expected[:batch], TOLERANCE, "onnx")
        return
    signature = None
    if BACKEND == "jax":
        signature = [keras.InputSpec(shape=images.shape, dtype="float32")]
    path = tmp_path / "saved_model"
    model.export(path, verbose=False, input_signature=signature)
    outputs = litert_outputs(convert_saved_model(path), images)
    assert_close(outputs, expected, LITERT_TOLERANCE, "LiteRT converter")
    if BACKEND == "tensorflow":
        path = tmp_path / "model.tflite"
        model.export(path, format="litert", verbose=False)
        outputs = litert_outputs(path.read_bytes(), images)
        assert_close(outputs, expected, LITERT_TOLERANCE, "format=litert")
