"""Points on the images' edges and mirror lines, on every sampler path.

Wherever a floor, a remainder or a comparison decides on which side of a
line a point falls (reflection's mirror lines, the clamps of `"border"`
padding, nearest sampling's ties, the kernels' inside tests), no compiler's
rewriting may move the point across: XLA, for one, multiplies by the rounded
reciprocal of a constant instead of dividing by it. Each test runs every
path of the backend: the `keras.ops` sampler (`implementation="keras"`) and
the default (`"auto"`: PyTorch's kernel, keras-stn's C++ kernel where
differentiated, XLA clusters on TensorFlow), eagerly and, on TensorFlow and
JAX, compiled (XLA).

The sizes are those whose span (`size - 1` with `align_corners=True`,
`size` without) times the float32 reciprocal of that span is below 1, where
the old reflection dropped a flip; `pytest --full-sweep` runs every size
from 1 to 256 on both axes instead.
"""

import itertools

import keras
import numpy as np
import pytest
import torch
from keras import ops

from keras_stn.layers import SpatialTransformer
from keras_stn.ops import grid_sample
from keras_stn.ops import warp_affine

from helpers import BACKEND
from helpers import compile_function
from helpers import float64_enabled
from helpers import torch_grid_sample
from helpers import value_and_gradients

PADDINGS = ("zeros", "border", "reflection")
# (implementation, compiled): eagerly, the generic sampler and the default
# paths; compiled (XLA on TensorFlow and JAX), the default, to which
# "keras" compiles alike. torch.compile is tested apart: it compiles for
# tens of seconds per shape.
PATHS = [("keras", False), ("auto", False)]
if BACKEND != "torch":
    PATHS.append(("auto", True))
# (height, width): with align_corners=True, the spans 41 (height 42), 82 and
# 83; with False, 41 (width 41) and 83. Then axes of one, two and three
# pixels, where the spans are 0 or tiny.
SHAPES = [(42, 41), (83, 84), (1, 2), (3, 1)]


def sweep_shapes(config):
    """The shapes of the identity sweep: every size 1-256 on both axes."""
    if config.getoption("--full-sweep"):
        return [(size, 257 - size) for size in range(1, 257)]
    return SHAPES


def pytest_generate_tests(metafunc):
    if "sweep_shape" in metafunc.fixturenames:
        metafunc.parametrize("sweep_shape", sweep_shapes(metafunc.config))


def sampled(fn, arrays, compiled, differentiated):
    """`fn(*arrays)` as NumPy, compiled or not, recorded for autodiff or not.

    Recorded, the sampler takes its kernel paths, which run only where
    their gradients may be asked for.
    """
    if compiled:
        fn = compile_function(fn)
    if not differentiated:
        return ops.convert_to_numpy(fn(*arrays))
    if BACKEND == "tensorflow":
        import tensorflow as tf

        tensors = [tf.convert_to_tensor(a) for a in arrays]
        with tf.GradientTape() as tape:
            tape.watch(tensors)
            outputs = fn(*tensors)
    elif BACKEND == "jax":
        import jax

        outputs, _ = jax.vjp(fn, *arrays)
    else:
        outputs = fn(*[torch.tensor(a, requires_grad=True) for a in arrays])
    return ops.convert_to_numpy(outputs)


@pytest.mark.parametrize("implementation,compiled", PATHS)
@pytest.mark.parametrize("differentiated", (False, True))
def test_identity_is_exact_at_every_size(
    sweep_shape, implementation, compiled, differentiated
):
    rng = np.random.default_rng(sum(sweep_shape))
    # Three channels: PyTorch's kernel samples one, keras-stn's C++ kernel
    # more (on torch); both cases at the smallest shape.
    channels = 1 if sweep_shape == SHAPES[-1] else 3
    images = rng.normal(size=(2, *sweep_shape, channels)).astype("float32")
    theta = np.tile(np.eye(2, 3, dtype="float32"), (2, 1, 1))
    for padding_mode, align_corners in itertools.product(
        PADDINGS, (False, True)
    ):

        def warp(
            images, theta, padding_mode=padding_mode, corners=align_corners
        ):
            return warp_affine(
                images,
                theta,
                padding_mode=padding_mode,
                align_corners=corners,
                data_format="channels_last",
                implementation=implementation,
            )

        outputs = sampled(warp, [images, theta], compiled, differentiated)
        assert np.array_equal(outputs, images), (padding_mode, align_corners)


