"""The algebra of dense displacement fields: integrate, compose, resize.

Fields follow the convention of `keras_stn.ops.warp`: vectors in pixels,
laid out as images of `rank` channels (`data_format`), ordered `(x, y[, z])`
(`indexing="xy"`) or along the array's axes (`indexing="ij"`, VoxelMorph's
order). Where a field is read between its pixels (integration,
composition, resizing), it is interpolated bilinearly (trilinearly) and
extended beyond its edges by its border vectors, as VoxelMorph's Keras
layers do.
"""

import numpy as np
from keras import ops

from keras_stn.ops.coordinates import identity_pixel_coordinates
from keras_stn.ops.dense_warping import check_same_spatial_shape
from keras_stn.ops.dense_warping import field_from_xy
from keras_stn.ops.dense_warping import field_to_xy
from keras_stn.ops.dense_warping import pixel_mesh
from keras_stn.ops.dense_warping import warp_pixels
from keras_stn.ops.grids.affine import affine_pixel_grid
from keras_stn.ops.grids.homogeneous import check_matrix
from keras_stn.ops.precision import at_least_float32
from keras_stn.ops.sampling.sampler import sample_pixels
from keras_stn.ops.validation import standardize_size
from keras_stn.typing import Size
from keras_stn.typing import Tensor


def integrate_velocity(
    velocity: Tensor,
    steps: int = 7,
    data_format: str | None = None,
    indexing: str = "xy",
) -> Tensor:
    """Integrate a stationary velocity field by scaling and squaring.

    The displacement of the flow of `velocity` over unit time: the field is
    divided by `2 ** steps`, then composed with itself `steps` times (`u <-
    u + u(x + u(x))`), as VoxelMorph's `VecInt` (Dalca et al., 2018). For a
    smooth field the result is a diffeomorphism; the error against the
    exact flow shrinks as `2 ** -steps`.

    Args:
        velocity: float tensor, a displacement field as for
            `keras_stn.ops.warp`: `(batch, height, width, 2)` or `(batch,
            depth, height, width, 3)` channels last.
        steps: the number of squarings, an integer >= 0 (0 returns
            `velocity`).
        data_format: `"channels_last"`, `"channels_first"`, or `None` for
            `keras.config.image_data_format()`.
        indexing: `"xy"` or `"ij"`, as in `keras_stn.ops.warp`.

    Returns:
        The displacement field, shaped and laid out as `velocity`, of its
        dtype (computed in float32 at least).

    Example:

    >>> import numpy as np
    >>> velocity = np.full((1, 4, 4, 2), 0.5, "float32")  # a translation
    >>> out = integrate_velocity(velocity, data_format="channels_last")
    >>> bool(np.allclose(ops.convert_to_numpy(out), 0.5))
    True
    """
    if (
        isinstance(steps, bool)
        or not isinstance(steps, (int, np.integer))
        or steps < 0
    ):
        raise ValueError(
            "Invalid value for argument `steps`. Expected an integer >= 0. "
            f"Received steps={steps!r}"
        )
    field = field_to_xy(velocity, "velocity", data_format, indexing)
    dtype = field.dtype
    field = ops.cast(field, at_least_float32(dtype)) * 0.5 ** int(steps)
    for _ in range(int(steps)):
        field = field + warp_pixels(field, field, "bilinear", "border")
    return field_from_xy(ops.cast(field, dtype), data_format, indexing)


