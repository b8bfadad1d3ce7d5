"""Hostile values: NaN and infinite points, theta and pixels, huge scales,
1x1 inputs and outputs, and empty batches.

The rule for NaN and infinite sampling points is
`keras_stn.ops.sampling.nonfinite`'s;
where PyTorch's `grid_sample` defines the result (finite points far outside,
NaN pixels) the numbers are checked against it. Every case runs through the
default path (`implementation="auto"`) and the generic `keras.ops` sampler.
"""

import keras
import numpy as np
import pytest
import torch
from keras import ops

from keras_stn import SpatialTransformer
from keras_stn import transforms
from keras_stn.ops import grid_sample
from keras_stn.ops import warp_affine

from helpers import float64_enabled
from helpers import torch_grid_sample
from helpers import value_and_gradients

MODES = ("bilinear", "nearest", "bicubic")
PADDINGS = ("zeros", "border", "reflection")
IMPLEMENTATIONS = ("auto", "keras")
# Far enough outside any image here that PyTorch samples what a point
# infinitely far away samples.
FAR = 1e4


def masked_loss(upstream):
    """`sum(outputs * upstream)` over the outputs that are not NaN."""

    def loss(outputs):
        finite = ops.where(ops.isnan(outputs), 0.0, outputs)
        return ops.sum(ops.multiply(finite, upstream))

    return loss


def sample_channels_last(images, grid, implementation, **kwargs):
    """`grid_sample` of channels-last images with `implementation`."""
    return grid_sample(
        images,
        grid,
        data_format="channels_last",
        implementation=implementation,
        **kwargs,
    )


def sample_with_gradients(images, grid, upstream, implementation, **kwargs):
    """`grid_sample` (channels last), and the gradients of `masked_loss`."""

    def sample(images, grid):
        return sample_channels_last(images, grid, implementation, **kwargs)

    loss = masked_loss(upstream)
    outputs = ops.convert_to_numpy(sample(images, grid))
    _, (grad_images, grad_grid) = value_and_gradients(
        lambda images, grid: loss(sample(images, grid)), images, grid
    )
    return outputs, grad_images, grad_grid


def random_case(seed, size=(2, 6, 7, 3), output_size=(5, 4)):
    """Images, a grid over [-1.2, 1.2] and an upstream gradient, float32."""
    rng = np.random.default_rng(seed)
    batch, channels = size[0], size[-1]
    images = rng.normal(size=size).astype("float32")
    grid = rng.uniform(-1.2, 1.2, (batch, *output_size, 2)).astype("float32")
    upstream = rng.normal(size=(batch, *output_size, channels))
    return images, grid, upstream.astype("float32")


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("padding_mode", PADDINGS)
@pytest.mark.parametrize("mode", MODES)
def test_nan_points_sample_nan_and_pass_no_gradient(
    mode, padding_mode, implementation
):
    images, grid, upstream = random_case(0)
    grid[0, 1, 2, 0] = np.nan
    grid[1, 3, 0, 1] = np.nan
    grid[1, 4, 3] = np.nan
    nan_points = np.isnan(grid).any(-1)
    kwargs = dict(mode=mode, padding_mode=padding_mode, align_corners=False)
    outputs, grad_images, grad_grid = sample_with_gradients(
        images, grid, upstream, implementation, **kwargs
    )
    # The oracle: PyTorch without the NaN points (moved to the centre,
    # their upstream gradient zero).
    expected, expected_images, expected_grid = torch_grid_sample(
        images,
        np.where(nan_points[..., None], 0.0, grid).astype("float32"),
        np.where(nan_points[..., None], 0.0, upstream).astype("float32"),
        "channels_last",
        **kwargs,
    )
    assert np.isnan(outputs[nan_points]).all()
    np.testing.assert_allclose(
        outputs[~nan_points], expected[~nan_points], rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(grad_images, expected_images, atol=1e-4)
    assert np.all(grad_grid[nan_points] == 0.0)
    np.testing.assert_allclose(grad_grid, expected_grid, atol=1e-3)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("padding_mode", PADDINGS)
@pytest.mark.parametrize("mode", MODES)
def test_infinite_points(mode, padding_mode, implementation):
    """Zeros and border: as far points; reflection: NaN, as NaN points."""
    images, grid, upstream = random_case(1)
    grid[0, 0, 0, 0] = np.inf
    grid[0, 2, 1, 1] = -np.inf
    grid[1, 3, 2] = (-np.inf, np.inf)
    infinite = np.isinf(grid)
    kwargs = dict(mode=mode, padding_mode=padding_mode, align_corners=True)
    outputs, grad_images, grad_grid = sample_with_gradients(
        images, grid, upstream, implementation, **kwargs
    )
    assert np.isfinite(grad_images).all() and np.isfinite(grad_grid).all()
    points = infinite.any(-1)
    if padding_mode == "reflection":
        assert np.isnan(outputs[points]).all()
        assert not np.isnan(outputs[~points]).any()
        assert np.all(grad_grid[points] == 0.0)
        return
    # PyTorch at points far outside instead.
    far_grid = np.where(infinite, np.sign(grid) * FAR, grid).astype("float32")
    expected, expected_images, expected_grid = torch_grid_sample(
        images, far_grid, upstream, "channels_last", **kwargs
    )
    np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad_images, expected_images, atol=1e-4)
    np.testing.assert_allclose(grad_grid, expected_grid, atol=1e-3)
    # Along an infinite coordinate nothing moves.
    assert np.all(grad_grid[infinite] == 0.0)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("padding_mode", ("zeros", "border"))
