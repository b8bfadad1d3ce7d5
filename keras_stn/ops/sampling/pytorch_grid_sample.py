"""PyTorch's own sampling kernel, a path of the sampler on the torch backend.

PyTorch has a fused sampling kernel, `torch.nn.functional.grid_sample`, whose
conventions the `keras.ops` sampler follows (see
`keras_stn.ops.sampling.generic`). On the torch backend it replaces the dozens
of small ops of the generic path by one kernel each way, which matters most on
small inputs, where eager per-op overhead dominates. The numbers are the same
up to float rounding in the order of sums; whole pixel coordinates, such as the
identity transform's, are read exactly as the generic sampler reads them (see
`native_sample_pixels`). Where autograd records bilinear sampling (of more
than one channel at a normalized grid), keras-stn's C++ kernel of
`keras_stn.ops.sampling.cpp_kernel.torch_ctypes` runs instead
(`keras_stn.ops.sampling.dispatch`).
"""

import math

import keras

from keras_stn.ops.sampling.nonfinite import MARGIN
from keras_stn.ops.sampling.nonfinite import NORMALIZED_MARGIN
from keras_stn.ops.sampling.options import SamplingOptions
from keras_stn.ops.sampling.torch_values import readable
from keras_stn.ops.sampling.torch_values import records
from keras_stn.typing import Tensor

# What the kernel takes. ONNX export records the generic sampler instead (ONNX
# has no operator for the `nextafter` that keeps the kernel's numbers exact),
# and so do sizes that `torch.export` leaves symbolic (the padding to
# power-of-two sizes would fix them).
DTYPES = ("float32", "float64")
# The padding modes of `native_sample_pixels`.
PIXEL_PADDING_MODES = ("zeros", "border")


def sample(
    images: Tensor, points: Tensor | list[Tensor], options: SamplingOptions
) -> Tensor:
    """Sample with PyTorch's kernel: the arguments of
    `keras_stn.ops.sampling.generic.sample`, for float32 or float64 images
    of known sizes, and `"zeros"` or `"border"` padding at pixel points."""
    mode, padding_mode, align_corners, normalized = options
    if normalized:
        return native_grid_sample(
            images, points, mode, padding_mode, align_corners
        )
    return native_sample_pixels(images, points, mode, padding_mode)


def native_grid_sample(
    images: Tensor,
    grid: Tensor,
    mode: str,
    padding_mode: str,
    align_corners: bool,
) -> Tensor:
    """Sample channels-last images at a normalized grid with PyTorch's kernel.

    Args:
        images: float tensor of shape `(batch, *spatial, channels)`.
        grid: tensor of shape `(batch, *output_shape, rank)`, normalized
            coordinates `x, y[, z]` as `keras_stn.ops.grid_sample` takes
            them; `output_shape` may have any number of axes.
        mode: `"bilinear"`, `"nearest"` or `"bicubic"`.
        padding_mode: `"zeros"`, `"border"` or `"reflection"`.
        align_corners: the convention of the grid.

    Returns:
        Tensor of shape `(batch, *output_shape, channels)`. NaN and
        infinite points follow the rule of `nonfinite`, which the kernel
        alone does not (its backward pass crashes on some).
    """
    import torch

    sizes = images.shape[-2:0:-1]  # x, y[, z]
    single_pixel_axes = None
    if align_corners and 1 in sizes and padding_mode != "reflection":
        # Along an axis of one pixel, every coordinate maps to pixel 0 (its
        # scale is 0), and an infinite one to 0 * inf, NaN.
        single_pixel_axes = torch.tensor(
            [size == 1 for size in sizes], device=grid.device
        )
    grid, invalid = _finite(
        grid,
        -NORMALIZED_MARGIN,
        NORMALIZED_MARGIN,
        mode,
        padding_mode,
        records(images, grid),
        single_pixel_axes,
    )
    return _sample_channels_first(
        torch.movedim(images, -1, 1),
        grid,
        mode,
        padding_mode,
        align_corners,
        invalid,
    )


