"""The C++ sampling kernel of the torch backend, against PyTorch's kernel.

On torch, bilinear sampling with `"zeros"` or `"border"` padding of images of
more than one channel runs as the kernel of
`keras_stn.ops.sampling.cpp_kernel.torch_ctypes` where autograd records it, and
PyTorch's own `grid_sample` elsewhere. On the other backends the kernel never
runs, and the same calls give PyTorch's numbers through their own paths.
"""

import importlib
from unittest import mock

import keras
import numpy as np
import pytest
from keras import ops

from keras_stn import SpatialTransformer
from keras_stn.ops import grid_sample
from keras_stn.ops.sampling.cpp_kernel import build as compiled_kernels
from keras_stn.ops.sampling.options import SamplingOptions

from helpers import BACKEND
from helpers import random_sampling_problem
from helpers import takes_path
from helpers import torch_grid_sample
from helpers import value_and_gradients

pytorch_grid_sample = importlib.import_module(
    "keras_stn.ops.sampling.pytorch_grid_sample"
)
torch_sampling = importlib.import_module(
    "keras_stn.ops.sampling.cpp_kernel.torch_ctypes"
)

SIZE = (3, 17, 23, 4, 19, 11)


def recorded_calls(monkeypatch):
    """Record the kernel's calls from now on: `(name, gradients)`, with the
    gradients a backward call computes (`"images"`, `"points"`)."""
    calls = []
    original = torch_sampling._call

    def recorded(name, tensors, options):
        computed = ()
        if name == "KerasStnBilinearGradients":
            grad_images, grad_points = tensors[3:]
            computed = tuple(
                which
                for which, gradient in (
                    ("images", grad_images),
                    ("points", grad_points),
                )
                if gradient is not None
            )
        calls.append((name, computed))
        return original(name, tensors, options)

    monkeypatch.setattr(torch_sampling, "_call", recorded)
    return calls


def declined(path, images, grid, padding_mode="zeros"):
    """Whether the sampler's `path` declines bilinear sampling of the NumPy
    `images` at `grid` here (the torch paths, on the other backends)."""
    return not takes_path(
        path,
        ops.convert_to_tensor(images),
        [ops.convert_to_tensor(grid)],
        "bilinear",
        padding_mode,
    )


def gradients_without_the_kernel(images, grid, upstream, monkeypatch):
    """The gradients of `sum(grid_sample(images, grid) * upstream)`,
    asserting that the kernel did not run."""
    calls = recorded_calls(monkeypatch)
    _, gradients = value_and_gradients(
        lambda x, g: ops.sum(
            ops.multiply(
                grid_sample(x, g, data_format="channels_last"), upstream
            )
        ),
        images,
        grid,
    )
    assert calls == []
    return gradients


def test_kernel_only_where_it_applies():
    images, grid, _ = random_sampling_problem(0, SIZE)
    if BACKEND != "torch":
        images = ops.convert_to_tensor(images)
        points = [ops.convert_to_tensor(grid)]
        assert not takes_path(
            torch_sampling, images, points, "bilinear", "zeros"
        )
        return
    import torch

    images = torch.tensor(images)
    grid = torch.tensor(grid, requires_grad=True)

    def applies(images=images, grid=grid, mode="bilinear", padding="zeros"):
        return takes_path(torch_sampling, images, [grid], mode, padding)

    assert applies()
    assert applies(padding="border")
    assert not applies(padding="reflection")
    assert not applies(mode="nearest")
    assert not applies(images.half(), grid.half())
    # At points in pixels, PyTorch's path pads and guards them: the kernel
    # samples, with gradients or without.
    assert applies(images[..., :1])
    assert applies(grid=grid.detach())
    with torch.no_grad():
        assert applies()

    def at_grid(channels, grid=grid, dtype=torch.float32):
        images = torch.ones((*grid.shape[:3], channels), dtype=dtype)
        return takes_path(
            torch_sampling,
            images,
            grid.to(dtype),
            "bilinear",
            "zeros",
            normalized=True,
        )

    # At a normalized grid, in training, from two channels on; without
    # gradients, PyTorch's forward pass is faster up to 16 channels in
    # small calls, and where the kernel's vector blocks do not sample in
    # large ones.
    assert not at_grid(1)
    assert at_grid(2)
    assert not at_grid(3, grid.detach())
    assert not at_grid(15, grid.detach())
    assert at_grid(16, grid.detach())
    large = torch.zeros((2, 256, 256, 2))  # 2**17 points
    blocks = compiled_kernels.targets_avx2()
    for channels in (1, 3, compiled_kernels.BLOCK_MAX_CHANNELS):
        assert at_grid(channels, large) == blocks
        assert not at_grid(channels, large[:, :-1])
    assert not at_grid(3, large, torch.float64)
    assert not at_grid(compiled_kernels.BLOCK_MAX_CHANNELS + 1, large)
    assert at_grid(16, large)
    # TorchScript's tracer cannot record a call through ctypes.
    with mock.patch.object(torch.jit, "is_tracing", lambda: True):
        assert not applies()


