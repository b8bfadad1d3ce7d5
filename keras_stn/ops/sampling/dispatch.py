"""Which implementation samples: the sampler's paths, decided here alone.

`grid_sample` (a normalized grid) and `sample_pixels` (points in pixels)
hand every sampling to `sample`, which picks its path with `choose_path`:
the first row of this table whose conditions hold, with
`implementation="auto"` (`"keras"` always takes the generic sampler).
Every path gives the generic sampler's numbers, its rule for NaN and
infinite points included, up to float rounding (`tests/test_native_sampling.py`).

| path (module) | backend | where | why |
|---|---|---|---|
| generic (`generic`) | TensorFlow | a layer outside training, in a graph that may be exported (`model.export`, a user's `tf.function`: any but Keras' own steps, `tensorflow_ops.runs_in_this_process`) | an exported graph must hold TensorFlow's own ops, which every converter takes (tf2onnx cannot convert XLA clusters; the kernel's ops would need keras-stn to load) |
| C++ kernel, as TensorFlow ops (`cpp_kernel.tensorflow_ops`) | TensorFlow | kernel case (below), a tape records the sampling or it runs in this process only (eager calls, Keras' `fit`, `evaluate` and `predict` steps), outside XLA compilation, no GPU, kernel built | the forward and only the recorded gradients in one fused pass each; TensorFlow's plain ops run one by one |
| C++ kernel, through XLA's FFI (`cpp_kernel.jax_ffi`) | JAX | kernel case, JAX's default backend the CPU | XLA's CPU gathers and scatter-add run one element at a time on one thread; its operations lower to the generic sampler in `jax.export` (and on other platforms, where its backward pass would compute the forward pass again), and direct traces (jax2onnx) take the generic sampler |
| C++ kernel, through ctypes (`cpp_kernel.torch_ctypes`) | torch | kernel case; points in pixels, or a normalized grid of 2 or more channels where autograd records the sampling, of 16 or more without gradients, or of 2**17 or more points that its vector blocks sample (`build.samples_in_blocks`); not exported or traced (`torch.export`, `torch.jit.trace`, ONNX), under `torch.compile` only where autograd does not record it (then as an opaque operator), CPU tensors, kernel built | faster than PyTorch's kernel both ways on feature maps and volumes, and than its pixel path (power-of-two padding, a rounding guard) on any channels; without gradients PyTorch's forward pass, vectorized over the points, wins at a normalized grid of few channels in small calls and off the kernel's blocks; in training at a normalized grid of one channel PyTorch's kernel costs less around each call |
| generic (`generic`) | torch | a `torch.func` transform or forward-mode AD reaches an argument (`torch_values.transformed`) | the kernel needs buffers and drops tangents, and PyTorch's `grid_sample` has no forward-mode derivative (`jacfwd`, `torch.func.hessian`) |
| PyTorch's `grid_sample` (`pytorch_grid_sample`) | torch | float32 or float64, spatial sizes known, not in ONNX export; points in pixels need `"zeros"` or `"border"` padding | one fused kernel each way instead of dozens of eager ops; pixel points are exact only through padding to power-of-two sizes, which moves the mirror lines of `"reflection"` |
| XLA clusters (`xla_clusters`) | TensorFlow | everything else | the generic sampler's ops fused by XLA: forward, and one cluster per gradient |
| generic (`generic`) | JAX, torch | everything else | every mode, padding mode and dtype, differentiable to any order |

The kernel case: bilinear (trilinear) sampling with `"zeros"` or `"border"`
padding of float32 or float64 images at points of the same dtype
(`cpp_kernel.build.kernel_samples`).

Every path module has the same `sample(images, points, options)`
(`keras_stn.ops.sampling.options.SamplingOptions`);
`docs/design/sampler-paths.md` has the measurements behind each row.
"""

import functools
import math
import types

import keras
from keras import ops

from keras_stn.ops.coordinates import are_static
from keras_stn.ops.dtypes import dtype_name
from keras_stn.ops.sampling import generic
from keras_stn.ops.sampling import pytorch_grid_sample
from keras_stn.ops.sampling import torch_values
from keras_stn.ops.sampling import xla_clusters
from keras_stn.ops.sampling.antialiasing import antialiased_sample
from keras_stn.ops.sampling.cpp_kernel import jax_ffi
from keras_stn.ops.sampling.cpp_kernel import tensorflow_ops
from keras_stn.ops.sampling.cpp_kernel import torch_ctypes
from keras_stn.ops.sampling.cpp_kernel.build import kernel_samples
from keras_stn.ops.sampling.cpp_kernel.build import samples_in_blocks
from keras_stn.ops.sampling.options import SamplingOptions
from keras_stn.typing import Tensor

# Without gradients, on torch, the C++ kernel samples a normalized grid
# faster than PyTorch's `grid_sample` from this many channels on, and, where
# its vector blocks sample the images (`build.samples_in_blocks`), in calls
# of this many points or more.
INFERENCE_KERNEL_MIN_CHANNELS = 16
INFERENCE_KERNEL_MIN_POINTS = 2**17


