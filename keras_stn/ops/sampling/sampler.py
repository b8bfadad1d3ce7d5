"""The differentiable sampler (Jaderberg et al., 2015, section 3.3).

Its two entry points: `grid_sample` at a normalized grid, and `sample_pixels`
at points in pixels (what `warp_affine`, `warp` and the layer compute). Both
check their arguments and hand the sampling to
`keras_stn.ops.sampling.dispatch`, which picks the implementation.
"""

from keras import ops

from keras_stn.ops.sampling import dispatch
from keras_stn.ops.sampling.options import SamplingOptions
from keras_stn.ops.validation import channels_last_batch
from keras_stn.ops.validation import check_bool
from keras_stn.ops.validation import check_float_dtype
from keras_stn.ops.validation import check_implementation
from keras_stn.ops.validation import check_mode
from keras_stn.ops.validation import check_padding_mode
from keras_stn.ops.validation import check_same_batch
from keras_stn.ops.validation import check_shape
from keras_stn.ops.validation import check_spatial_axes_not_empty
from keras_stn.ops.validation import standardize_data_format
from keras_stn.ops.validation import to_tensor
from keras_stn.typing import Tensor


def grid_sample(
    images: Tensor,
    grid: Tensor,
    mode: str = "bilinear",
    padding_mode: str = "zeros",
    align_corners: bool = False,
    data_format: str | None = None,
    implementation: str = "auto",
    antialias: bool = False,
) -> Tensor:
    """Sample images (or volumes) at the points of a grid.

    Output pixel `(i, j)` of image `b` is the value of `images[b]` at the
    point `grid[b, i, j]`, interpolated from the pixels around it. The result
    is differentiable with respect to both `images` and `grid`, so gradients
    reach whatever produced the grid (the key point of the paper). Volumes
    (5-D `images`) are sampled at the points of a 5-D grid in the same way.

    Convention: the grid's last axis is `(x, y)` (or `(x, y, z)`, with `z`
    along the depth), normalized to `[-1, 1]` as described in
    `keras_stn.ops.coordinates`; points outside are handled by
    `padding_mode`. The numbers are those of
    `torch.nn.functional.grid_sample` with the same arguments.

    Args:
        images: float tensor of shape `(batch, height, width, channels)`
            (`"channels_last"`) or `(batch, channels, height, width)`
            (`"channels_first"`); for volumes, `(batch, depth, height,
            width, channels)` or `(batch, channels, depth, height, width)`.
        grid: float tensor of shape `(batch, out_height, out_width, 2)`, or
            `(batch, out_depth, out_height, out_width, 3)` for volumes.
        mode: `"bilinear"` (trilinear for volumes), `"nearest"` (ties round
            half to even) or `"bicubic"` (images only; Keys' kernel with
            `a = -0.75`, as PyTorch).
        padding_mode: the value of points outside the image: `"zeros"`,
            `"border"` (the nearest edge pixel) or `"reflection"` (the
            image mirrored at its edges).
        align_corners: if `True`, -1 and 1 are the centres of the corner
            pixels; if `False`, their outer edges.
        data_format: `"channels_last"`, `"channels_first"`, or `None` for
            `keras.config.image_data_format()`.
        implementation: `"auto"` uses the backend's fastest path for the
            call (keras-stn's C++ kernel, PyTorch's `grid_sample`, or XLA
            clusters on TensorFlow; the table is in
            `keras_stn.ops.sampling.dispatch`), with the same numbers up to
            float rounding. `"keras"` always uses the `keras.ops` sampler
            as it is.
        antialias: if `True`, where the grid is sparser than the input's
            pixels (it zooms out), each point reads a prefiltered copy of
            the input: a mip pyramid of 2x2 means, at the level that the
            grid's local spacing calls for, blended linearly between the
            two nearest levels (`keras_stn.ops.sampling.antialiasing`), in any
            `mode`. Where the grid is at least as dense as the pixels (the
            identity, zooming in), the result is that of `False` up to
            float rounding. Differentiable with respect to `images` and
            `grid` (also through the choice of level). Needs the input's
            spatial sizes when tracing; samples the input once per level.

    Returns:
        The sampled images, of shape `(batch, out_height, out_width,
        channels)` (or channels first, or with `out_depth` for volumes) and
        the dtype of `images`.

    Example:

    >>> import numpy as np
    >>> images = np.arange(4, dtype="float32").reshape(1, 2, 2, 1)
    >>> grid = np.zeros((1, 1, 1, 2), "float32")  # the image's centre
    >>> out = grid_sample(images, grid, data_format="channels_last")
    >>> float(ops.convert_to_numpy(out)[0, 0, 0, 0])
    1.5
    """
    images, data_format = prepare_images(
        images, mode, padding_mode, data_format, implementation
    )
    antialias = check_bool(antialias, "antialias")
    rank = len(images.shape) - 2
    grid = to_tensor(grid, "grid")
    check_float_dtype(grid, "grid")
    axes = ("out_depth, " if rank == 3 else "") + "out_height, out_width"
    check_shape(
        grid,
        "grid",
        rank=rank + 2,
        last_dims=(rank,),
        description=f"(batch, {axes}, {rank}) for {rank + 2}-D images",
    )
    check_same_batch(images, "images", grid, "grid")
    outputs = dispatch.sample(
        images,
        grid,
        SamplingOptions(mode, padding_mode, align_corners, normalized=True),
        implementation=implementation,
        antialias=antialias,
    )
    return from_channels_last(outputs, data_format)


