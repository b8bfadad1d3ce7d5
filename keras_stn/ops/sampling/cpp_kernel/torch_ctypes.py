"""The bilinear sampler as a C++ kernel on torch's CPU.

Bilinear (trilinear) sampling with `"zeros"` or `"border"` padding runs its
forward pass, and where autograd records it (a training step: gradients
enabled and an argument that requires them) its backward pass, as the C++
kernel of `bilinear_sampling.h`, called through `ctypes` on torch's number
of intra-op threads, with the generic sampler's numbers (its rule for NaN
and infinite points included) up to float rounding. The backward pass
computes only the gradients autograd needs; where autograd records it in
turn (`create_graph=True`, for second derivatives), it computes them
through the generic sampler instead. `grid_sample` hands the kernel its
grid as it is.

`torch.compile` calls the forward pass as an opaque operator where
autograd does not record the sampling (`takes`). Elsewhere PyTorch's own
`grid_sample` runs (`pytorch_grid_sample`), or the generic sampler: in
compiled training steps, while a model is exported or traced
(`torch.export`, `torch.jit.trace`, ONNX export: the artifact must hold
PyTorch's own operations), under `torch.func` transforms
(`keras_stn.ops.sampling.torch_values`), on other devices than the CPU, and
where no C++ compiler can build the kernel
(`keras_stn.ops.sampling.cpp_kernel.build`).
"""

import ctypes
import functools
import pathlib

import keras

from keras_stn.ops.dtypes import dtype_name
from keras_stn.ops.sampling.cpp_kernel.build import KERNEL_PADDING_MODES
from keras_stn.ops.sampling.cpp_kernel.build import compiled_library
from keras_stn.ops.sampling.cpp_kernel.build import coordinates_code
from keras_stn.ops.sampling.cpp_kernel.build import kernel_convention
from keras_stn.ops.sampling.cpp_kernel.build import stacked
from keras_stn.ops.sampling.cpp_kernel.build import targets_avx2
from keras_stn.ops.sampling.generic import pixel_points
from keras_stn.ops.sampling.generic import sample_bilinear
from keras_stn.ops.sampling.options import SamplingOptions
from keras_stn.ops.sampling.torch_values import records
from keras_stn.typing import Tensor

# The kernel's dtype codes.
KERNEL_DTYPE_CODES = {"float32": 0, "float64": 1}


def sample(
    images: Tensor, points: Tensor | list[Tensor], options: SamplingOptions
) -> Tensor:
    """Sample with the kernel through ctypes (`generic.sample`'s
    arguments, bilinear)."""
    convention = kernel_convention(options)
    return _kernel_sample(
        images, stacked(points), options.padding_mode, convention
    )


def available() -> bool:
    """Whether the kernel's library could be built and loaded here."""
    return _library() is not None


def takes(*tensors: Tensor, records: bool) -> bool:
    """Whether the kernel may sample these torch tensors here.

    It reads CPU memory, so every tensor must be on the CPU. Eager calls
    call it through ctypes; `torch.compile` calls its forward pass as an
    opaque operator (`keras_stn::bilinear_sample`) where autograd does not
    record the sampling. What is exported (`torch.export`, ONNX) and what
    TorchScript traces holds PyTorch's own operations instead.

    Args:
        *tensors: the images and the points, torch tensors (no
            `torch.func` wrappers: `torch_values.transformed`).
        records: whether autograd records the sampling.

    Returns:
        Whether `sample` may take them.
    """
    import torch

    if (
        torch.onnx.is_in_onnx_export()
        or torch.jit.is_tracing()
        or not all(tensor.device.type == "cpu" for tensor in tensors)
    ):
        return False
    if torch.compiler.is_compiling() and (
        records or torch.compiler.is_exporting()
    ):
        return False
    return available()


def _kernel_sample(images, points, padding_mode, align_corners):
    """Sample channels-last images bilinearly at points.

    The numbers of the generic sampler (for points in pixels or
    normalized ones) for bilinear
    sampling with `"zeros"` or `"border"` padding.

    Args:
        images: float tensor of shape `(batch, *spatial, channels)`.
        points: float tensor of shape `(batch, *output_shape, rank)`, the
            points' coordinates in the order `x, y[, z]`.
        padding_mode: `"zeros"` or `"border"`.
        align_corners: `None` for coordinates in pixels (pixel `i` has its
            centre at `i`); else normalized ones, with this convention.

    Returns:
        Tensor of shape `(batch, *output_shape, channels)`.
    """
    import torch

    output_shape = points.shape[1:-1]
    flat = points.reshape(points.shape[0], -1, points.shape[-1])
    if records(images, flat):
        outputs = _sampling_function().apply(
            images, flat, padding_mode, align_corners
        )
    elif torch.compiler.is_compiling():
        outputs = opaque_bilinear_sample(
            images, flat, *_kernel_options(padding_mode, align_corners)
        )
    else:
        options = _kernel_options(padding_mode, align_corners)
        outputs = _forward(images, flat, options)
    return outputs.reshape(*points.shape[:1], *output_shape, images.shape[-1])


