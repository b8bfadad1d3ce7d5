"""Normalized and pixel coordinates, with the conventions of PyTorch.

Convention: a coordinate of -1 is the left (top) edge of the image and +1
the right (bottom) edge. With `align_corners=False` the edges are the outer
borders of the corner pixels, so pixel `i` of a row of `size` pixels has its
centre at `(2 * i + 1) / size - 1`. With `align_corners=True` the edges are
the centres of the corner pixels, so pixel `i` sits at
`2 * i / (size - 1) - 1`. These are the conventions of
`torch.nn.functional.affine_grid` and `torch.nn.functional.grid_sample`.

Constants are computed in plain Python, not NumPy: the grid generators
call these functions while a backend traces them, and `torch.compile`
turns NumPy calls into graph operations (and breaks its graph where it
meets a NumPy array), whereas Python numbers and tuples stay constants.
"""

from fractions import Fraction

from keras import ops

from keras_stn.ops.constants import constant
from keras_stn.typing import Tensor


def normalized_coordinates(size: int, align_corners: bool) -> tuple[float, ...]:
    """Return the normalized coordinates of the centres of `size` pixels.

    Args:
        size: the number of pixels along the axis (a Python int).
        align_corners: the convention described in the module docstring.

    Returns:
        A tuple of `size` Python floats. A single pixel is at 0.

    Example:

    >>> normalized_coordinates(4, align_corners=False)
    (-0.75, -0.25, 0.25, 0.75)
    """
    return _exact_values(size, *normalize_factors(size, align_corners))


def normalized_coordinates_tensor(size, align_corners: bool, like: Tensor):
    """`normalized_coordinates` as a tensor, also for a size not known yet.

    Args:
        size: the number of pixels along the axis: a Python int, or a size
            only known when a graph runs (see `size_as`).
        align_corners: the convention described in the module docstring.
        like: a tensor whose dtype (and device, on torch) the result takes.

    Returns:
        A 1-D tensor of `size` coordinates. For an int size, the exact
        constants of `normalized_coordinates`; else each computed in the
        dtype of `like` and rounded once.
    """
    if isinstance(size, int):
        return constant(normalized_coordinates(size, align_corners), like)
    index = pixel_indices(size, like)
    size = size_as(size, like.dtype)
    if align_corners:
        # A single pixel sits at 0: (0 - 0) / 1.
        return (2.0 * index - (size - 1.0)) / ops.maximum(size - 1.0, 1.0)
    return (2.0 * index + 1.0 - size) / size


def pixel_indices(size, like: Tensor) -> Tensor:
    """The indices `0, 1, ..., size - 1` of the pixels along an axis.

    Args:
        size: the number of pixels: a Python int, or a size only known
            when a graph runs (see `size_as`).
        like: a tensor whose dtype (and device, on torch) the result takes.

    Returns:
        A 1-D tensor: constants for an int size, since JAX's ONNX exporter
        (jax2onnx) cannot trace `ops.arange` without a `stop`; else
        `ops.arange`.
    """
    if isinstance(size, int):
        return constant(list(range(size)), like)
    return ops.cast(ops.arange(size, dtype="int32"), like.dtype)


def are_static(sizes) -> bool:
    """Whether every size is a Python int, known when tracing.

    Args:
        sizes: spatial sizes, as `images.shape` gives them.

    Returns:
        `False` where a size is a tensor (a TensorFlow graph traced for any
        size) or symbolic (JAX's and `torch.export`'s dynamic shapes).
    """
    return all(isinstance(size, int) for size in sizes)


def size_as(size, dtype: str):
    """A size, ready for arithmetic with tensors of `dtype`.

    Args:
        size: a number of pixels: a Python int, a scalar integer tensor
            where the size is only known when a TensorFlow graph runs, or a
            symbolic size (JAX's and `torch.export`'s dynamic shapes).
        dtype: the dtype of the tensors it meets.

    Returns:
        An int `size` as it is, else a scalar tensor of `dtype`. A symbolic
        size becomes one by multiplication, which keeps it symbolic (a cast
        would fix it to the value it was traced with).
    """
    if isinstance(size, int):
        return size
    if ops.is_tensor(size):
        return ops.cast(size, dtype)
    return ops.ones((), dtype) * size