def test_kernel_declines_tensors_off_the_cpu():
    """The kernel reads CPU memory: where any tensor is on another device (a
    GPU; here PyTorch's "meta" device, which every build has), PyTorch's own
    kernel samples instead."""
    images, grid, _ = random_sampling_problem(0, SIZE)
    if BACKEND != "torch":
        assert declined(torch_sampling, images, grid)
        return
    import torch

    images = torch.tensor(images, requires_grad=True)
    grid = torch.tensor(grid, requires_grad=True)

    def applies(images, grid):
        return takes_path(torch_sampling, images, [grid], "bilinear", "zeros")

    assert applies(images, grid)
    assert not applies(images.to("meta"), grid.to("meta"))
    assert not applies(images, grid.to("meta"))
    assert not applies(images.to("meta"), grid)


def test_pytorch_kernel_off_the_cpu_reads_no_values():
    """On a GPU, reading the points' extremes to skip the NaN rule would
    wait for the device on every call: off the CPU the rule always applies.
    PyTorch's "meta" device holds no values, so reading one fails there."""
    images, grid, _ = random_sampling_problem(0, SIZE)
    if BACKEND != "torch":
        assert declined(pytorch_grid_sample, images, grid)
        return
    import torch

    images, grid = torch.tensor(images), torch.tensor(grid)
    pixels = [grid[..., 0] * 5.0, grid[..., 1] * 3.0]
    for normalized, points, padding_modes in (
        (True, grid, ("zeros", "border", "reflection")),
        (False, pixels, ("zeros", "border")),
    ):
        for padding_mode in padding_modes:
            options = SamplingOptions(
                "bilinear", padding_mode, False, normalized
            )
            expected = pytorch_grid_sample.sample(images, points, options)
            outputs = pytorch_grid_sample.sample(
                images.to("meta"),
                points.to("meta")
                if normalized
                else [point.to("meta") for point in points],
                options,
            )
            assert outputs.device.type == "meta"
            assert outputs.shape == expected.shape


@pytest.mark.parametrize(
    "normalized, padding_mode",
    (
        (True, "zeros"),
        (True, "border"),
        (True, "reflection"),
        (False, "zeros"),
        (False, "border"),
    ),
)
def test_pytorch_kernel_off_the_cpu_applies_the_nan_rule(
    normalized, padding_mode, monkeypatch
):
    """Off the CPU (a GPU; here `readable` is made to say so) PyTorch's path
    applies the rule for NaN, infinite and far points on every call: the
    generic sampler's outputs and gradients."""
    images, grid, upstream = random_sampling_problem(2, (2, 5, 6, 3, 4, 7))
    if BACKEND != "torch":
        assert declined(pytorch_grid_sample, images, grid, padding_mode)
        return
    import torch

    from keras_stn.ops.sampling import generic

    grid[0, 0, :4] = [[np.nan, 0.1], [np.inf, 0.2], [-np.inf, 1e4], [3, -2]]
    if not normalized:
        grid = grid * 4.0 + 2.0
    monkeypatch.setattr(pytorch_grid_sample, "readable", lambda *t: False)
    options = SamplingOptions("bilinear", padding_mode, False, normalized)

    def sampled(path):
        x = torch.tensor(images, requires_grad=True)
        points = torch.tensor(grid, requires_grad=True)
        outputs = path.sample(
            x, points if normalized else list(points.unbind(-1)), options
        )
        finite = torch.where(outputs.isnan(), 0.0, outputs)
        (finite * torch.tensor(upstream)).sum().backward()
        return outputs.detach(), x.grad, points.grad

    for ours, expected in zip(
        sampled(pytorch_grid_sample), sampled(generic), strict=True
    ):
        np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("align_corners", (False, True))