def _kernel_options(padding_mode, align_corners):
    """The kernel's padding and coordinates codes."""
    return KERNEL_PADDING_MODES[padding_mode], coordinates_code(align_corners)


def _forward(images, points, options):
    """The kernel's forward pass: points of shape `(batch, points, rank)`,
    outputs of shape `(batch, points, channels)`."""
    outputs = images.new_empty((*points.shape[:2], images.shape[-1]))
    _call(
        "KerasStnBilinearSample",
        [images.contiguous(), points.contiguous(), outputs],
        options,
    )
    return outputs


@functools.cache
def _sampling_function():
    """The kernel as a `torch.autograd.Function` of `(images, points,
    padding_mode, align_corners)`, points of shape `(batch, points,
    rank)`."""
    import torch

    class Sample(torch.autograd.Function):
        @staticmethod
        def forward(ctx, images, points, padding_mode, align_corners):
            options = _kernel_options(padding_mode, align_corners)
            outputs = _forward(images, points, options)
            ctx.save_for_backward(images, points)
            ctx.options = options
            ctx.padding_mode = padding_mode
            ctx.align_corners = align_corners
            return outputs

        @staticmethod
        def backward(ctx, upstream):
            images, points = ctx.saved_tensors
            wants = ctx.needs_input_grad[:2]
            if torch.is_grad_enabled():
                # `create_graph=True`: gradients that are differentiated in
                # turn, through the generic sampler's graph. Views of the
                # arguments, so that the gradients are partial ones where
                # the points were computed from the images.
                images, points = images.view_as(images), points.view_as(points)
                align_corners = ctx.align_corners
                pixels = pixel_points(
                    images,
                    points,
                    bool(align_corners),
                    align_corners is not None,
                )
                outputs = sample_bilinear(images, pixels, ctx.padding_mode)
                inputs = zip((images, points), wants, strict=True)
                wanted = [tensor for tensor, want in inputs if want]
                found = iter(
                    torch.autograd.grad(
                        outputs, wanted, upstream, create_graph=True
                    )
                )
                grad_images, grad_points = (
                    next(found) if w else None for w in wants
                )
                return grad_images, grad_points, None, None
            grad_images = torch.empty_like(images) if wants[0] else None
            grad_points = torch.empty_like(points) if wants[1] else None
            if any(wants):
                buffers = [
                    images.contiguous(),
                    points.contiguous(),
                    upstream.contiguous(),
                    grad_images,
                    grad_points,
                ]
                _call("KerasStnBilinearGradients", buffers, ctx.options)
            return grad_images, grad_points, None, None

    return Sample


def _call(name, tensors, options):
    """Call the kernel's C function `name` on tensors' buffers.

    Args:
        name: the C function.
        tensors: its buffers, the images and the points first; `None` for
            a null buffer.
        options: the padding and coordinates codes.
    """
    import torch

    images, points = tensors[:2]
    padding, coordinates = options
    rank = images.dim() - 2
    sizes = (ctypes.c_int64 * (rank + 2))(*images.shape)
    dtype = KERNEL_DTYPE_CODES[dtype_name(images.dtype)]
    buffers = [
        None if tensor is None else ctypes.c_void_p(tensor.data_ptr())
        for tensor in tensors
    ]
    status = getattr(_library(), name)(
        dtype,
        *buffers,
        rank,
        sizes,
        ctypes.c_int64(points.shape[1]),
        padding,
        coordinates,
        torch.get_num_threads(),
    )
    if status != 0:
        raise ValueError(
            f"keras-stn's sampling kernel takes float32 or float64 tensors; "
            f"received {images.dtype}"
        )


def build_kernel() -> pathlib.Path | None:
    """Build torch's kernel library, plain C functions (or find it built).

    Returns:
        Its path, or `None` where it could not be built.
    """
    return compiled_library("c_bilinear_sampling.cc")


@functools.cache
def _library():
    """The kernel's C library, loaded (built on first use), or `None`."""
    path = build_kernel()
    return None if path is None else ctypes.CDLL(str(path))


if keras.backend.backend() == "torch":
    import torch

    # `torch.compile` asks `available` and `targets_avx2` once, while it
    # traces, and calls the operator, defined once, at import: it cannot
    # trace a definition.
    torch.compiler.assume_constant_result(available)
    torch.compiler.assume_constant_result(targets_avx2)

    @torch.library.custom_op("keras_stn::bilinear_sample", mutates_args=())
    def opaque_bilinear_sample(
        images: torch.Tensor,
        points: torch.Tensor,
        padding: int,
        coordinates: int,
    ) -> torch.Tensor:
        """The kernel's forward pass as a custom operator, which
        `torch.compile` calls as it is: `_forward`'s shapes, the kernel's
        padding and coordinates codes."""
        return _forward(images, points, (padding, coordinates))

    @opaque_bilinear_sample.register_fake
    def _(images, points, padding, coordinates):
        return images.new_empty((*points.shape[:2], images.shape[-1]))
