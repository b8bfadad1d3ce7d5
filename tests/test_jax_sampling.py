"""The C++ sampling kernel of the JAX backend, against PyTorch's kernel.

On JAX, bilinear sampling with `"zeros"` or `"border"` padding runs its forward
and backward passes as the kernel of
`keras_stn.ops.sampling.cpp_kernel.jax_ffi` where it is differentiated, eagerly
and in Keras' own loops, and the generic sampler in what other tracers record.
On the other backends the kernel never runs, and the same calls give PyTorch's
numbers through their own paths. (`tests/test_native_sampling.py` checks every
mode and padding against the generic sampler on each backend.)
"""

import importlib

import numpy as np
import pytest
from keras import ops

from keras_stn.ops import grid_sample

from helpers import BACKEND
from helpers import random_sampling_problem
from helpers import takes_path
from helpers import torch_grid_sample
from helpers import value_and_gradients

jax_sampling = importlib.import_module(
    "keras_stn.ops.sampling.cpp_kernel.jax_ffi"
)

SIZE = (3, 17, 23, 4, 19, 11)


def sample(images, grid, padding_mode="zeros", align_corners=False):
    return grid_sample(
        images,
        grid,
        padding_mode=padding_mode,
        align_corners=align_corners,
        data_format="channels_last",
    )


def loss(images, grid, upstream, padding_mode="zeros", align_corners=False):
    output = sample(images, grid, padding_mode, align_corners)
    return ops.sum(ops.multiply(output, upstream))


def primitives_in(fn, *args):
    """The names of the kernel's primitives in the jaxpr of `fn(*args)`,
    traced anew (JAX caches traces by function, not by Keras' scopes)."""
    import jax

    jaxpr = str(jax.make_jaxpr(lambda *arrays: fn(*arrays))(*args))
    names = ("keras_stn_bilinear_sample", "keras_stn_bilinear_gradients")
    return {name for name in names if name in jaxpr}


def test_kernel_only_where_it_applies():
    images, grid, _ = random_sampling_problem(0, SIZE)
    points = [ops.convert_to_tensor(grid[..., 0])] * 2
    images = ops.convert_to_tensor(images)
    applies = BACKEND == "jax"
    assert takes_path(jax_sampling, images, points, "bilinear", "zeros") == (
        applies
    )
    assert takes_path(jax_sampling, images, points, "bilinear", "border") == (
        applies
    )
    assert not takes_path(
        jax_sampling, images, points, "bilinear", "reflection"
    )
    assert not takes_path(jax_sampling, images, points, "nearest", "zeros")
    assert not takes_path(
        jax_sampling, ops.cast(images, "float16"), points, "bilinear", "zeros"
    )