def native_sample_pixels(
    images: Tensor, points: list[Tensor], mode: str, padding_mode: str
) -> Tensor:
    """Sample channels-last images at pixel coordinates with PyTorch's kernel.

    The same contract as `generic.sample_finite_pixels`, for
    `"zeros"` and `"border"` padding (which do not depend on
    `align_corners`).

    The kernel takes normalized coordinates and multiplies them back by
    half the image's size, which rounds unless that size is a power of two.
    So the images are padded at their far ends (with zeros, or with their
    edge pixels for `"border"`) to power-of-two sizes first: then whole and
    half pixel coordinates survive the round trip exactly, the identity
    transform reads exactly the pixel centres, and its gradient is the
    generic sampler's. Other points may move by a unit in the last place;
    `_kernel_grid` sees that none crosses a whole pixel coordinate, where
    bilinear sampling has a kink, so the gradients stay the generic
    sampler's everywhere.

    Args:
        images: float tensor of shape `(batch, *spatial, channels)`.
        points: pixel coordinates, one tensor per spatial axis in the order
            `x, y[, z]`, each of shape `(batch, *output_shape)`.
        mode: `"bilinear"`, `"nearest"` or `"bicubic"`.
        padding_mode: `"zeros"` or `"border"`.

    Returns:
        Tensor of shape `(batch, *output_shape, channels)`.
    """
    import torch

    sizes = list(reversed(images.shape[1:-1]))  # x, y[, z]
    padded_sizes = [1 << (size - 1).bit_length() for size in sizes]
    points = torch.stack([point.to(images.dtype) for point in points], -1)
    # One bound for every axis, the largest axis' (`clamp` with a bound per
    # axis costs 10 times one number's): points past a smaller axis'
    # `MARGIN` read only padding there, with a zero gradient, wherever they
    # are clamped.
    points, invalid = _finite(
        points,
        -MARGIN,
        float(max(sizes)) - 1 + MARGIN,
        mode,
        padding_mode,
        records(images, points),
    )
    grid = _kernel_grid(points, padded_sizes)
    images = torch.movedim(images, -1, 1)
    if padded_sizes != sizes:
        # (0, extra x, 0, extra y[, 0, extra z]): the last axis first.
        padding = [
            amount
            for size, padded in zip(sizes, padded_sizes, strict=True)
            for amount in (0, padded - size)
        ]
        images = torch.nn.functional.pad(
            images,
            padding,
            mode="constant" if padding_mode == "zeros" else "replicate",
        )
    return _sample_channels_first(
        images, grid, mode, padding_mode, False, invalid
    )