def compose_displacements(
    first: Tensor,
    second: Tensor,
    data_format: str | None = None,
    indexing: str = "xy",
) -> Tensor:
    """The displacement of warping with `first`, then with `second`.

    `warp(warp(images, first), second)` samples `images` at `p + second[p]
    + first[p + second[p]]`, so the composed field is `second + warp(first,
    second)` (with `first` interpolated and extended by its border
    vectors). Warping once with it interpolates once instead of twice.

    Args:
        first: float tensor, the displacement field applied first, as for
            `keras_stn.ops.warp`.
        second: float tensor of the same shape, applied second.
        data_format: `"channels_last"`, `"channels_first"`, or `None` for
            `keras.config.image_data_format()`.
        indexing: `"xy"` or `"ij"`, as in `keras_stn.ops.warp`.

    Returns:
        The composed field, shaped as `first`, of the dtype of `second`.

    Example:

    >>> import numpy as np
    >>> first = np.full((1, 4, 4, 2), 1.0, "float32")
    >>> second = np.full((1, 4, 4, 2), 0.5, "float32")
    >>> out = compose_displacements(first, second, "channels_last")
    >>> bool(np.allclose(ops.convert_to_numpy(out), 1.5))
    True
    """
    first = field_to_xy(first, "first", data_format, indexing)
    second = field_to_xy(second, "second", data_format, indexing)
    check_same_spatial_shape(first, "first", second, "second")
    if first.shape[-1] != second.shape[-1]:
        raise ValueError(
            "Arguments `first` and `second` must have the same number of "
            f"spatial axes. Received first.shape={tuple(first.shape)} and "
            f"second.shape={tuple(second.shape)} (channels last)"
        )
    dtype = at_least_float32(second.dtype)
    first = ops.cast(first, dtype)
    composed = second + warp_pixels(first, second, "bilinear", "border")
    return field_from_xy(
        ops.cast(composed, second.dtype), data_format, indexing
    )


def resize_displacement(
    displacement: Tensor,
    size: Size,
    data_format: str | None = None,
    indexing: str = "xy",
) -> Tensor:
    """Resample a displacement field at another resolution.

    The same transformation at `size`: the field is interpolated bilinearly
    (trilinearly) at the new pixel centres, with the pixel-edge convention
    of `align_corners=False` (pixel `i` of the new size sits at `(i + 0.5) *
    old / new - 0.5` of the old; the border vectors extend the field), and
    each component is multiplied by `new / old` along its axis, as
    VoxelMorph's `RescaleTransform` and `ResizeTransform`. Shrinking
    does not low-pass filter the field first.

    Args:
        displacement: float tensor, a field as for `keras_stn.ops.warp`.
        size: the new spatial sizes, `(height, width)` or `(depth, height,
            width)`.
        data_format: `"channels_last"`, `"channels_first"`, or `None` for
            `keras.config.image_data_format()`.
        indexing: `"xy"` or `"ij"`, as in `keras_stn.ops.warp`.

    Returns:
        The field at `size`, laid out as `displacement`, of its dtype.

    Example:

    >>> import numpy as np
    >>> field = np.full((1, 4, 4, 2), 1.0, "float32")  # one pixel right, down
    >>> out = resize_displacement(field, (8, 2), "channels_last")
    >>> ops.convert_to_numpy(out)[0, 0, 0].tolist()  # x halves, y doubles
    [0.5, 2.0]
    """
    field = field_to_xy(displacement, "displacement", data_format, indexing)
    rank = len(field.shape) - 2
    size = standardize_size(size, "size", rank=rank)
    old_size = tuple(field.shape[1:-1])
    dtype = at_least_float32(field.dtype)
    work = ops.cast(field, dtype)
    points = []
    for axis in range(rank):
        array_axis = rank - 1 - axis
        shape = [1] * (rank + 1)
        shape[array_axis + 1] = size[array_axis]
        coordinates = identity_pixel_coordinates(
            old_size[array_axis], size[array_axis], align_corners=False
        )
        points.append(
            ops.broadcast_to(
                ops.reshape(ops.convert_to_tensor(coordinates, dtype), shape),
                (ops.shape(work)[0], *size),
            )
        )
    resized = sample_pixels(work, points, "bilinear", "border", False)
    scales = [
        size[rank - 1 - axis] / old_size[rank - 1 - axis]
        for axis in range(rank)
    ]
    resized = resized * ops.convert_to_tensor(scales, dtype)
    return field_from_xy(ops.cast(resized, field.dtype), data_format, indexing)