def prepare_images(
    images: Tensor,
    mode: str,
    padding_mode: str,
    data_format: str | None,
    implementation: str = "auto",
) -> tuple[Tensor, str]:
    """Check the sampler's arguments and move the channels of `images` last.

    Args:
        images: a 4-D (images) or 5-D (volumes) float batch, laid out as
            `data_format` says.
        mode: the sampling mode, checked.
        padding_mode: the padding mode, checked.
        data_format: `"channels_last"`, `"channels_first"` or `None`.
        implementation: `"auto"` or `"keras"`, checked.

    Returns:
        `(images, data_format)`: the batch as a channels-last tensor, and
        the data format with `None` resolved.
    """
    check_padding_mode(padding_mode)
    check_implementation(implementation)
    data_format = standardize_data_format(data_format)
    images = to_tensor(images, "images")
    check_float_dtype(images, "images")
    channels_last = channels_last_batch(images, "images", data_format)
    check_spatial_axes_not_empty(images, "images", data_format)
    check_mode(mode, spatial_rank=len(images.shape) - 2)
    return channels_last, data_format


def from_channels_last(images: Tensor, data_format: str) -> Tensor:
    """Move the channels of a channels-last batch where `data_format` says."""
    if data_format == "channels_first":
        return ops.moveaxis(images, -1, 1)
    return images


def sample_pixels(
    images: Tensor,
    points: list[Tensor],
    mode: str,
    padding_mode: str,
    align_corners: bool,
    implementation: str = "auto",
    antialias: bool = False,
    inference: bool = False,
) -> Tensor:
    """Sample channels-last images or volumes at pixel coordinates.

    Args:
        images: float tensor of shape `(batch, *spatial, channels)`, with
            `spatial` `(height, width)` or `(depth, height, width)`.
        points: the coordinates of the sampling points in pixels (pixel `i`
            has its centre at `i`), one tensor per spatial axis in the order
            `x, y[, z]`, each of shape `(batch, *output_shape)`.
        mode: `"bilinear"`, `"nearest"` or `"bicubic"`.
        padding_mode: `"zeros"`, `"border"` or `"reflection"`.
        align_corners: the convention of the grid, which sets the mirror
            lines of `"reflection"` padding.
        implementation: `"auto"` (the backend's fast path where it has
            one) or `"keras"`, as in `grid_sample`.
        antialias: whether to read a mip pyramid of the images where the
            points are sparser than the pixels, as in `grid_sample`.
        inference: whether a layer samples outside training (`predict`, or
            what `model.export` traces), where an exported graph must hold
            plain operations.

    Returns:
        Tensor of shape `(batch, *output_shape, channels)`. NaN and
        infinite points follow the rule of `keras_stn.ops.sampling.nonfinite`.
    """
    return dispatch.sample(
        images,
        points,
        SamplingOptions(mode, padding_mode, align_corners, normalized=False),
        implementation=implementation,
        antialias=antialias,
        inference=inference,
    )