def sample(
    images: Tensor,
    points: Tensor | list[Tensor],
    options: SamplingOptions,
    *,
    implementation: str = "auto",
    antialias: bool = False,
    inference: bool = False,
) -> Tensor:
    """Sample channels-last images on the path that `choose_path` picks.

    Args:
        images: float tensor of shape `(batch, *spatial, channels)`,
            checked.
        points: a normalized grid or points in pixels, as
            `options.normalized` says.
        options: the sampling's options (`SamplingOptions`).
        implementation: `"auto"` or `"keras"`.
        antialias: whether to read a mip pyramid where the points are
            sparser than the pixels (`keras_stn.ops.sampling.antialiasing`);
            each level is sampled on its own path.
        inference: whether a layer samples outside training.

    Returns:
        Tensor of shape `(batch, *output_shape, channels)`.
    """
    choices = {"implementation": implementation, "inference": inference}
    if options.normalized:
        output_shape = tuple(points.shape[1:-1])
    else:
        output_shape = tuple(points[0].shape[1:])
    if 0 in output_shape:
        # No output points, so nothing to read (not every path reshapes an
        # empty grid).
        return ops.zeros(
            (ops.shape(images)[0], *output_shape, ops.shape(images)[-1]),
            images.dtype,
        )
    if antialias:
        pixels = generic.pixel_points(
            images, points, options.align_corners, options.normalized
        )
        level = functools.partial(
            sample, options=options._replace(normalized=False), **choices
        )
        return antialiased_sample(images, pixels, level)
    if images.shape[0] == 0:
        # Nothing to sample, but not every path gathers from an empty
        # operand (JAX's `take` then drops the indices' axes): sample one
        # blank example and drop it, which keeps the shapes and gradients.
        if options.normalized:
            points = _with_blank_example(points)
        else:
            points = [_with_blank_example(point) for point in points]
        images = _with_blank_example(images)
        return sample(images, points, options, **choices)[:0]
    path = choose_path(images, points, options, **choices)
    return path.sample(images, points, options)


def choose_path(
    images: Tensor,
    points: Tensor | list[Tensor],
    options: SamplingOptions,
    *,
    implementation: str = "auto",
    inference: bool = False,
) -> types.ModuleType:
    """The module that samples these arguments here: the table's first row.

    Args:
        images, points, options, implementation, inference: as for
            `sample`.

    Returns:
        The path's module, whose `sample` function samples.
    """
    if implementation == "keras":
        return generic
    mode, padding_mode, _, normalized = options
    backend = keras.backend.backend()
    tensors = [points] if normalized else list(points)
    kernel_case = kernel_samples(images, tensors, mode, padding_mode)
    if backend == "tensorflow":
        in_this_process = tensorflow_ops.runs_in_this_process()
        if inference and not in_this_process:
            return generic
        if (
            kernel_case
            and (
                in_this_process or tensorflow_ops.tape_records(images, *tensors)
            )
            and not tensorflow_ops.in_xla_compilation()
            and not tensorflow_ops.has_gpus()
            and tensorflow_ops.available()
        ):
            return tensorflow_ops
        return xla_clusters
    if backend == "jax":
        import jax

        on_cpu = jax.default_backend() == "cpu"
        return jax_ffi if kernel_case and on_cpu else generic
    if backend == "torch":
        import torch

        if torch_values.transformed(images, *tensors):
            return generic
        records = torch_values.records(images, *tensors)
        if (
            kernel_case
            and _torch_kernel_pays(images, points, normalized, records)
            and torch_ctypes.takes(images, *tensors, records=records)
        ):
            return torch_ctypes
        if (
            dtype_name(images.dtype) in pytorch_grid_sample.DTYPES
            and are_static(images.shape[1:-1])
            and not torch.onnx.is_in_onnx_export()
            and (
                normalized
                or padding_mode in pytorch_grid_sample.PIXEL_PADDING_MODES
            )
        ):
            return pytorch_grid_sample
    return generic


def _torch_kernel_pays(images, points, normalized, records):
    """Whether the C++ kernel samples faster than PyTorch's `grid_sample`
    path on torch (measured side by side in `docs/design/sampler-paths.md`).

    At points in pixels, where PyTorch's path pads the images and guards
    the points, it does. At a normalized grid it does for several channels
    in training (forward and backward); without gradients, for many
    channels, and in large calls where its vector blocks sample: PyTorch's
    forward pass is vectorized over the points, as the blocks are, and
    costs less around a small call. The same rule holds under
    `torch.compile`, so that a compiled model gives its eager numbers bit
    for bit.
    """
    if not normalized:
        return True
    channels = images.shape[-1]
    if records:
        return channels >= 2
    return channels >= INFERENCE_KERNEL_MIN_CHANNELS or (
        math.prod(points.shape[:-1]) >= INFERENCE_KERNEL_MIN_POINTS
        and samples_in_blocks(images)
    )


def _with_blank_example(tensor):
    """`tensor` with one more example of zeros along its batch axis."""
    blank = ops.zeros((1, *tensor.shape[1:]), tensor.dtype)
    return ops.concatenate([tensor, blank])
