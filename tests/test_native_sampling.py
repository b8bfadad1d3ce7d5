"""The backends' fast sampling paths against the `keras.ops` sampler.

`implementation="auto"` samples on the path that
`keras_stn.ops.sampling.dispatch` picks: keras-stn's C++ kernel (bilinear,
zeros or border padding) on every backend, PyTorch's `grid_sample` on torch,
the generic sampler compiled by XLA on TensorFlow; `"keras"` always with the
generic sampler as it is. The two must give the same outputs and gradients,
and the identity must stay exact."""

import itertools

import keras
import numpy as np
import pytest
import torch
from keras import ops

from keras_stn import SpatialTransformer
from keras_stn.ops import grid_sample
from keras_stn.ops import warp_affine
from keras_stn.ops.sampling import dispatch

from helpers import BACKEND
from helpers import random_images_and_upstream
from helpers import random_sampling_problem
from helpers import torch_grid_sample
from helpers import value_and_gradients

# (batch, *spatial, channels, *output_spatial): odd sizes, whose pixel
# coordinates do not survive normalization exactly, and a power of two.
SIZES = [(2, 17, 23, 3, 31, 9), (2, 28, 28, 1, 28, 28), (2, 16, 16, 2, 8, 8)]
VOLUME_SIZES = [(2, 9, 7, 5, 2, 4, 6, 8)]


def both_implementations(fn, images, upstream, argument):
    """Outputs and gradients of `fn` with `"auto"` and with `"keras"`.

    Args:
        fn: `fn(images, argument, implementation)`, a sampler call.
        images: the images, NumPy.
        upstream: NumPy, shaped like the output: the loss is
            `sum(output * upstream)`.
        argument: the grid or theta, NumPy.

    Returns:
        Two `(output, [grad_images, grad_argument])` pairs, NumPy: first
        `"auto"`, then `"keras"`.
    """
    results = []
    for implementation in ("auto", "keras"):

        def loss(images, argument, implementation=implementation):
            output = fn(images, argument, implementation)
            return ops.sum(ops.multiply(output, upstream))

        output = fn(images, argument, implementation)
        _, grads = value_and_gradients(loss, images, argument)
        results.append((keras.ops.convert_to_numpy(output), grads))
    return results


