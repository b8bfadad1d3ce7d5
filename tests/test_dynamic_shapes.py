"""Unknown batch and spatial sizes: functional, subclassed and exported models.

A model built on `keras.Input((None, None, channels))` trains and predicts on
images of several sizes, with the default `jit_compile="auto"` and with
`jit_compile=True` (on torch, `torch.compile`), with a fixed output size
or keeping each input's (`output_size=None`). On
TensorFlow, `fit` and `predict` retrace their graph for unknown sizes
after a second size (Keras traces with `reduce_retracing`), so the layer
then runs with sizes that are only known when the graph runs; JAX's
`model.export` traces with symbolic sizes. The transformer's outputs are
checked against PyTorch's `affine_grid` and `grid_sample` at the theta the
layer regresses. A registration model (a convolution predicting a velocity
field, `IntegrateVelocity`, `Warp`) trains and predicts on two sizes,
checked against SciPy's `map_coordinates`.
"""

import keras
import numpy as np
import pytest
import torch
from keras import ops

from keras_stn import SpatialTransformer
from keras_stn.layers import IntegrateVelocity
from keras_stn.layers import Warp

from helpers import BACKEND
from helpers import scipy_warp

OUTPUT_SIZE = (12, 10)
SIZES = ((24, 24), (32, 20), (17, 29))


def any_size_localization_net():
    """A localization net for inputs of any size: global pooling."""
    return keras.Sequential(
        [
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(8, activation="tanh"),
        ]
    )


def any_size_transformer(output_size=OUTPUT_SIZE):
    """The transformer of the tests, named `"transformer"`."""
    return SpatialTransformer(
        any_size_localization_net(),
        output_size=output_size,
        theta_bound=0.5,
        name="transformer",
    )


def any_size_model(output_size=OUTPUT_SIZE):
    """A regressor on images of any size, and its transformer's outputs.

    With `output_size=None` the outputs keep each input's size, and the
    head pools them globally.
    """
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, None, 2))
    warped = any_size_transformer(output_size)(inputs)
    if output_size is None:
        features = keras.layers.GlobalAveragePooling2D()(warped)
    else:
        features = keras.layers.Flatten()(warped)
    outputs = keras.layers.Dense(3)(features)
    return keras.Model(inputs, outputs), keras.Model(inputs, warped)


def images_of_size(size, count=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(count, *size, 2)).astype("float32")


def torch_warp(images, theta, output_size=OUTPUT_SIZE):
    """PyTorch's affine warp of channels-last `images` to `output_size`
    (`None`: their own), in float64."""
    theta = torch.from_numpy(np.asarray(theta, "float64"))
    output_size = output_size or images.shape[1:3]
    grid = torch.nn.functional.affine_grid(
        theta, (len(images), 2, *output_size), align_corners=False
    )
    images = torch.from_numpy(np.asarray(images, "float64"))
    outputs = torch.nn.functional.grid_sample(
        images.movedim(-1, 1), grid, align_corners=False
    )
    return outputs.movedim(1, -1).numpy()


def assert_transformer_matches_torch(warper, images, outputs):
    """The float32 outputs against PyTorch's in float64: a float32 grid is
    off by up to about one ulp of its pixel coordinates, which moves an
    output by up to about 1e-5 on these images (PyTorch's own float32
    warp differs from its float64 one by up to 5e-6 here)."""
    transformer = warper.get_layer("transformer")
    theta = ops.convert_to_numpy(transformer.compute_theta(images))
    expected = torch_warp(images, theta, transformer.output_size)
    np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=2e-5)


def fit_on_every_size(model, jit_compile):
    """Compile `model` and train it on each of `SIZES` in turn."""
    model.compile(keras.optimizers.SGD(0.1), "mse", jit_compile=jit_compile)
    rng = np.random.default_rng(1)
    for seed, size in enumerate(SIZES):
        # 10 examples in batches of 4: the last batch is smaller.
        x = images_of_size(size, count=10, seed=seed)
        y = rng.normal(size=(10, 3)).astype("float32")
        history = model.fit(x, y, batch_size=4, epochs=2, verbose=0)
        assert np.isfinite(history.history["loss"]).all()
    return x


@pytest.mark.parametrize(
    "jit_compile,output_size",
    [("auto", OUTPUT_SIZE), (True, OUTPUT_SIZE), ("auto", None)],
)
def test_functional_model_of_any_size(jit_compile, output_size):
    model, warper = any_size_model(output_size)
    assert warper.output_shape == (None, *(output_size or (None, None)), 2)
    x = fit_on_every_size(model, jit_compile)
    theta = warper.get_layer("transformer").compute_theta(x)
    # Trained away from the identity, which would make the check weak.
    assert np.abs(ops.convert_to_numpy(theta) - np.eye(2, 3)).max() > 1e-3
    for seed, size in enumerate(SIZES):
        x = images_of_size(size, count=5, seed=10 + seed)
        outputs = warper.predict(x, batch_size=2, verbose=0)
        assert outputs.shape == (5, *(output_size or size), 2)
        assert_transformer_matches_torch(warper, x, outputs)