def _finite(
    points, low, high, mode, padding_mode, records, single_pixel_axes=None
):
    """`nonfinite.finite_points`, in a few PyTorch ops.

    The same rule, fused, and skipped in eager calls whose points need
    nothing (finite, and within `[low, high]` with `"zeros"` and `"border"`
    padding): at MNIST size the `keras.ops` version costs more than the
    kernel itself, and marking the outputs costs two passes over them.
    Where the values may not be read (`torch_values.readable`: traced
    calls, tensors on other devices than the CPU), it always applies.
    Bilinear sampling with `"zeros"` padding that autograd does not record
    needs less: PyTorch's kernel samples NaN in every channel at a NaN
    point (its weights are NaN), which the rule keeps, and 0 at every
    finite point outside, however far (`tests/test_nonfinite.py`), but NaN
    at an infinite one. So there a sum of squares of the points (one read,
    half a clamp's time at 8x224x224 points) shows that none is infinite or
    NaN, or else a clamp to the margin moves the infinite ones (the
    backward pass would give a NaN point a NaN gradient).

    Args:
        points: coordinates, `(..., rank)`, `x, y[, z]` last.
        low: where finite points are clamped from, with `"zeros"` and
            `"border"` padding, along every axis.
        high: where they are clamped to, along every axis.
        mode: `"bilinear"`, `"nearest"` or `"bicubic"`.
        padding_mode: `"zeros"`, `"border"` or `"reflection"`.
        records: whether autograd records the sampling.
        single_pixel_axes: `None`, or booleans, one per axis, true where an
            infinite coordinate makes its point sample NaN (an axis of one
            pixel with `align_corners=True`).

    Returns:
        `(points, invalid)`: finite points, which sample (with their zero
        gradients) what the rule says, and flags of shape `points.shape[:-1]`
        for the points whose outputs are NaN, or `None` where the rule
        changes nothing.
    """
    import torch

    nan_samples_nan = mode == "bilinear" and padding_mode == "zeros"
    values = points.detach()
    if nan_samples_nan and single_pixel_axes is None and not records:
        if readable(values) and _all_finite(values):
            return points, None
        return points.clamp(low, high), None
    if readable(values) and _ordinary(values, low, high, padding_mode):
        return points, None
    if padding_mode == "reflection":
        invalid = ~torch.isfinite(values)
        return torch.nan_to_num(points, 0.0, 0.0, 0.0), invalid.any(-1)
    invalid = torch.isnan(values)
    if single_pixel_axes is not None:
        invalid = invalid | (torch.isinf(values) & single_pixel_axes)
    # `nan_to_num` sends infinities to the largest floats, then clamped (in
    # place: one copy of the points, not two); its gradient, and `clamp`'s,
    # is zero where they move a point.
    return torch.nan_to_num(points, 0.0).clamp_(low, high), invalid.any(-1)


def _all_finite(values):
    """Whether every value is finite, by one BLAS dot product.

    A sum of squares is finite only if every value is, and it reads the
    values once, faster than `isfinite`, `aminmax` or a clamp; values
    beyond the square root of the dtype's largest number (1.8e19 in
    float32) make it infinite too, which only sends them to the clamp.
    """
    import torch

    flat = values.reshape(-1)
    return math.isfinite(float(torch.dot(flat, flat)))


def _ordinary(values, low, high, padding_mode):
    """Whether no point needs the rule: one pass for the extremes.

    NaN makes the extremes NaN, which fails every comparison.
    """
    import torch

    if values.numel() == 0:
        return True
    lowest, highest = (float(v) for v in torch.aminmax(values))
    if padding_mode == "reflection":
        return math.isfinite(lowest) and math.isfinite(highest)
    return lowest >= low and highest <= high


def _kernel_grid(points, padded_sizes):
    """Normalize pixel coordinates so that the kernel reads the same pixels.

    The kernel maps a normalized `g` back to pixels as `(g + 1) * (size /
    2) - 0.5` in the grid's dtype (PyTorch's CPU code; its CUDA and scalar
    code compute `((g + 1) * size - 1) / 2`, which is the same number when
    `size` is a power of two). Where rounding makes that land on the other
    side of a whole pixel coordinate than the point itself, `g` is moved
    towards the point by a unit in the last place of the number that the
    kernel rounds (`g + 1`, or `g` itself where `g <= -0.5`), up to twice.
    The gradient is that of the plain normalization. Where the values may be
    read (`torch_values.readable`) and no point lands across, one check
    replaces the guard's passes over the points.

    Args:
        points: pixel coordinates, shape `(..., rank)`, `x, y[, z]` last.
        padded_sizes: the power-of-two sizes, `x, y[, z]`, of the images
            the kernel samples.

    Returns:
        The normalized grid, shaped like `points`.
    """
    import torch

    if len(set(padded_sizes)) == 1:
        # One number: PyTorch's CPU ops broadcast a tensor of one size per
        # axis over the last axis of the points ten times slower.
        padded_sizes = float(padded_sizes[0])
    else:
        padded_sizes = torch.tensor(
            padded_sizes, dtype=points.dtype, device=points.device
        )
    grid = (points * 2.0 + 1.0) / padded_sizes - 1.0
    points = points.detach()
    unadjusted = adjusted = grid.detach()
    floors = torch.floor(points)
    check = readable(points)
    for _ in range(2):
        landed = (adjusted + 1.0) * (padded_sizes / 2) - 0.5
        crossed = torch.floor(landed) != floors
        if check and not torch.any(crossed):
            break
        direction = torch.where(landed < points, torch.inf, -torch.inf)
        # A step of the number the kernel rounds: `g + 1` where `g > -0.5`
        # (`g + 1` is then exact once stepped, and coarser than `g`),
        # `g` elsewhere.
        stepped = torch.where(
            adjusted > -0.5,
            torch.nextafter(adjusted + 1.0, direction) - 1.0,
            torch.nextafter(adjusted, direction),
        )
        adjusted = torch.where(crossed, stepped, adjusted)
    if adjusted is unadjusted:
        return grid
    return grid + (adjusted - unadjusted)