def assert_close(auto, generic):
    """Outputs and gradients of the two implementations agree."""
    (auto_output, auto_grads), (output, grads) = auto, generic
    np.testing.assert_allclose(auto_output, output, rtol=1e-5, atol=1e-5)
    for auto_grad, grad in zip(auto_grads, grads, strict=True):
        # Gradients with respect to coordinates run to a few hundred.
        np.testing.assert_allclose(auto_grad, grad, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize(
    "size,mode,padding_mode,align_corners",
    [
        (size, mode, padding, corners)
        for size, mode, padding, corners in itertools.product(
            SIZES + VOLUME_SIZES,
            ("bilinear", "nearest", "bicubic"),
            ("zeros", "border", "reflection"),
            (False, True),
        )
        if not (mode == "bicubic" and size in VOLUME_SIZES)
    ],
)
def test_grid_sample_implementations_agree(
    size, mode, padding_mode, align_corners
):
    images, grid, upstream = random_sampling_problem(0, size)

    def sample(images, grid, implementation):
        return grid_sample(
            images,
            grid,
            mode=mode,
            padding_mode=padding_mode,
            align_corners=align_corners,
            data_format="channels_last",
            implementation=implementation,
        )

    results = both_implementations(sample, images, upstream, grid)
    assert_close(*results)


@pytest.mark.parametrize("wrt", ("images", "grid"))
def test_each_gradient_alone_matches_pytorch(wrt):
    """One argument's gradient, the other argument held constant.

    On TensorFlow each gradient of the fast path has an XLA cluster of its
    own, and a gradient asked for alone runs only its own cluster.
    """
    rng = np.random.default_rng(5)
    size = (3, 17, 23, 4, 19, 11)
    images, upstream = random_images_and_upstream(rng, size, "channels_last")
    grid = rng.uniform(-1.2, 1.2, (3, 19, 11, 2)).astype("float32")
    _, expected_images, expected_grid = torch_grid_sample(
        images, grid, upstream, "channels_last", align_corners=False
    )
    expected = expected_images if wrt == "images" else expected_grid
    for implementation in ("auto", "keras"):

        def loss(argument, implementation=implementation):
            arguments = {"images": images, "grid": grid, wrt: argument}
            output = grid_sample(
                arguments["images"],
                arguments["grid"],
                data_format="channels_last",
                implementation=implementation,
            )
            return ops.sum(ops.multiply(output, upstream))

        _, (gradient,) = value_and_gradients(
            loss, images if wrt == "images" else grid
        )
        np.testing.assert_allclose(gradient, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "size,mode,padding_mode,align_corners",
    list(
        itertools.product(
            SIZES + VOLUME_SIZES,
            ("bilinear", "nearest"),
            ("zeros", "border", "reflection"),
            (False, True),
        )
    ),
)
def test_warp_affine_implementations_agree(
    size, mode, padding_mode, align_corners
):
    rng = np.random.default_rng(1)
    images, upstream = random_images_and_upstream(rng, size, "channels_last")
    rank = len(size) // 2 - 1
    output_size = size[-rank:]
    theta = np.eye(rank, rank + 1) + rng.normal(
        0, 0.3, (size[0], rank, rank + 1)
    )
    theta = theta.astype("float32")

    def warp(images, theta, implementation):
        return warp_affine(
            images,
            theta,
            output_size,
            mode=mode,
            padding_mode=padding_mode,
            align_corners=align_corners,
            data_format="channels_last",
            implementation=implementation,
        )

    results = both_implementations(warp, images, upstream, theta)
    assert_close(*results)


@pytest.mark.parametrize(
    "spatial,padding_mode",
    list(
        itertools.product(
            [(17, 23), (28, 28), (42, 42), (9, 7, 5)], ("zeros", "border")
        )
    ),
)
def test_identity_stays_exact(spatial, padding_mode):
    """The padded native path reads whole pixel coordinates exactly."""
    rng = np.random.default_rng(2)
    rank = len(spatial)
    images = rng.normal(size=(2, *spatial, 3)).astype("float32")
    upstream = rng.normal(size=images.shape).astype("float32")
    identity = np.tile(np.eye(rank, rank + 1, dtype="float32"), (2, 1, 1))

    def warp(images, theta, implementation):
        return warp_affine(
            images,
            theta,
            padding_mode=padding_mode,
            data_format="channels_last",
            implementation=implementation,
        )

    results = both_implementations(warp, images, upstream, identity)
    (auto_output, auto_grads), (output, grads) = results
    np.testing.assert_array_equal(auto_output, images)
    np.testing.assert_array_equal(output, images)
    # The gradient with respect to theta at the identity: forward
    # differences at every pixel centre, in both implementations.
    np.testing.assert_allclose(auto_grads[1], grads[1], rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(auto_grads[0], grads[0])


def record_paths(monkeypatch):
    """Record the path of each sampling from now on: the names of the
    modules that `dispatch.choose_path` picks."""
    paths = []
    original = dispatch.choose_path

    def recorded(*args, **kwargs):
        module = original(*args, **kwargs)
        paths.append(module.__name__.rsplit(".", 1)[-1])
        return module

    monkeypatch.setattr(dispatch, "choose_path", recorded)
    return paths


# Each backend's path for an eager call of the kernel's case (bilinear,
# float32, zeros or border padding).
KERNEL_PATHS = {
    "torch": "torch_ctypes",
    "tensorflow": "tensorflow_ops",
    "jax": "jax_ffi",
}


@pytest.mark.parametrize("implementation", ("auto", "keras"))
def test_which_implementation_runs(monkeypatch, implementation):
    paths = record_paths(monkeypatch)
    images = np.random.default_rng(3).normal(size=(2, 8, 8, 1))
    identity = np.tile(np.eye(2, 3), (2, 1, 1))
    for padding_mode in ("zeros", "border", "reflection"):
        warp_affine(
            images.astype("float32"),
            identity.astype("float32"),
            padding_mode=padding_mode,
            data_format="channels_last",
            implementation=implementation,
        )
    # float16 images: the kernel takes float32 and float64 only.
    warp_affine(
        images.astype("float16"),
        identity.astype("float16"),
        data_format="channels_last",
        implementation=implementation,
    )
    # The kernel has no reflection; XLA compiles every mode and dtype on
    # TensorFlow, the generic sampler runs them elsewhere.
    other = "xla_clusters" if BACKEND == "tensorflow" else "generic"
    expected = [KERNEL_PATHS[BACKEND]] * 2 + [other] * 2
    if implementation == "keras":
        expected = ["generic"] * 4
    assert paths == expected


def test_layer_implementations_agree():
    rng = np.random.default_rng(4)
    images = rng.normal(size=(4, 20, 20, 2)).astype("float32")
    layers = [
        SpatialTransformer(output_size=(12, 14), implementation=implementation)
        for implementation in ("auto", "keras")
    ]
    for layer in layers:
        layer.build(images.shape)
    # A transform away from the identity: a random regressor bias.
    bias = np.tile([1.1, 0.2, 0.1, -0.3, 0.9, -0.05], 1).astype("float32")
    for layer in layers:
        layer.theta_regressor.bias.assign(bias)
    for training in (True, False):
        outputs = [
            keras.ops.convert_to_numpy(layer(images, training=training))
            for layer in layers
        ]
        np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-5, atol=1e-5)
    config = layers[1].get_config()
    assert config["implementation"] == "keras"
    assert SpatialTransformer.from_config(config).implementation == "keras"


@pytest.mark.parametrize("training", (True, False))
def test_layer_samples_with_the_kernel_in_eager_calls(monkeypatch, training):
    """An eager call runs in this process only: the kernel samples, in
    training or not (exports are traced apart: `tests/test_export.py`,
    `tests/test_tf_sampling.py`)."""
    paths = record_paths(monkeypatch)
    layer = SpatialTransformer(output_size=(6, 6))
    layer(np.ones((2, 8, 8, 1), "float32"), training=training)
    assert paths == [KERNEL_PATHS[BACKEND]]


def test_bad_implementation():
    images = np.zeros((1, 4, 4, 1), "float32")
    grid = np.zeros((1, 2, 2, 2), "float32")
    with pytest.raises(ValueError, match="argument `implementation`"):
        grid_sample(images, grid, implementation="cuda")
    with pytest.raises(ValueError, match="argument `implementation`"):
        SpatialTransformer(implementation="native")


@pytest.mark.parametrize(
    "spatial,output_size",
    [((28, 28), (24, 20)), ((42, 42), (28, 28)), ((17, 23), (31, 9))],
)
def test_resampling_keeps_the_kinks(spatial, output_size):
    """Points near whole pixel coordinates keep the generic gradient.

    Resizing at the identity puts points on or within a unit in the last
    place of whole pixel coordinates (28 to 20 columns: `1.4 * i + 0.2`),
    where bilinear sampling has a kink; a point that crossed it in the
    kernel's round trip would take the other side's difference.
    """
    rng = np.random.default_rng(5)
    images = rng.random((4, *spatial, 2)).astype("float32")
    upstream = rng.normal(size=(4, *output_size, 2)).astype("float32")
    identity = np.tile(np.eye(2, 3, dtype="float32"), (4, 1, 1))

    def warp(images, theta, implementation):
        return warp_affine(
            images,
            theta,
            output_size,
            data_format="channels_last",
            implementation=implementation,
        )

    (auto_output, auto_grads), (output, grads) = both_implementations(
        warp, images, upstream, identity
    )
    np.testing.assert_allclose(auto_output, output, rtol=1e-6, atol=1e-6)
    scale = np.abs(grads[1]).max()
    np.testing.assert_allclose(
        auto_grads[1], grads[1], rtol=1e-5, atol=1e-5 * scale
    )


def compiled_for_inference(function):
    """`function` compiled by the backend's compiler, as `jit_compile=True`
    compiles a model's prediction (on torch, with Inductor)."""
    if BACKEND == "torch":
        return torch.compile(function, fullgraph=True)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.function(function, jit_compile=True)
    import jax

    return jax.jit(function)


def test_compiled_inference_matches_eager():
    """On torch, inference under `torch.compile` calls PyTorch's kernel
    (Inductor's own version of it rounds differently, by up to 1e-4 at
    224x224), and `torch.export` still records PyTorch's operator."""
    rng = np.random.default_rng(6)
    images = rng.normal(size=(2, 9, 11, 3)).astype("float32")
    grid = rng.uniform(-1.2, 1.2, (2, 7, 5, 2)).astype("float32")
    images, grid = ops.convert_to_tensor(images), ops.convert_to_tensor(grid)
    eager = ops.convert_to_numpy(grid_sample(images, grid))
    compiled = compiled_for_inference(grid_sample)
    if BACKEND == "torch":
        with torch.no_grad():
            outputs = compiled(images, grid)
        np.testing.assert_array_equal(ops.convert_to_numpy(outputs), eager)

        class Sampler(torch.nn.Module):
            def forward(self, images, grid):
                return grid_sample(images, grid)

        with torch.no_grad():
            exported = torch.export.export(Sampler(), (images, grid))
        assert "keras_stn" not in str(exported.graph)
        assert "grid_sampler" in str(exported.graph)
    else:
        outputs = ops.convert_to_numpy(compiled(images, grid))
        np.testing.assert_allclose(outputs, eager, rtol=1e-6, atol=1e-6)