def unnormalize(coordinates: Tensor, size: int, align_corners: bool) -> Tensor:
    """Map normalized coordinates to pixel coordinates along one axis.

    The arithmetic is PyTorch's `grid_sampler_unnormalize`, operation for
    operation, so that the same grid lands on the same pixel coordinates.

    Args:
        coordinates: a float tensor of normalized coordinates.
        size: the number of pixels along the axis: an int, or a scalar
            tensor (see `size_as`).
        align_corners: the convention described in the module docstring.

    Returns:
        A tensor like `coordinates`, in pixels (pixel `i` has its centre at
        `i`).
    """
    size = size_as(size, coordinates.dtype)
    if align_corners:
        return ((coordinates + 1.0) / 2.0) * (size - 1)
    return ((coordinates + 1.0) * size - 1.0) / 2.0


def unnormalize_factors(
    size: int, align_corners: bool
) -> tuple[Fraction, Fraction]:
    """Return `(scale, offset)` such that `pixel = scale * normalized + offset`.

    Args:
        size: the number of pixels along the axis.
        align_corners: the convention described in the module docstring.

    Returns:
        Two exact `fractions.Fraction`s, so that products of factors can be
        formed without rounding.
    """
    half_span = Fraction(size - 1, 2)
    if align_corners:
        return half_span, half_span
    return Fraction(size, 2), half_span


def normalize_factors(
    size: int, align_corners: bool
) -> tuple[Fraction, Fraction]:
    """Return `(scale, offset)` such that `normalized = scale * index + offset`.

    Args:
        size: the number of pixels along the axis.
        align_corners: the convention described in the module docstring.

    Returns:
        Two exact `fractions.Fraction`s; both 0 for a single pixel.
    """
    if size == 1:
        return Fraction(0), Fraction(0)
    if align_corners:
        return Fraction(2, size - 1), Fraction(-1)
    return Fraction(2, size), Fraction(1 - size, size)


def identity_pixel_coordinates(
    input_size: int, output_size: int, align_corners: bool
) -> tuple[float, ...]:
    """Return where the output pixels sample the input under the identity.

    Output pixel `i` sits at normalized coordinate `n_i`, which is input
    pixel coordinate `p_i`; each `p_i` is computed exactly and rounded once,
    so equal sizes give exactly `0, 1, ..., size - 1`.

    Args:
        input_size: the number of input pixels along the axis.
        output_size: the number of output pixels along the axis.
        align_corners: the convention described in the module docstring.

    Returns:
        A tuple of `output_size` Python floats.
    """
    in_scale, in_offset = unnormalize_factors(input_size, align_corners)
    out_scale, out_offset = normalize_factors(output_size, align_corners)
    return _exact_values(
        output_size, in_scale * out_scale, in_scale * out_offset + in_offset
    )


def _exact_values(
    count: int, scale: Fraction, offset: Fraction
) -> tuple[float, ...]:
    """`scale * i + offset` for `i` in `range(count)`, each rounded once.

    The values share one integer denominator, so each is a ratio of two
    Python ints, which true division rounds correctly.
    """
    denominator = scale.denominator * offset.denominator
    step = scale.numerator * offset.denominator
    start = offset.numerator * scale.denominator
    return tuple((step * i + start) / denominator for i in range(count))


def spatial_sizes(images: Tensor) -> list:
    """The spatial sizes of channels-last images, in the order `x, y[, z]`.

    Args:
        images: a channels-last batch of images or volumes.

    Returns:
        One size per spatial axis: a Python int where the shape is known,
        else a scalar tensor (in a TensorFlow graph traced for any size) or
        a symbolic dimension (in JAX's shape-polymorphic export).

    Example:

    >>> spatial_sizes(ops.zeros((2, 4, 6, 3)))
    [6, 4]
    """
    return list(reversed(ops.shape(images)[1:-1]))