class Regressor(keras.Model):
    """A subclassed model: a transformer, then a dense head."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.transformer = any_size_transformer()
        self.flatten = keras.layers.Flatten()
        self.head = keras.layers.Dense(3)

    def call(self, inputs):
        return self.head(self.flatten(self.transformer(inputs)))


@pytest.mark.parametrize("jit_compile", ["auto", True])
def test_subclassed_model_of_any_size(jit_compile):
    keras.utils.set_random_seed(0)
    model = Regressor()
    fit_on_every_size(model, jit_compile)
    for seed, size in enumerate(SIZES):
        x = images_of_size(size, count=5, seed=20 + seed)
        predicted = model.predict(x, batch_size=2, verbose=0)
        eager = ops.convert_to_numpy(model(x))
        np.testing.assert_allclose(predicted, eager, rtol=1e-5, atol=1e-5)
        warped = ops.convert_to_numpy(model.transformer(x))
        assert_transformer_matches_torch(model, x, warped)


def test_export_of_any_size_needs_output_size_for_splines(tmp_path):
    """A thin-plate spline's grid needs the output's sizes when traced."""
    inputs = keras.Input((None, None, 2))
    transformer = SpatialTransformer(
        any_size_localization_net(), transform="tps"
    )
    warped = transformer(inputs)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(warped))
    # Eager calls know their sizes.
    assert tuple(model(images_of_size((9, 7))).shape) == (6, 2)
    path, kwargs = tmp_path / "saved_model", {}
    if BACKEND == "torch":
        path = tmp_path / "model.pt2"
        height = torch.export.Dim("height", min=2, max=512)
        kwargs = dict(format="torch", dynamic_shapes={1: height})
    # The layer's own error, whatever the exporter wraps it in.
    with pytest.raises(Exception, match="Pass `output_size` to use it"):
        model.export(path, verbose=False, **kwargs)


@pytest.mark.parametrize("output_size", [OUTPUT_SIZE, None])
def test_export_of_any_size(tmp_path, output_size):
    """SavedModel (TensorFlow, JAX) or `torch.export`, any batch and size."""
    model, _ = any_size_model(output_size)
    model.compile(keras.optimizers.SGD(0.1), "mse")
    x = images_of_size(SIZES[0], count=10)
    model.fit(x, np.ones((10, 3), "float32"), epochs=2, verbose=0)
    if BACKEND == "torch":
        height = torch.export.Dim("height", min=2, max=512)
        width = torch.export.Dim("width", min=2, max=512)
        batch = torch.export.Dim("batch", min=1, max=1024)
        path = tmp_path / "model.pt2"
        model.export(
            path,
            format="torch",
            verbose=False,
            dynamic_shapes={0: batch, 1: height, 2: width},
        )
        program = torch.export.load(str(path)).module()

        def serve(images):
            return program(torch.from_numpy(images)).detach().numpy()
    else:
        import tensorflow as tf

        path = tmp_path / "saved_model"
        model.export(path, verbose=False)
        loaded = tf.saved_model.load(str(path))

        def serve(images):
            return loaded.serve(tf.constant(images)).numpy()

    for seed, size in enumerate(SIZES):
        images = images_of_size(size, count=3, seed=30 + seed)
        np.testing.assert_allclose(
            serve(images),
            ops.convert_to_numpy(model(images)),
            rtol=1e-5,
            atol=1e-5,
        )


def scipy_integrate(velocity, steps):
    """Scaling and squaring of an `"xy"` field by SciPy's interpolation:
    `u <- u + u(p + u)`, the field extended by its border vectors."""
    field = velocity.astype("float64") / 2**steps
    for _ in range(steps):
        field = field + scipy_warp(field, field)
    return field


def test_dense_field_model_of_any_size():
    keras.utils.set_random_seed(0)
    images = keras.Input((None, None, 2))
    velocity = keras.layers.Conv2D(2, 3, padding="same", name="velocity")(
        images
    )
    field = IntegrateVelocity(3, "channels_last")(velocity)
    moved = Warp(padding_mode="border", data_format="channels_last")(
        [images, field]
    )
    model = keras.Model(images, moved)
    assert model.output_shape == (None, None, None, 2)
    model.compile(keras.optimizers.SGD(0.01), "mse")
    sizes = SIZES[:2]
    for seed, size in enumerate(sizes):
        x = images_of_size(size, count=6, seed=seed)
        history = model.fit(x, x, batch_size=6, epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"]).all()
    for seed, size in enumerate(sizes):
        x = images_of_size(size, count=3, seed=40 + seed)
        outputs = model.predict(x, batch_size=3, verbose=0)
        v = ops.convert_to_numpy(model.get_layer("velocity")(x))
        assert np.abs(v).max() > 1.0  # points between pixels, and beyond
        expected = scipy_warp(x, scipy_integrate(v, 3))
        np.testing.assert_allclose(outputs, expected, atol=1e-4)