def near_lines(dtype):
    """Normalized coordinates on, just inside and just outside mirror lines.

    The lines of the image's edges, and of its mirror images one and two
    reflections away, are the odd integers with either convention: each is
    an exact pixel coordinate. Around each: one thousandth to both sides,
    and in float64 one unit in the last place (float32 pixel coordinates
    round such points onto the line or across half pixels, where nearest
    sampling then legitimately differs from float64).
    """
    lines = np.arange(-5.0, 6.0, 2.0)
    values = [lines, lines + 1e-3, lines - 1e-3]
    if dtype == "float64":
        values += [np.nextafter(lines, 10), np.nextafter(lines, -10)]
    return np.concatenate(values).astype(dtype)


# The sampling options whose decisions a line can flip: reflection's mirror
# lines in every mode, the border clamps and the zero-padding inside tests
# of bilinear sampling (the kernels' too).
LINE_CASES = [
    (mode, padding_mode, align_corners)
    for mode, padding_mode in [
        ("bilinear", "zeros"),
        ("bilinear", "border"),
        ("bilinear", "reflection"),
        ("nearest", "reflection"),
        ("bicubic", "reflection"),
    ]
    for align_corners in (False, True)
]


@pytest.mark.parametrize("implementation,compiled", PATHS)
@pytest.mark.parametrize("dtype", ("float32", "float64"))
def test_points_near_mirror_lines_match_pytorch(
    implementation, compiled, dtype
):
    """Values against float64 PyTorch; in float64 eagerly, gradients too."""
    shape = SHAPES[1]
    rng = np.random.default_rng(sum(shape))
    images = rng.normal(size=(1, *shape, 3)).astype(dtype)
    values = near_lines(dtype)
    # Every pair of coordinates, each axis near every line.
    grid = np.stack(np.meshgrid(values, values[::-1]), axis=-1)[None]
    upstream = rng.normal(size=(1, *grid.shape[1:3], 3))
    with float64_enabled():
        for mode, padding_mode, align_corners in LINE_CASES:
            options = dict(
                mode=mode,
                padding_mode=padding_mode,
                align_corners=align_corners,
            )
            sample = sampler(implementation, **options)
            outputs, (expected, expected_images, expected_grid) = (
                sampled_and_expected(sample, images, grid, upstream, compiled)
            )
            tolerance = 1e-4 if dtype == "float32" else 1e-12
            np.testing.assert_allclose(
                outputs, expected, atol=tolerance, err_msg=str(options)
            )
            if dtype == "float64" and not compiled:
                # The same arithmetic as PyTorch's, so the same side of each
                # line, and the gradients of that side.
                _, (grad_images, grid_gradient) = value_and_gradients(
                    loss_of(sample, upstream), images, grid
                )
                np.testing.assert_allclose(
                    grad_images,
                    expected_images,
                    atol=1e-12,
                    err_msg=str(options),
                )
                np.testing.assert_allclose(
                    grid_gradient,
                    expected_grid,
                    atol=1e-9,
                    err_msg=str(options),
                )


def sampler(implementation, **options):
    """`grid_sample` of channels-last images, with `options` fixed."""

    def sample(images, grid):
        return grid_sample(
            images,
            grid,
            data_format="channels_last",
            implementation=implementation,
            **options,
        )

    sample.options = options
    return sample


def sampled_and_expected(sample, images, grid, upstream, compiled):
    """`sample` on its path, and PyTorch's float64 samples and gradients.

    Returns:
        `(outputs, (expected, expected_images_gradient,
        expected_grid_gradient))`, for the loss `sum(outputs * upstream)`.
    """
    expected = torch_grid_sample(
        images.astype("float64"),
        grid.astype("float64"),
        upstream,
        "channels_last",
        **sample.options,
    )
    outputs = sampled(sample, [images, grid], compiled, differentiated=True)
    return outputs, expected


def loss_of(sample, upstream):
    def loss(images, grid):
        return ops.sum(ops.multiply(sample(images, grid), upstream))

    return loss


@pytest.mark.parametrize("implementation,compiled", PATHS)
@pytest.mark.parametrize("dtype", ("float32", "float64"))
@pytest.mark.parametrize("align_corners", (False, True))
def test_nearest_ties_round_half_to_even_as_pytorch(
    implementation, compiled, dtype, align_corners
):
    """Points halfway between pixels, and beyond the edges, at sizes whose
    half pixels are exact normalized coordinates (spans of powers of two)."""
    height, width = (9, 17) if align_corners else (8, 16)
    rng = np.random.default_rng(1)
    images = rng.normal(size=(1, height, width, 2))

    def half_pixels(size):
        pixels = np.arange(-2.5, size + 2.0, 0.5)
        if align_corners:
            return 2.0 * pixels / (size - 1) - 1.0
        return (2.0 * pixels + 1.0) / size - 1.0

    grid = np.stack(np.meshgrid(half_pixels(width), half_pixels(height)), -1)
    grid = grid[None].astype(dtype)
    upstream = np.zeros((1, *grid.shape[1:3], 2))
    with float64_enabled():
        for padding_mode in PADDINGS:
            sample = sampler(
                implementation,
                mode="nearest",
                padding_mode=padding_mode,
                align_corners=align_corners,
            )
            outputs, (expected, _, _) = sampled_and_expected(
                sample, images.astype(dtype), grid, upstream, compiled
            )
            np.testing.assert_array_equal(
                outputs, expected.astype(dtype), err_msg=padding_mode
            )