@pytest.mark.parametrize("align_corners", (False, True))
@pytest.mark.parametrize("padding_mode", ("zeros", "border"))
@pytest.mark.parametrize(
    "size",
    (
        SIZE,
        (2, 28, 28, 1, 28, 28),
        (2, 13, 11, 3, 9, 10),
        (2, 9, 7, 5, 2, 4, 6, 8),
    ),
)
def test_outputs_and_gradients_match_pytorch(size, padding_mode, align_corners):
    images, grid, upstream = random_sampling_problem(1, size)
    expected = torch_grid_sample(
        images,
        grid,
        upstream,
        "channels_last",
        padding_mode=padding_mode,
        align_corners=align_corners,
    )
    output = ops.convert_to_numpy(
        sample(images, grid, padding_mode, align_corners)
    )
    _, gradients = value_and_gradients(
        lambda x, g: loss(x, g, upstream, padding_mode, align_corners),
        images,
        grid,
    )
    np.testing.assert_allclose(output, expected[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gradients[0], expected[1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gradients[1], expected[2], rtol=1e-4, atol=1e-3)


def test_kernel_runs_where_differentiated_and_only_the_gradients_used():
    images, grid, upstream = random_sampling_problem(2, SIZE)
    if BACKEND != "jax":
        output = ops.convert_to_numpy(sample(images, grid))
        expected = torch_grid_sample(
            images, grid, upstream, "channels_last", align_corners=False
        )
        np.testing.assert_allclose(output, expected[0], atol=1e-5)
        return
    import jax

    # Inference traced outside Keras' loops (what jax2onnx exports) is the
    # generic sampler.
    assert primitives_in(sample, images, grid) == set()
    both = primitives_in(
        jax.grad(lambda x, g: loss(x, g, upstream), (0, 1)), images, grid
    )
    assert both == {"keras_stn_bilinear_sample", "keras_stn_bilinear_gradients"}
    # A transformer at a model's input: the grid's gradient alone.
    jaxpr = str(
        jax.make_jaxpr(jax.grad(lambda g: loss(images, g, upstream)))(grid)
    )
    assert "wants=('points',)" in jaxpr
    jaxpr = str(
        jax.make_jaxpr(jax.grad(lambda x: loss(x, grid, upstream)))(images)
    )
    assert "wants=('images',)" in jaxpr


@pytest.mark.parametrize("private_api", ("present", "gone"))
def test_kernel_runs_in_keras_inference(monkeypatch, private_api):
    """Keras' `predict` traces stateless calls, which run the kernel's
    forward pass; without Keras' private answer, the generic sampler."""
    import keras

    images, grid, upstream = random_sampling_problem(7, SIZE)
    expected = torch_grid_sample(
        images, grid, upstream, "channels_last", align_corners=False
    )[0]
    if BACKEND == "jax" and private_api == "gone":
        monkeypatch.setattr(
            jax_sampling, "private_function", lambda module, name: None
        )
    with keras.StatelessScope():
        output = ops.convert_to_numpy(sample(images, grid))
        if BACKEND == "jax":
            expected_primitives = (
                {"keras_stn_bilinear_sample"}
                if private_api == "present"
                else set()
            )
            assert primitives_in(sample, images, grid) == expected_primitives
    np.testing.assert_allclose(output, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("wrt", ("images", "grid", "both"))
def test_compiled_gradients_match_pytorch(wrt):
    """Under `jit`, as `fit` runs them, with the gradients asked for."""
    images, grid, upstream = random_sampling_problem(3, SIZE)
    _, expected_images, expected_grid = torch_grid_sample(
        images, grid, upstream, "channels_last"
    )
    expected = {
        "images": [expected_images],
        "grid": [expected_grid],
        "both": [expected_images, expected_grid],
    }[wrt]
    arguments = {"images": [0], "grid": [1], "both": [0, 1]}[wrt]

    def partial_loss(*differentiated):
        tensors = [images, grid]
        for index, tensor in zip(arguments, differentiated, strict=True):
            tensors[index] = tensor
        return loss(*tensors, upstream)

    _, gradients = value_and_gradients(
        partial_loss, *[[images, grid][index] for index in arguments]
    )
    for gradient, reference in zip(gradients, expected, strict=True):
        np.testing.assert_allclose(gradient, reference, rtol=1e-4, atol=1e-3)
    if BACKEND == "jax":
        import jax

        positions = tuple(range(len(arguments)))
        gradients = jax.jit(jax.grad(partial_loss, positions))(
            *[[images, grid][index] for index in arguments]
        )
        for gradient, reference in zip(gradients, expected, strict=True):
            np.testing.assert_allclose(
                np.asarray(gradient), reference, rtol=1e-4, atol=1e-3
            )


def test_vmapped_gradients_match_pytorch_per_slice():
    """`jax.vmap` folds its axis into the kernel's batch."""
    stacks = [random_sampling_problem(seed, SIZE) for seed in (4, 5)]
    images, grid, upstream = (
        np.stack(parts) for parts in zip(*stacks, strict=True)
    )
    if BACKEND == "jax":
        import jax

        gradients = jax.vmap(jax.grad(loss, (0, 1)))(images, grid, upstream)
        # The grid of the first slice alone: an unbatched argument.
        shared = jax.vmap(jax.grad(loss, (0, 1)), in_axes=(0, None, 0))(
            images, grid[0], upstream
        )
    else:
        gradients = [
            np.stack(parts)
            for parts in zip(
                *[
                    value_and_gradients(lambda x, g, u=u: loss(x, g, u), x, g)[
                        1
                    ]
                    for x, g, u in zip(images, grid, upstream, strict=True)
                ],
                strict=True,
            )
        ]
        shared = None
    for index in range(2):
        _, expected_images, expected_grid = torch_grid_sample(
            images[index], grid[index], upstream[index], "channels_last"
        )
        np.testing.assert_allclose(
            np.asarray(gradients[0][index]), expected_images, atol=1e-5
        )
        np.testing.assert_allclose(
            np.asarray(gradients[1][index]), expected_grid, atol=1e-3
        )
        if shared is not None:
            _, expected_images, _ = torch_grid_sample(
                images[index], grid[0], upstream[index], "channels_last"
            )
            np.testing.assert_allclose(
                np.asarray(shared[0][index]), expected_images, atol=1e-5
            )


def test_exported_gradients_hold_no_kernel():
    """`jax.export` lowers the kernel's operations to the generic sampler,
    which a serialized module can hold (a custom call's target is not)."""
    images, grid, upstream = random_sampling_problem(6, SIZE)
    _, expected_images, expected_grid = torch_grid_sample(
        images, grid, upstream, "channels_last"
    )
    if BACKEND != "jax":
        _, gradients = value_and_gradients(
            lambda x, g: loss(x, g, upstream), images, grid
        )
    else:
        import jax

        gradient = jax.jit(jax.grad(lambda x, g: loss(x, g, upstream), (0, 1)))
        assert "KerasStnBilinear" in gradient.lower(images, grid).as_text()
        exported = jax.export.export(gradient)(images, grid)
        assert "KerasStnBilinear" not in exported.mlir_module()
        gradients = exported.call(images, grid)
    np.testing.assert_allclose(
        np.asarray(gradients[0]), expected_images, atol=1e-5
    )
    np.testing.assert_allclose(
        np.asarray(gradients[1]), expected_grid, atol=1e-3
    )


def test_other_platforms_than_the_cpu_lower_to_the_generic_sampler():
    """The kernel's FFI targets are registered for the CPU alone: lowered
    for a GPU or a TPU, a training step's sampler holds no call to them."""
    images, grid, upstream = random_sampling_problem(8, SIZE)
    if BACKEND != "jax":
        points = [ops.convert_to_tensor(grid)]
        assert not takes_path(
            jax_sampling,
            ops.convert_to_tensor(images),
            points,
            "bilinear",
            "zeros",
        )
        return
    import jax

    step = jax.jit(
        jax.value_and_grad(lambda x, g: loss(x, g, upstream), (0, 1))
    )
    traced = step.trace(images, grid)
    lowered = traced.lower(lowering_platforms=("cpu",)).as_text()
    assert "KerasStnBilinear" in lowered
    for platform in ("cuda", "rocm", "tpu"):
        lowered = traced.lower(lowering_platforms=(platform,)).as_text()
        assert "KerasStnBilinear" not in lowered, platform


def test_a_gpu_default_backend_takes_the_generic_sampler(monkeypatch):
    """Where JAX computes on another device than the CPU by default, the
    kernel's custom gradient would only lower to the generic sampler and
    compute its forward pass twice: the generic sampler runs instead."""
    images, grid, _ = random_sampling_problem(8, SIZE)
    images, grid = ops.convert_to_tensor(images), ops.convert_to_tensor(grid)
    points = [grid[..., 0], grid[..., 1]]
    assert takes_path(jax_sampling, images, points, "bilinear", "zeros") == (
        BACKEND == "jax"
    )
    if BACKEND == "jax":
        import jax

        monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert not takes_path(jax_sampling, images, points, "bilinear", "zeros")


def test_without_a_compiler_the_generic_sampler_runs(monkeypatch):
    images, grid, upstream = random_sampling_problem(7, SIZE)
    _, expected_images, expected_grid = torch_grid_sample(
        images, grid, upstream, "channels_last"
    )
    monkeypatch.setattr(jax_sampling, "_registered_targets", lambda: False)
    if BACKEND == "jax":
        import jax

        gradient = jax.jit(jax.grad(lambda x, g: loss(x, g, upstream), (0, 1)))
        assert "KerasStnBilinear" not in gradient.lower(images, grid).as_text()
        gradients = gradient(images, grid)
    else:
        _, gradients = value_and_gradients(
            lambda x, g: loss(x, g, upstream), images, grid
        )
    np.testing.assert_allclose(
        np.asarray(gradients[0]), expected_images, atol=1e-5
    )
    np.testing.assert_allclose(
        np.asarray(gradients[1]), expected_grid, atol=1e-3
    )


def test_nan_and_infinite_points_follow_the_rule():
    """The kernel's rule (`keras_stn.ops.sampling.nonfinite`), under
    `jax.grad`."""
    images, grid, upstream = random_sampling_problem(8, (1, 5, 6, 2, 1, 4))
    grid[0, 0, :] = [[np.nan, 0.0], [np.inf, 0.0], [-np.inf, 0.3], [0.2, 0.1]]
    for padding_mode in ("zeros", "border"):
        output = ops.convert_to_numpy(sample(images, grid, padding_mode))
        _, (grad_images, grad_grid) = value_and_gradients(
            lambda x, g, p=padding_mode: loss(x, g, upstream, p), images, grid
        )
        assert np.isnan(output[0, 0, 0]).all()
        np.testing.assert_array_equal(grad_grid[0, 0, 0], 0.0)
        # No gradient along an infinite coordinate's axis; with zero
        # padding, none at all (the point is outside).
        np.testing.assert_array_equal(grad_grid[0, 0, 1:3, 0], 0.0)
        assert np.isfinite(grad_images).all()
        finite = torch_grid_sample(
            images,
            grid[:, :, 3:],
            upstream[:, :, 3:],
            "channels_last",
            padding_mode=padding_mode,
            align_corners=False,
        )
        np.testing.assert_allclose(output[:, :, 3:], finite[0], atol=1e-6)
        np.testing.assert_allclose(grad_grid[:, :, 3:], finite[2], atol=1e-4)
        if padding_mode == "zeros":
            np.testing.assert_array_equal(output[0, 0, 1:3], 0.0)
            np.testing.assert_array_equal(grad_grid[0, 0, 1:3], 0.0)
        else:
            # The edge pixels: right edge at +inf, left at -inf.
            np.testing.assert_allclose(
                output[0, 0, 1], images[0, 2, 5] * 1.0, atol=1e-6
            )
