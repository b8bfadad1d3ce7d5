"""Warping with a dense displacement field (VoxelMorph's spatial transformer).

Convention: a displacement field is laid out as images of `rank` channels,
`(batch, *spatial, rank)` (`"channels_last"`) or `(batch, rank, *spatial)`
(`"channels_first"`), with `spatial` `(height, width)` or `(depth, height,
width)`. Its vectors are in pixels: output pixel `p` samples the input at
`p + displacement[p]`, pixel `i` having its centre at `i`. With
`indexing="xy"` a vector is `(x, y[, z])`, x along the width, as
everywhere else in keras-stn; with `indexing="ij"` it follows the array's
axes, `(row, column)` or `(depth, row, column)`, as in VoxelMorph.
"""

from keras import ops

from keras_stn.ops.coordinates import pixel_indices
from keras_stn.ops.precision import at_least_float32
from keras_stn.ops.sampling.sampler import from_channels_last
from keras_stn.ops.sampling.sampler import prepare_images
from keras_stn.ops.sampling.sampler import sample_pixels
from keras_stn.ops.validation import check_float_dtype
from keras_stn.ops.validation import check_indexing
from keras_stn.ops.validation import check_same_batch
from keras_stn.ops.validation import standardize_data_format
from keras_stn.ops.validation import to_tensor
from keras_stn.typing import Tensor


def warp(
    images: Tensor,
    displacement: Tensor,
    mode: str = "bilinear",
    padding_mode: str = "zeros",
    data_format: str | None = None,
    indexing: str = "xy",
    implementation: str = "auto",
) -> Tensor:
    """Warp images (or volumes) with a dense displacement field.

    Output pixel `p` is the value of `images` at the point
    `p + displacement[p]`, in pixels, interpolated as `grid_sample` does:
    VoxelMorph's spatial transformer (Balakrishnan et al., 2019), the most
    general transformation of Jaderberg et al. (2015). Differentiable with
    respect to both arguments; it samples through `sample_pixels`, so it
    takes the backend's fast paths where they apply.

    Convention: see the module docstring. `"reflection"` padding mirrors
    the images at the outer edges of their border pixels (the convention of
    `align_corners=False`).

    Args:
        images: float tensor of shape `(batch, height, width, channels)`
            (`"channels_last"`) or `(batch, channels, height, width)`
            (`"channels_first"`); for volumes, with a depth axis before the
            height.
        displacement: float tensor of the same batch and spatial sizes, with
            `rank` (2 or 3) vector components where `images` has its
            channels: `(batch, height, width, 2)` or `(batch, 2, height,
            width)` for images.
        mode: `"bilinear"` (trilinear for volumes), `"nearest"` or
            `"bicubic"` (images only), as in `grid_sample`.
        padding_mode: `"zeros"`, `"border"` or `"reflection"`.
        data_format: `"channels_last"`, `"channels_first"`, or `None` for
            `keras.config.image_data_format()`; both tensors follow it.
        indexing: `"xy"` (vectors `(x, y[, z])`) or `"ij"` (array-axis
            order, as VoxelMorph's fields).
        implementation: `"auto"` (the backend's fast sampling path where it
            has one) or `"keras"`, as in `grid_sample`.

    Returns:
        The warped images, shaped and laid out as `images`, of their dtype.

    Example:

    >>> import numpy as np
    >>> images = np.arange(6, dtype="float32").reshape(1, 2, 3, 1)
    >>> shift = np.zeros((1, 2, 3, 2), "float32")
    >>> shift[..., 0] = 1.0  # every pixel reads its right neighbour
    >>> out = warp(images, shift, padding_mode="border",
    ...            data_format="channels_last")
    >>> ops.convert_to_numpy(out)[0, :, :, 0].tolist()
    [[1.0, 2.0, 2.0], [4.0, 5.0, 5.0]]
    """
    images, field, data_format = prepare_warp(
        images,
        displacement,
        mode,
        padding_mode,
        data_format,
        indexing,
        implementation,
    )
    outputs = warp_pixels(images, field, mode, padding_mode, implementation)
    return from_channels_last(outputs, data_format)


def prepare_warp(
    images: Tensor,
    displacement: Tensor,
    mode: str,
    padding_mode: str,
    data_format: str | None,
    indexing: str,
    implementation: str = "auto",
) -> tuple[Tensor, Tensor, str]:
    """Check the arguments of `warp`; lay out images and field for it.

    Symbolic tensors (`keras.KerasTensor`) pass, so that the `Warp` layer
    checks its inputs' shapes when a model is built.

    Args:
        images, displacement, mode, padding_mode, data_format, indexing,
            implementation: the arguments of `warp`.

    Returns:
        `(images, field, data_format)`: the images channels last, the field
        channels last with vectors `(x, y[, z])`, and the data format with
        `None` resolved.
    """
    check_indexing(indexing)
    images, data_format = prepare_images(
        images, mode, padding_mode, data_format, implementation
    )
    rank = len(images.shape) - 2
    field = field_to_xy(
        displacement, "displacement", data_format, indexing, rank=rank
    )
    check_same_spatial_shape(images, "images", field, "displacement")
    return images, field, data_format