def affine_to_displacement(
    theta: Tensor,
    size: Size,
    align_corners: bool = False,
    data_format: str | None = None,
    indexing: str = "xy",
) -> Tensor:
    """The displacement field of a batch of affine transforms.

    `warp(images, affine_to_displacement(theta, size))` samples the points
    of `warp_affine(images, theta)` (for images of spatial size `size`), so
    affine and dense warps compose (`compose_displacements`). The points
    come from `affine_pixel_grid`, exact at the identity (a zero field).

    Args:
        theta: float tensor `(batch, 2, 3)` (or `(batch, 3, 4)` for
            volumes), mapping normalized output coordinates to normalized
            input coordinates, as in `keras_stn.ops.affine_grid`.
        size: the spatial sizes `(height, width)` (or `(depth, height,
            width)`) of the images and of the field.
        align_corners: the convention of `affine_grid`.
        data_format: `"channels_last"`, `"channels_first"`, or `None` for
            `keras.config.image_data_format()`.
        indexing: `"xy"` or `"ij"`, as in `keras_stn.ops.warp`.

    Returns:
        The field in pixels, `(batch, *size, rank)` channels last, of the
        dtype of `theta`.

    Example:

    >>> import numpy as np
    >>> shift = np.array([[[1.0, 0.0, 0.5], [0.0, 1.0, 0.0]]], "float32")
    >>> field = affine_to_displacement(shift, (4, 4),
    ...                                data_format="channels_last")
    >>> ops.convert_to_numpy(field)[0, 0, 0].tolist()  # a quarter of 4 px
    [1.0, 0.0]
    """
    theta = check_matrix(theta, "theta", projective=False)
    rank = theta.shape[1]
    size = standardize_size(size, "size", rank=rank)
    points = affine_pixel_grid(theta, size, size, align_corners)
    mesh = pixel_mesh(size, theta)
    field = ops.stack(
        [p - index for p, index in zip(points, mesh, strict=True)], axis=-1
    )
    return field_from_xy(field, data_format, indexing)


def jacobian_determinant(
    displacement: Tensor,
    data_format: str | None = None,
    indexing: str = "xy",
) -> Tensor:
    """The Jacobian determinant of the map `p -> p + displacement[p]`.

    `det(I + grad(displacement))` per pixel (voxel), the derivatives taken
    by central differences inside the field and one-sided differences at
    its edges (as `numpy.gradient`; 0 along an axis of one pixel).
    Non-positive values mark where the map folds; VoxelMorph reports their
    share.

    Args:
        displacement: float tensor, a field as for `keras_stn.ops.warp`.
        data_format: `"channels_last"`, `"channels_first"`, or `None` for
            `keras.config.image_data_format()`.
        indexing: `"xy"` or `"ij"`, as in `keras_stn.ops.warp`.

    Returns:
        Tensor `(batch, *spatial)` of the field's dtype (at least float32).

    Example:

    >>> import numpy as np
    >>> field = np.zeros((1, 3, 3, 2), "float32")
    >>> field[..., 0] = 0.5 * np.arange(3)  # stretches x by 1.5
    >>> det = jacobian_determinant(field, data_format="channels_last")
    >>> ops.convert_to_numpy(det)[0].tolist()
    [[1.5, 1.5, 1.5], [1.5, 1.5, 1.5], [1.5, 1.5, 1.5]]
    """
    field = field_to_xy(displacement, "displacement", data_format, indexing)
    field = ops.cast(field, at_least_float32(field.dtype))
    rank = field.shape[-1]
    # jacobian[i][j]: d(p + u)_i / d p_j, axes in the order x, y[, z].
    jacobian = [
        [
            _gradient(field[..., i], rank - j) + (1.0 if i == j else 0.0)
            for j in range(rank)
        ]
        for i in range(rank)
    ]
    if rank == 2:
        (a, b), (c, d) = jacobian
        return a * d - b * c
    (a, b, c), (d, e, f), (g, h, i) = jacobian
    return a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)


def _gradient(x, axis):
    """`numpy.gradient(x, axis=axis)` in `keras.ops`, 0 on one pixel."""
    size = x.shape[axis]

    def part(start, stop):
        return x[(slice(None),) * axis + (slice(start, stop),)]

    if size == 1:
        return ops.zeros_like(x)
    first = part(1, 2) - part(0, 1)
    last = part(size - 1, size) - part(size - 2, size - 1)
    if size == 2:
        return ops.concatenate([first, last], axis=axis)
    interior = (part(2, size) - part(0, size - 2)) * 0.5
    return ops.concatenate([first, interior, last], axis=axis)