@pytest.mark.parametrize("padding_mode", ("zeros", "border"))
@pytest.mark.parametrize("size", (SIZE, (2, 9, 7, 5, 2, 4, 6, 8)))
def test_outputs_and_gradients_match_pytorch(
    size, padding_mode, align_corners, monkeypatch
):
    images, grid, upstream = random_sampling_problem(1, size)
    expected = torch_grid_sample(
        images,
        grid,
        upstream,
        "channels_last",
        padding_mode=padding_mode,
        align_corners=align_corners,
    )
    calls = recorded_calls(monkeypatch)

    def loss(images, grid):
        output = grid_sample(
            images,
            grid,
            padding_mode=padding_mode,
            align_corners=align_corners,
            data_format="channels_last",
        )
        return ops.sum(ops.multiply(output, upstream))

    _, gradients = value_and_gradients(loss, images, grid)
    np.testing.assert_allclose(gradients[0], expected[1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gradients[1], expected[2], rtol=1e-4, atol=1e-3)
    output = grid_sample(
        images,
        grid,
        padding_mode=padding_mode,
        align_corners=align_corners,
        data_format="channels_last",
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(output), expected[0], rtol=1e-5, atol=1e-5
    )
    expected_calls = [
        ("KerasStnBilinearSample", ()),
        ("KerasStnBilinearGradients", ("images", "points")),
    ]
    # Differentiated, the kernel; the last call, of a few channels without
    # gradients, PyTorch's.
    assert calls == (expected_calls if BACKEND == "torch" else [])


def test_a_transformer_at_the_input_takes_only_the_grids_gradient(
    monkeypatch,
):
    """`fit`: the kernel, without the images' gradient; `predict`: its
    forward pass."""
    calls = recorded_calls(monkeypatch)
    rng = np.random.default_rng(2)
    images = rng.normal(size=(8, 12, 12, 3)).astype("float32")
    model = keras.Sequential(
        [
            keras.Input((12, 12, 3)),
            SpatialTransformer(output_size=(10, 10)),
            keras.layers.Flatten(),
            keras.layers.Dense(1),
        ]
    )
    model.compile("sgd", "mse")
    history = model.fit(images, np.zeros((8, 1)), epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    steps = [
        ("KerasStnBilinearSample", ()),
        ("KerasStnBilinearGradients", ("points",)),
    ] * 2
    assert calls == (steps if BACKEND == "torch" else [])
    model.predict(images, verbose=0)
    assert calls[4:] == (
        [("KerasStnBilinearSample", ())] if BACKEND == "torch" else []
    )


def test_traced_models_take_pytorchs_kernel(monkeypatch):
    """`torch.compile` and `torch.export` trace PyTorch's kernel instead."""
    images, grid, upstream = random_sampling_problem(3, SIZE)
    expected = torch_grid_sample(
        images, grid, upstream, "channels_last", align_corners=False
    )
    if BACKEND == "torch":
        import torch

        monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
        assert not takes_path(
            torch_sampling,
            torch.tensor(images),
            [torch.tensor(grid, requires_grad=True)],
            "bilinear",
            "zeros",
        )
    gradients = gradients_without_the_kernel(
        images, grid, upstream, monkeypatch
    )
    np.testing.assert_allclose(gradients[1], expected[2], rtol=1e-4, atol=1e-3)


def test_compiled_inference_calls_the_kernel_as_an_operator():
    """`torch.compile` of a call without gradients holds the kernel's
    operator, with the kernel's numbers; a compiled training step and
    `torch.export` hold PyTorch's `grid_sample`."""
    images, grid, upstream = random_sampling_problem(5, SIZE)
    expected = torch_grid_sample(
        images, grid, upstream, "channels_last", align_corners=False
    )
    if BACKEND != "torch":
        output = grid_sample(images, grid, data_format="channels_last")
        np.testing.assert_allclose(
            ops.convert_to_numpy(output), expected[0], rtol=1e-5, atol=1e-5
        )
        return
    import torch

    graphs = []

    def operators(graph_module, inputs):
        graphs.append(
            {
                str(node.target)
                for node in graph_module.graph.nodes
                if node.op == "call_function"
            }
        )
        return graph_module.forward

    def sample(images, grid):
        return grid_sample(images, grid, data_format="channels_last")

    compiled = torch.compile(sample, backend=operators, fullgraph=True)
    # Many channels, where the kernel samples faster than PyTorch's.
    images = np.concatenate([images] * 4, axis=-1)
    expected = [np.concatenate([expected[0]] * 4, axis=-1)]
    images, grid = torch.tensor(images), torch.tensor(grid)
    with torch.no_grad():
        output = compiled(images, grid)
    np.testing.assert_allclose(
        output.numpy(), expected[0], rtol=1e-5, atol=1e-5
    )
    assert "keras_stn.bilinear_sample.default" in graphs[-1]
    # A large call of three channels, which the kernel's vector blocks
    # sample faster than PyTorch's forward pass: the same choice while
    # tracing, in one graph, with the eager numbers.
    rng = np.random.default_rng(6)
    large_images = torch.tensor(
        rng.normal(size=(2, 256, 256, 3)), dtype=torch.float32
    )
    large_grid = torch.tensor(
        rng.uniform(-1.2, 1.2, (2, 256, 256, 2)), dtype=torch.float32
    )
    with torch.no_grad():
        output = compiled(large_images, large_grid)
        torch.testing.assert_close(
            output, sample(large_images, large_grid), rtol=0, atol=0
        )
    blocks = compiled_kernels.targets_avx2()
    operator = "bilinear_sample" if blocks else "grid_sample"
    assert f"keras_stn.{operator}.default" in graphs[-1]
    compiled(images, grid.requires_grad_())
    assert not any("keras_stn" in target for target in graphs[-1])

    class Sample(torch.nn.Module):
        def forward(self, images, grid):
            return sample(images, grid)

    exported = torch.export.export(Sample(), (images, grid.detach()))
    targets = {str(node.target) for node in exported.graph.nodes}
    assert "aten.grid_sampler.default" in targets
    assert not any("keras_stn" in target for target in targets)


def test_without_a_compiler_pytorchs_kernel_runs(monkeypatch):
    images, grid, upstream = random_sampling_problem(4, SIZE)
    expected = torch_grid_sample(
        images, grid, upstream, "channels_last", align_corners=False
    )
    monkeypatch.setattr(torch_sampling, "_library", lambda: None)
    gradients = gradients_without_the_kernel(
        images, grid, upstream, monkeypatch
    )
    np.testing.assert_allclose(gradients[0], expected[1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gradients[1], expected[2], rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("values_readable", (True, False))
def test_pytorch_pixel_path_keeps_the_kinks(values_readable, monkeypatch):
    """Points on and within a unit in the last place of whole pixel
    coordinates, where bilinear sampling has a kink: PyTorch's pixel path
    gives the generic sampler's outputs and gradients, whether it checks
    the points first (values readable) or always applies its guard."""
    rng = np.random.default_rng(6)
    images = rng.random((2, 28, 20, 2)).astype("float32")
    # Resizing at the identity (28 to 20 columns: 1.4 * i + 0.2), and
    # whole coordinates moved a unit in the last place either way.
    columns = (np.arange(20, dtype="float32") + 0.5) * 1.4 - 0.5
    rows = np.arange(1, 27, dtype="float32")
    rows = np.concatenate(
        [np.nextafter(rows, -1), rows, np.nextafter(rows, 99)]
    )
    x, y = np.meshgrid(columns, rows)
    points = np.broadcast_to(np.stack([x, y]), (2, 2, *x.shape))
    upstream = rng.normal(size=(2, *x.shape, 2)).astype("float32")
    if BACKEND != "torch":
        assert declined(pytorch_grid_sample, images, points[0])
        return
    import torch

    from keras_stn.ops.sampling import generic

    if not values_readable:
        monkeypatch.setattr(pytorch_grid_sample, "readable", lambda *t: False)
    options = SamplingOptions("bilinear", "zeros", False, False)

    def sampled(path):
        pixels = torch.tensor(points.copy(), requires_grad=True)
        outputs = path.sample(torch.tensor(images), list(pixels), options)
        (outputs * torch.tensor(upstream)).sum().backward()
        return outputs.detach(), pixels.grad

    (outputs, grads), (expected, expected_grads) = (
        sampled(pytorch_grid_sample),
        sampled(generic),
    )
    np.testing.assert_allclose(outputs, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(grads, expected_grads, rtol=1e-5, atol=1e-5)