@pytest.mark.parametrize(
    "transform", ("affine", "attention", "similarity", "projective", "tps")
)
@pytest.mark.parametrize("training", (False, True))
def test_every_family_starts_at_the_exact_identity(transform, training):
    """The layer's untrained transform, at a size of a float32 span."""
    rng = np.random.default_rng(2)
    images = rng.normal(size=(2, *SHAPES[0], 3)).astype("float32")
    for padding_mode, align_corners in itertools.product(
        PADDINGS, (False, True)
    ):
        layer = SpatialTransformer(
            keras.layers.GlobalAveragePooling2D(),
            transform=transform,
            padding_mode=padding_mode,
            align_corners=align_corners,
            data_format="channels_last",
        )
        outputs = sampled(
            lambda x, layer=layer: layer(x, training=training),
            [images],
            compiled=False,
            differentiated=training,
        )
        assert np.array_equal(outputs, images), (padding_mode, align_corners)


def test_whole_model_compilation_reflects_exactly():
    """One function of both entry points compiled by the backend's compiler
    (XLA, `jax.jit`, `torch.compile`'s Inductor), at a float32 span."""
    rng = np.random.default_rng(3)
    images = rng.normal(size=(1, *SHAPES[0], 3)).astype("float32")
    theta = np.eye(2, 3, dtype="float32")[None]
    grid = np.stack(np.meshgrid(near_lines("float32"), [-3.0, 1.0]), -1)[None]

    def warp(images, theta, grid):
        kwargs = dict(padding_mode="reflection", align_corners=True)
        kwargs["data_format"] = "channels_last"
        return warp_affine(images, theta, **kwargs), grid_sample(
            images, grid, **kwargs
        )

    warped, sampled_points = compile_function(warp)(
        *[ops.convert_to_tensor(a) for a in (images, theta, grid)]
    )
    np.testing.assert_array_equal(ops.convert_to_numpy(warped), images)
    expected, _, _ = torch_grid_sample(
        images.astype("float64"),
        grid.astype("float64"),
        np.zeros((1, *grid.shape[1:3], 3)),
        "channels_last",
        padding_mode="reflection",
        align_corners=True,
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(sampled_points), expected, atol=1e-4
    )


@pytest.mark.parametrize("data_format", ("channels_last", "channels_first"))
@pytest.mark.parametrize("shape", [(1, 0, 2, 3), (1, 4, 0, 3), (2, 3, 0, 4, 3)])
@pytest.mark.parametrize("implementation", ("keras", "auto"))
def test_empty_spatial_axes_raise(data_format, shape, implementation):
    if data_format == "channels_first":
        shape = (shape[0], shape[-1], *shape[1:-1])
    images = np.zeros(shape, "float32")
    rank = len(shape) - 2
    theta = np.eye(rank, rank + 1, dtype="float32")[None]
    grid = np.zeros((1, *[2] * rank, rank), "float32")
    options = dict(data_format=data_format, implementation=implementation)
    with pytest.raises(ValueError, match="`images`.*at least one pixel"):
        grid_sample(images, grid, **options)
    with pytest.raises(ValueError, match="`images`.*at least one pixel"):
        warp_affine(images, theta, **options)
    layer = SpatialTransformer(keras.layers.Flatten(), **options)
    with pytest.raises(ValueError, match="`images`.*at least one pixel"):
        layer(images)


@pytest.mark.parametrize("implementation", ("keras", "auto"))
def test_empty_batches_and_empty_grids_sample_nothing(implementation):
    images = np.ones((1, 4, 5, 2), "float32")
    options = dict(data_format="channels_last", implementation=implementation)
    empty_grid = np.zeros((1, 0, 3, 2), "float32")
    outputs = grid_sample(images, empty_grid, **options)
    assert tuple(outputs.shape) == (1, 0, 3, 2)
    empty_batch = grid_sample(
        images[:0], np.zeros((0, 2, 3, 2), "float32"), **options
    )
    assert tuple(empty_batch.shape) == (0, 2, 3, 2)