def warp_pixels(
    images: Tensor,
    field: Tensor,
    mode: str,
    padding_mode: str,
    implementation: str = "auto",
    inference: bool = False,
) -> Tensor:
    """`warp` of channels-last images by a channels-last `"xy"` field.

    Args:
        images: float tensor `(batch, *spatial, channels)`, checked.
        field: float tensor `(batch, *spatial, rank)`, vectors `(x, y[,
            z])` in pixels, checked.
        mode: the sampling mode.
        padding_mode: the padding mode.
        implementation: `"auto"` or `"keras"`.
        inference: whether a layer samples outside training, as for
            `keras_stn.ops.sampling.sampler.sample_pixels`.

    Returns:
        Tensor of the shape and dtype of `images`.
    """
    # Coordinates in the images' dtype (at least float32), so that the
    # kernels, which take points of their images' dtype, apply.
    field = ops.cast(field, at_least_float32(images.dtype))
    points = [
        index + field[..., axis]
        for axis, index in enumerate(pixel_mesh(ops.shape(field)[1:-1], field))
    ]
    return sample_pixels(
        images,
        points,
        mode,
        padding_mode,
        False,
        implementation,
        inference=inference,
    )


def pixel_mesh(sizes, like: Tensor) -> list[Tensor]:
    """The pixel indices of a field's pixels, per axis.

    Args:
        sizes: the spatial sizes, `(height, width)` or `(depth, height,
            width)`.
        like: a tensor whose dtype (and device, on torch) the result takes.

    Returns:
        One tensor per axis in the order `x, y[, z]`, shaped to broadcast
        against `(batch, *sizes)`: the `x` tensor holds `0, 1, ...,
        width - 1` along the width axis.
    """
    rank = len(sizes)
    mesh = []
    for axis in range(rank):
        array_axis = rank - 1 - axis
        shape = [1] * (rank + 1)
        shape[array_axis + 1] = sizes[array_axis]
        index = pixel_indices(sizes[array_axis], like)
        mesh.append(ops.reshape(index, shape))
    return mesh


def field_to_xy(
    field: Tensor,
    name: str,
    data_format: str | None,
    indexing: str,
    rank: int | None = None,
) -> Tensor:
    """Check a displacement field; return it channels last, vectors `xy`.

    Args:
        field: a 4-D or 5-D float field, laid out as `data_format` says.
        name: the argument's name, for error messages.
        data_format: `"channels_last"`, `"channels_first"` or `None`.
        indexing: `"xy"` or `"ij"`, checked.
        rank: the expected number of spatial axes, or `None` for 2 or 3.

    Returns:
        A tensor `(batch, *spatial, rank)` whose vectors are `(x, y[, z])`.
    """
    check_indexing(indexing)
    data_format = standardize_data_format(data_format)
    field = to_tensor(field, name)
    check_float_dtype(field, name)
    shape = tuple(field.shape)
    field_rank = len(shape) - 2
    vectors = shape[1] if data_format == "channels_first" else shape[-1]
    ranks = (2, 3) if rank is None else (rank,)
    if field_rank not in ranks or vectors not in (field_rank, None):
        layouts = " or ".join(
            f"(batch, {r}, {_spatial_names(r)})"
            if data_format == "channels_first"
            else f"(batch, {_spatial_names(r)}, {r})"
            for r in ranks
        )
        raise ValueError(
            f"Invalid shape for argument `{name}`. Expected a displacement "
            f"field of shape {layouts} ({data_format}): one vector of "
            f"as many components as spatial axes per pixel. Received "
            f"{name}.shape={shape}"
        )
    if data_format == "channels_first":
        field = ops.moveaxis(field, 1, -1)
    if indexing == "ij":
        field = ops.flip(field, axis=-1)
    return field


def field_from_xy(field: Tensor, data_format: str, indexing: str) -> Tensor:
    """Undo `field_to_xy`: lay out an `"xy"` channels-last field."""
    if indexing == "ij":
        field = ops.flip(field, axis=-1)
    return from_channels_last(field, standardize_data_format(data_format))


def check_same_spatial_shape(a: Tensor, a_name: str, b: Tensor, b_name: str):
    """Raise unless channels-last `a` and `b` have the same batch and
    statically known spatial sizes."""
    check_same_batch(a, a_name, b, b_name)
    a_sizes, b_sizes = tuple(a.shape[1:-1]), tuple(b.shape[1:-1])
    if len(a_sizes) != len(b_sizes) or any(
        x is not None and y is not None and x != y
        for x, y in zip(a_sizes, b_sizes, strict=False)
    ):
        raise ValueError(
            f"Arguments `{a_name}` and `{b_name}` must have the same spatial "
            f"sizes. Received {a_name} of spatial sizes {a_sizes} and "
            f"{b_name} of spatial sizes {b_sizes}"
        )


def _spatial_names(rank):
    return "depth, height, width" if rank == 3 else "height, width"
