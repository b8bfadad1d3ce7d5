"""The C++ sampling kernel of the TensorFlow backend, against PyTorch's.

On TensorFlow, bilinear sampling with `"zeros"` or `"border"` padding runs as
the ops of `keras_stn.ops.sampling.cpp_kernel.tensorflow_ops` where a gradient
tape records it, outside XLA compilation; elsewhere the sampler takes its other
paths. On the other backends those ops never run (`tests/test_jax_sampling.py`
and `tests/test_native_sampling.py` check their paths).
"""

import functools
import importlib

import keras
import numpy as np
import pytest
from keras import ops

from keras_stn import SpatialTransformer
from keras_stn.ops import grid_sample

from helpers import BACKEND
from helpers import random_sampling_problem
from helpers import takes_path
from helpers import torch_grid_sample

tf_sampling = importlib.import_module(
    "keras_stn.ops.sampling.cpp_kernel.tensorflow_ops"
)

KERNEL_OPS = (
    "KerasStnBilinearSample",
    "KerasStnBilinearGradImages",
    "KerasStnBilinearGradPoints",
    "KerasStnBilinearGradBoth",
)
# The kernel's backward op, by the arguments whose gradients a tape records.
GRADIENT_OPS = {
    ("images",): "KerasStnBilinearGradImages",
    ("grid",): "KerasStnBilinearGradPoints",
    ("images", "grid"): "KerasStnBilinearGradBoth",
}


SIZE = (3, 17, 23, 4, 19, 11)


def kernel_ops_in(function, *args):
    """The kernel's ops in the graph of a `tf.function` traced on `args`."""
    graph = function.get_concrete_function(*args).graph
    types = {operation.type for operation in graph.get_operations()}
    for inner in graph._functions.values():
        types |= {node.op for node in inner.definition.node_def}
    return types & set(KERNEL_OPS)


def gradients_of(
    images,
    grid,
    upstream,
    padding_mode,
    jit_compile,
    align_corners=False,
    watched=("images", "grid"),
):
    """The loss's gradients in a compiled step, and the kernel ops used.

    The gradients are those of the `watched` arguments, in that order.
    """
    import tensorflow as tf

    def step(images, grid):
        arguments = {"images": images, "grid": grid}
        with tf.GradientTape() as tape:
            tape.watch([arguments[name] for name in watched])
            output = grid_sample(
                images,
                grid,
                padding_mode=padding_mode,
                align_corners=align_corners,
                data_format="channels_last",
            )
            loss = tf.reduce_sum(output * upstream)
        return output, tape.gradient(
            loss, [arguments[name] for name in watched]
        )

    step = tf.function(step, jit_compile=jit_compile)
    images, grid = tf.constant(images), tf.constant(grid)
    output, gradients = step(images, grid)
    used = kernel_ops_in(step, images, grid)
    return output.numpy(), [g.numpy() for g in gradients], used