@pytest.mark.parametrize("mode", MODES)
def test_finite_points_at_any_distance(mode, padding_mode, implementation):
    """Outputs only (no gradient), where torch's path without autograd
    lets PyTorch's kernel sample far points unclamped if their squares sum
    to a finite number (1e18), and clamps them otherwise (1e30, 3e38)."""
    images, grid, upstream = random_case(3)
    grid[0, 1, 2, 0] = 1e18
    grid[1, 3, 1, 1] = -1e18
    grid[0, 4, 3] = (1e30, 0.5)
    grid[1, 0, 0] = (-3e38, 3e38)
    far = np.abs(grid) > FAR
    kwargs = dict(mode=mode, padding_mode=padding_mode, align_corners=False)
    outputs = sample_channels_last(images, grid, implementation, **kwargs)
    far_grid = np.where(far, np.sign(grid) * FAR, grid).astype("float32")
    expected, _, _ = torch_grid_sample(
        images, far_grid, upstream, "channels_last", **kwargs
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(outputs), expected, rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("align_corners", (False, True))
@pytest.mark.parametrize("padding_mode", ("zeros", "border"))
def test_infinite_points_on_a_one_pixel_axis(padding_mode, align_corners):
    """Both implementations: 0 * inf is NaN where a pixel spans the axis.

    With `align_corners=True`, an axis of one pixel maps every normalized
    coordinate to that pixel, times a scale of 0: an infinite coordinate
    to NaN. Otherwise it is a point infinitely far out.
    """
    images, grid, _ = random_case(7, size=(2, 1, 5, 2))
    grid[0, 1, 1, 1] = np.inf
    grid[1, 2, 3, 1] = -np.inf
    kwargs = dict(padding_mode=padding_mode, align_corners=align_corners)
    outputs = [
        ops.convert_to_numpy(
            grid_sample(
                images,
                grid,
                data_format="channels_last",
                implementation=implementation,
                **kwargs,
            )
        )
        for implementation in IMPLEMENTATIONS
    ]
    points = np.isinf(grid).any(-1)
    for output in outputs:
        np.testing.assert_array_equal(np.isnan(output[points]), align_corners)
        assert not np.isnan(output[~points]).any()
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("padding_mode", PADDINGS)
@pytest.mark.parametrize("mode", MODES)
def test_nan_and_infinite_pixels_spread_as_in_torch(
    mode, padding_mode, implementation
):
    """A NaN or infinite pixel reaches exactly the outputs that read it."""
    rng = np.random.default_rng(2)
    images = rng.normal(size=(1, 6, 7, 2)).astype("float32")
    images[0, 0, 0, 0] = np.nan
    images[0, 3, 6, 1] = np.nan
    images[0, 5, 2, 0] = np.inf
    grid = rng.uniform(-2.0, 2.0, (1, 30, 30, 2)).astype("float32")
    kwargs = dict(mode=mode, padding_mode=padding_mode, align_corners=False)
    outputs = sample_channels_last(images, grid, implementation, **kwargs)
    outputs = ops.convert_to_numpy(outputs)
    expected = torch.nn.functional.grid_sample(
        torch.from_numpy(images).movedim(-1, 1),
        torch.from_numpy(grid),
        **kwargs,
    )
    expected = expected.movedim(1, -1).numpy()
    assert np.isnan(expected).sum() > 5  # not a void test
    np.testing.assert_array_equal(np.isnan(outputs), np.isnan(expected))
    np.testing.assert_array_equal(np.isinf(outputs), np.isinf(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(
        outputs[finite], expected[finite], rtol=1e-5, atol=1e-5
    )


def torch_warp(images, theta, output_size, upstream, **kwargs):
    """PyTorch's `affine_grid` and `grid_sample`, float64, with gradients."""
    t_images = torch.tensor(images, dtype=torch.float64, requires_grad=True)
    t_theta = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
    grid = torch.nn.functional.affine_grid(
        t_theta,
        (len(images), images.shape[-1], *output_size),
        align_corners=kwargs["align_corners"],
    )
    outputs = torch.nn.functional.grid_sample(
        t_images.movedim(-1, 1), grid, **kwargs
    ).movedim(1, -1)
    (outputs * torch.tensor(upstream, dtype=torch.float64)).sum().backward()
    return (
        outputs.detach().numpy(),
        t_images.grad.numpy(),
        t_theta.grad.numpy(),
    )


def warp_with_gradients(images, theta, output_size, upstream, **kwargs):
    """`warp_affine` (channels last) and the gradients of `masked_loss`."""

    def warp(images, theta):
        return warp_affine(
            images, theta, output_size, data_format="channels_last", **kwargs
        )

    loss = masked_loss(upstream)
    outputs = ops.convert_to_numpy(warp(images, theta))
    _, grads = value_and_gradients(
        lambda images, theta: loss(warp(images, theta)), images, theta
    )
    return outputs, *grads


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("padding_mode", PADDINGS)
@pytest.mark.parametrize("scale", (1e6, -1e6))
def test_huge_scales_match_torch(scale, padding_mode, implementation):
    """Theta scaling by 1e6: every point but the centre is far outside."""
    rng = np.random.default_rng(3)
    # Odd output sizes: the centre pixel maps to the translation.
    output_size = (5, 7)
    images = rng.normal(size=(2, 9, 8, 2))
    upstream = rng.normal(size=(2, *output_size, 2))
    theta = np.tile(np.eye(2, 3), (2, 1, 1))
    theta[:, :, :2] *= scale
    theta[:, :, 2] = rng.uniform(-0.5, 0.5, (2, 2))
    kwargs = dict(
        mode="bilinear", padding_mode=padding_mode, align_corners=False
    )
    # Float64: with reflection padding, mirror images of points 1e7 pixels
    # out are only float32-accurate to about a pixel.
    with float64_enabled():
        outputs, grad_images, grad_theta = warp_with_gradients(
            images,
            theta,
            output_size,
            upstream,
            implementation=implementation,
            **kwargs,
        )
    expected, expected_images, expected_theta = torch_warp(
        images, theta, output_size, upstream, **kwargs
    )
    np.testing.assert_allclose(outputs, expected, rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(grad_images, expected_images, atol=1e-7)
    # Relative to the gradient's size: d theta of points 1e6 out is 1e6
    # times that of the centre (where it is of order 1).
    tolerance = 1e-7 * max(1.0, np.abs(expected_theta).max())
    np.testing.assert_allclose(grad_theta, expected_theta, atol=tolerance)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_nan_and_infinite_theta(implementation):
    """A non-finite theta spoils its own example only, and no gradient."""
    rng = np.random.default_rng(4)
    images = rng.normal(size=(4, 8, 8, 2)).astype("float32")
    upstream = rng.normal(size=(4, 6, 6, 2)).astype("float32")
    theta = np.tile(np.eye(2, 3, dtype="float32"), (4, 1, 1))
    theta[1, 0, 1] = np.nan
    theta[2, 1, 2] = np.inf
    theta[3, 0, 0] = -np.inf
    outputs, grad_images, grad_theta = warp_with_gradients(
        images, theta, (6, 6), upstream, implementation=implementation
    )
    assert np.isfinite(grad_images).all() and np.isfinite(grad_theta).all()
    # Example 0 is untouched: the identity, resampled to 6x6.
    expected, _, _ = torch_warp(
        images[:1],
        theta[:1],
        (6, 6),
        upstream[:1],
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    )
    np.testing.assert_allclose(outputs[:1], expected, rtol=1e-5, atol=1e-5)
    # One non-finite entry makes every point of its example NaN: the map
    # to pixel space multiplies each entry by exact constants, some zero.
    assert np.isnan(outputs[1:]).all()
    np.testing.assert_array_equal(grad_theta[1:], 0.0)


@pytest.mark.parametrize(
    "transform", ("affine", "attention", "similarity", "projective", "tps")
)
def test_layer_warp_with_nan_theta(transform):
    """Each family: NaN in one example's theta, the others exact."""
    family = transforms.get(transform)
    layer = SpatialTransformer(transform=transform)
    images = np.random.default_rng(5).random((3, 12, 12, 1)).astype("float32")
    layer.build(images.shape)
    theta = np.tile(family.identity(2), (3,) + (1,) * family.identity(2).ndim)
    theta = theta.astype("float32")
    theta[1].flat[0] = np.nan
    upstream = np.ones((3, 12, 12, 1), "float32")
    loss = masked_loss(upstream)
    outputs = ops.convert_to_numpy(layer.warp(images, theta))
    _, (grad_theta,) = value_and_gradients(
        lambda theta: loss(layer.warp(images, theta)), theta
    )
    assert np.isnan(outputs[1]).all()
    # The identity's outputs are the inputs, bit for bit.
    np.testing.assert_array_equal(outputs[[0, 2]], images[[0, 2]])
    assert np.isfinite(grad_theta[[0, 2]]).all()
    if transform in ("similarity", "projective"):
        # Their maps are not linear in theta: the chain rule multiplies the
        # zero gradient of the NaN points by NaN derivatives, as PyTorch's
        # `affine_grid` does for a NaN theta.
        return
    np.testing.assert_array_equal(grad_theta[1], 0.0)


def tiny_localization_net():
    """A localization net for inputs of any size, even 1x1."""
    return keras.Sequential(
        [keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(4)]
    )


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_layer_on_one_pixel_input_and_output(implementation):
    rng = np.random.default_rng(6)
    # A 1x1 input: every point samples its pixel (or zero padding).
    pixels = rng.normal(size=(1, 1, 1, 3)).astype("float32")
    layer = SpatialTransformer(
        tiny_localization_net(),
        output_size=(2, 3),
        padding_mode="border",
        implementation=implementation,
    )
    outputs = ops.convert_to_numpy(layer(pixels))
    np.testing.assert_allclose(outputs, np.broadcast_to(pixels, (1, 2, 3, 3)))
    # A 1x1 output of a 5x5 input at the identity: the centre pixel.
    images = rng.normal(size=(1, 5, 5, 2)).astype("float32")
    layer = SpatialTransformer(
        tiny_localization_net(),
        output_size=(1, 1),
        implementation=implementation,
    )
    outputs = ops.convert_to_numpy(layer(images))
    np.testing.assert_array_equal(outputs, images[:, 2:3, 2:3])


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize(
    "images_shape, grid_shape",
    (((0, 5, 6, 2), (0, 3, 4, 2)), ((0, 3, 4, 5, 2), (0, 2, 2, 3, 3))),
)
def test_grid_sample_of_empty_batch(images_shape, grid_shape, implementation):
    images = np.zeros(images_shape, "float32")
    grid = np.zeros(grid_shape, "float32")
    outputs = grid_sample(
        images, grid, data_format="channels_last", implementation=implementation
    )
    assert tuple(outputs.shape) == (*grid_shape[:-1], images_shape[-1])
    _, (grad_images, grad_grid) = value_and_gradients(
        lambda images, grid: ops.sum(
            grid_sample(
                images,
                grid,
                data_format="channels_last",
                implementation=implementation,
            )
        ),
        images,
        grid,
    )
    assert grad_images.shape == images_shape
    assert grad_grid.shape == grid_shape


@pytest.mark.parametrize(
    "data_format, shape, expected",
    (
        ("channels_last", (0, 28, 28, 1), (0, 14, 14, 1)),
        ("channels_first", (0, 1, 28, 28), (0, 1, 14, 14)),
    ),
)
def test_layer_on_empty_batch(data_format, shape, expected):
    layer = SpatialTransformer(output_size=(14, 14), data_format=data_format)
    outputs = layer(np.zeros(shape, "float32"))
    assert tuple(outputs.shape) == expected