def _sample_channels_first(
    images, grid, mode, padding_mode, align_corners, invalid
):
    """`grid_sample` of channels-first images at a grid of any output shape,
    NaN where `invalid` (the flags of `_finite`, or `None`) is set: the
    rule's `nonfinite.mark_invalid`, applied in place to the kernel's own
    outputs (its backward pass does not read them; on a view of them,
    autograd would copy the gradient for the write)."""
    import torch

    rank = grid.shape[-1]
    output_shape = tuple(grid.shape[1:-1])
    grid = grid.to(images.dtype)
    # Output shapes other than `(out_height, out_width)` (or with
    # `out_depth`), which the kernel takes as they are.
    flattened = len(output_shape) != rank
    if flattened:
        # Every output point in one row: (batch, 1, [1,] points, rank). The
        # number of points given, not -1, which an empty batch leaves open.
        grid = grid.reshape(
            grid.shape[0], *[1] * (rank - 1), math.prod(output_shape), rank
        )
    if _compiled_inference(images, grid):
        outputs = opaque_grid_sample(
            images, grid, mode, padding_mode, align_corners
        )
    else:
        outputs = torch.nn.functional.grid_sample(
            images,
            grid,
            mode=mode,
            padding_mode=padding_mode,
            align_corners=align_corners,
        )
    if invalid is not None:
        # (batch, 1, *grid's output axes), against (batch, channels, ...).
        flags = invalid.reshape(grid.shape[:-1])[:, None]
        outputs = outputs.masked_fill_(flags, float("nan"))
    if flattened:
        outputs = outputs.reshape(*outputs.shape[:2], *output_shape)
    return torch.movedim(outputs, 1, -1)


def _compiled_inference(images, grid):
    """Whether `torch.compile` traces a sampling that nothing differentiates.

    Inductor replaces `grid_sample` by gathers of its own, 6-9x slower than
    PyTorch's kernel on a CPU (`benchmarks/run.py --goals inference`), so
    that inference calls the kernel as an opaque operation there; not while
    `torch.export` or `torch.onnx.export` traces, whose artifacts keep
    PyTorch's own operator.
    """
    import torch

    return (
        torch.compiler.is_compiling()
        and not torch.compiler.is_exporting()
        and not torch.onnx.is_in_onnx_export()
        and not records(images, grid)
    )


if keras.backend.backend() == "torch":
    import torch

    # Defined once, at import: `torch.compile` cannot trace a definition.
    @torch.library.custom_op("keras_stn::grid_sample", mutates_args=())
    def opaque_grid_sample(
        images: torch.Tensor,
        grid: torch.Tensor,
        mode: str,
        padding_mode: str,
        align_corners: bool,
    ) -> torch.Tensor:
        """`torch.nn.functional.grid_sample` as a custom operator, which
        `torch.compile` calls as it is instead of compiling its own."""
        return torch.nn.functional.grid_sample(
            images,
            grid,
            mode=mode,
            padding_mode=padding_mode,
            align_corners=align_corners,
        )

    @opaque_grid_sample.register_fake
    def _(images, grid, mode, padding_mode, align_corners):
        return images.new_empty((*images.shape[:2], *grid.shape[1:-1]))