@pytest.mark.parametrize("padding_mode", ("zeros", "border"))
@pytest.mark.parametrize("jit_compile", (False, True))
@pytest.mark.parametrize("align_corners", (False, True))
def test_training_steps_match_pytorch(padding_mode, jit_compile, align_corners):
    images, grid, upstream = random_sampling_problem(0, SIZE)
    expected = torch_grid_sample(
        images,
        grid,
        upstream,
        "channels_last",
        padding_mode=padding_mode,
        align_corners=align_corners,
    )
    if BACKEND != "tensorflow":
        points = [ops.convert_to_tensor(grid[..., 0])] * 2
        assert not takes_path(
            tf_sampling,
            ops.convert_to_tensor(images),
            points,
            "bilinear",
            padding_mode,
        )
        return
    output, gradients, used = gradients_of(
        images, grid, upstream, padding_mode, jit_compile, align_corners
    )
    # Under XLA compilation the generic sampler, compiled with the rest;
    # else the kernel's forward op and its fused backward op.
    kernel = {KERNEL_OPS[0], GRADIENT_OPS["images", "grid"]}
    assert used == (set() if jit_compile else kernel)
    np.testing.assert_allclose(output, expected[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gradients[0], expected[1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gradients[1], expected[2], rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("watched", (("images",), ("grid",)))
def test_only_the_recorded_gradient_is_computed(watched):
    volumes = (2, 9, 8, 3, 3, 5, 6, 7)
    images, grid, upstream = random_sampling_problem(4, volumes)
    expected = torch_grid_sample(
        images, grid, upstream, "channels_last", align_corners=False
    )
    if BACKEND != "tensorflow":
        assert not takes_path(
            tf_sampling,
            ops.convert_to_tensor(images),
            [ops.convert_to_tensor(grid)],
            "bilinear",
            "zeros",
        )
        return
    output, gradients, used = gradients_of(
        images, grid, upstream, "zeros", False, watched=watched
    )
    assert used == {KERNEL_OPS[0], GRADIENT_OPS[watched]}
    np.testing.assert_allclose(output, expected[0], rtol=1e-5, atol=1e-5)
    index = 1 if watched == ("images",) else 2
    np.testing.assert_allclose(
        gradients[0], expected[index], rtol=1e-4, atol=1e-4
    )


def test_inference_and_exports_hold_no_kernel_op(tmp_path):
    images, grid, upstream = random_sampling_problem(1, SIZE)
    expected = torch_grid_sample(
        images, grid, upstream, "channels_last", align_corners=False
    )[0]
    model = keras.Sequential(
        [keras.Input(images.shape[1:]), SpatialTransformer(output_size=(9, 7))]
    )
    if BACKEND != "tensorflow":
        output = ops.convert_to_numpy(
            grid_sample(images, grid, data_format="channels_last")
        )
        np.testing.assert_allclose(output, expected, rtol=1e-5, atol=1e-5)
        return
    import tensorflow as tf

    sample = tf.function(
        lambda images, grid: grid_sample(
            images, grid, data_format="channels_last"
        )
    )
    assert kernel_ops_in(sample, images, grid) == set()
    np.testing.assert_allclose(
        sample(images, grid).numpy(), expected, rtol=1e-5, atol=1e-5
    )
    # `predict` runs in this process (with the kernel); what the model
    # exports afterwards holds none of its ops.
    model.predict(images, verbose=0)
    model.export(tmp_path / "model", verbose=False)
    # Keep the loaded object: its variables live as long as it does.
    loaded = tf.saved_model.load(str(tmp_path / "model"))
    operations = loaded.serve.get_concrete_function(
        tf.TensorSpec((None, *images.shape[1:]))
    ).graph.as_graph_def()
    types = {node.op for node in operations.node}
    for function in operations.library.function:
        types |= {node.op for node in function.node_def}
    assert types & set(KERNEL_OPS) == set()


def assert_kernel_free_steps_match_pytorch(seed):
    """A training step without the kernel's ops gives PyTorch's numbers
    (on other backends, the kernel does not apply)."""
    images, grid, upstream = random_sampling_problem(seed, SIZE)
    expected = torch_grid_sample(
        images, grid, upstream, "channels_last", align_corners=False
    )
    if BACKEND != "tensorflow":
        points = [ops.convert_to_tensor(grid[..., 0])] * 2
        assert not takes_path(
            tf_sampling,
            ops.convert_to_tensor(images),
            points,
            "bilinear",
            "zeros",
        )
        return
    output, gradients, used = gradients_of(
        images, grid, upstream, "zeros", jit_compile=False
    )
    assert used == set()
    np.testing.assert_allclose(output, expected[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gradients[0], expected[1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gradients[1], expected[2], rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("query", ("present", "missing"))
def test_eager_calls_with_and_without_a_tape(monkeypatch, query):
    """Eager calls take the kernel: without a tape, its op alone; under a
    tape, its gradients too, all of them where TensorFlow's private query
    "does a tape record this?" is gone (a tape may be watching)."""
    if query == "missing":
        private_function = tf_sampling.private_function
        monkeypatch.setattr(
            tf_sampling,
            "private_function",
            lambda module, name: (
                None
                if name == "should_record_backprop"
                else private_function(module, name)
            ),
        )
    images, grid, upstream = random_sampling_problem(4, SIZE)
    expected = torch_grid_sample(
        images, grid, upstream, "channels_last", align_corners=False
    )
    images, grid = ops.convert_to_tensor(images), ops.convert_to_tensor(grid)
    if BACKEND != "tensorflow":
        assert not takes_path(
            tf_sampling, images, [grid[..., 0]] * 2, "bilinear", "zeros"
        )
        return
    import tensorflow as tf

    calls = []
    original = tf_sampling.sample
    monkeypatch.setattr(
        tf_sampling,
        "sample",
        lambda *args: calls.append(1) or original(*args),
    )
    sample = functools.partial(grid_sample, data_format="channels_last")
    np.testing.assert_allclose(
        sample(images, grid).numpy(), expected[0], rtol=1e-5, atol=1e-5
    )
    with tf.GradientTape() as tape:
        tape.watch([images, grid])
        loss = tf.reduce_sum(sample(images, grid) * upstream)
    grad_images, grad_grid = tape.gradient(loss, [images, grid])
    assert len(calls) == 2
    np.testing.assert_allclose(grad_images, expected[1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad_grid, expected[2], rtol=1e-4, atol=1e-3)


def test_without_a_compiler_the_xla_sampler_runs(monkeypatch):
    monkeypatch.setattr(tf_sampling, "_library", lambda: None)
    assert_kernel_free_steps_match_pytorch(seed=2)


def test_fit_and_predict_take_the_kernel(monkeypatch):
    """`fit` and `predict` on TensorFlow (`jit_compile="auto"`: no XLA on a
    CPU)."""
    calls = []
    original = tf_sampling.sample

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(tf_sampling, "sample", counted)
    rng = np.random.default_rng(3)
    images = rng.normal(size=(8, 12, 12, 1)).astype("float32")
    model = keras.Sequential(
        [
            keras.Input((12, 12, 1)),
            SpatialTransformer(output_size=(10, 10)),
            keras.layers.Flatten(),
            keras.layers.Dense(1),
        ]
    )
    model.compile("sgd", "mse")
    history = model.fit(images, np.zeros((8, 1)), epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    # Traced once, in the training step, then once by `predict`.
    assert len(calls) == (1 if BACKEND == "tensorflow" else 0)
    expected = model.predict(images, verbose=0)
    assert len(calls) == (2 if BACKEND == "tensorflow" else 0)
    # Where Keras' steps are not recognized (a release that renames them),
    # `predict` takes TensorFlow's plain ops, with the same numbers.
    monkeypatch.setattr(tf_sampling, "KERAS_STEP_FUNCTIONS", ())
    model.make_predict_function(force=True)
    outputs = model.predict(images, verbose=0)
    assert len(calls) == (2 if BACKEND == "tensorflow" else 0)
    np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "missing", ("should_record_backprop", "GraphOrParentsInXlaContext")
)
def test_without_tensorflows_private_queries_the_other_paths_run(
    monkeypatch, missing
):
    """TensorFlow answers "does a tape record this?" and "is this graph
    compiled by XLA?" with private functions only: where one is gone, the
    sampler gives the same numbers without the kernel."""
    private_function = tf_sampling.private_function
    monkeypatch.setattr(
        tf_sampling,
        "private_function",
        lambda module, name: (
            None if name == missing else private_function(module, name)
        ),
    )
    assert_kernel_free_steps_match_pytorch(seed=3)
