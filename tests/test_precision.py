"""Low-precision policies: coordinates in float32, outputs in the policy's.

Under `mixed_float16`, `mixed_bfloat16`, `float16` and `bfloat16`, the
layer regresses theta and computes the sampling grid in float32, weighs and
sums the pixels in float32, and returns the compute dtype; `Warp` adds its
field to the pixel indices in float32, and `IntegrateVelocity` computes
and returns its field in float32. The tests compare
with a float32 layer of the same weights, on a large image of noise, where
coordinates rounded to float16 would move the samples by a visible amount
(the control computes that error with PyTorch).
"""

import keras
import numpy as np
import pytest
import torch
from keras import ops

from keras_stn import SpatialTransformer
from keras_stn.layers import IntegrateVelocity
from keras_stn.layers import Warp
from keras_stn.ops import grid_sample

SHAPE = (1, 150, 200, 2)
# A rotation by 0.3 rad, a scale of 0.9 and a translation: points with
# fractional pixel coordinates everywhere.
THETA = np.array(
    [
        [0.9 * np.cos(0.3), -0.9 * np.sin(0.3), 0.05],
        [0.9 * np.sin(0.3), 0.9 * np.cos(0.3), -0.1],
    ]
)
# Max error against float32, for outputs in [0, 1]: a few units in the last
# place of the output dtype (float16: 2**-11, bfloat16: 2**-8).
TOLERANCES = {"float16": 2e-3, "bfloat16": 1e-2}
POLICIES = ("mixed_float16", "mixed_bfloat16", "float16", "bfloat16")


def noise_images():
    """Uniform noise: neighbouring pixels differ by about 1/3 on average."""
    return np.random.default_rng(0).random(SHAPE).astype("float32")


def layer_at_theta(policy):
    """A built layer under `policy` that applies `THETA` to any input."""
    layer = SpatialTransformer(dtype=policy)
    layer.build(SHAPE)
    layer.theta_regressor.bias.assign(THETA.flatten().astype("float32"))
    return layer


def rounded_coordinates_error(dtype):
    """PyTorch's error from rounding the normalized grid to `dtype`."""
    images = torch.from_numpy(np.moveaxis(noise_images(), -1, 1))
    theta = torch.from_numpy(THETA[None]).float()
    grid = torch.nn.functional.affine_grid(
        theta, images.shape, align_corners=False
    )
    rounded_grid = grid.to(getattr(torch, dtype)).float()
    exact = torch.nn.functional.grid_sample(images, grid, align_corners=False)
    rounded = torch.nn.functional.grid_sample(
        images, rounded_grid, align_corners=False
    )
    return float((exact - rounded).abs().max())


@pytest.mark.parametrize("policy", POLICIES)
def test_layer_under_low_precision_policy(policy):
    images = noise_images()
    layer = layer_at_theta(policy)
    outputs = layer(images)
    compute_dtype = keras.mixed_precision.Policy(policy).compute_dtype
    assert keras.backend.standardize_dtype(outputs.dtype) == compute_dtype
    theta = layer.compute_theta(images)
    assert keras.backend.standardize_dtype(theta.dtype) == "float32"
    expected = ops.convert_to_numpy(layer_at_theta("float32")(images))
    error = np.abs(
        ops.convert_to_numpy(ops.cast(outputs, "float32")) - expected
    )
    tolerance = TOLERANCES[compute_dtype]
    assert error.max() <= tolerance
    # The control: coordinates in the compute dtype would be far off.
    assert rounded_coordinates_error(compute_dtype) > 10 * tolerance


def theta_field():
    """`THETA` as a displacement field on `SHAPE`, in pixels (`"xy"`),
    from PyTorch's `affine_grid` in float64: fractional everywhere."""
    height, width = SHAPE[1:3]
    grid = torch.nn.functional.affine_grid(
        torch.from_numpy(THETA[None]), (1, 1, height, width), False
    ).numpy()
    pixels = ((grid + 1) * np.array([width, height]) - 1) / 2
    mesh = np.stack(np.meshgrid(np.arange(width), np.arange(height)), -1)
    return (pixels - mesh).astype("float32")


@pytest.mark.parametrize("policy", POLICIES)
def test_dense_field_layers_under_low_precision_policy(policy):
    images, velocity = noise_images(), theta_field()
    field = IntegrateVelocity(3, "channels_last", dtype=policy)(velocity)
    assert keras.backend.standardize_dtype(field.dtype) == "float32"
    # Computed in float32: the bits of a float32 layer's field.
    expected_field = IntegrateVelocity(3, "channels_last")(velocity)
    np.testing.assert_array_equal(
        ops.convert_to_numpy(field), ops.convert_to_numpy(expected_field)
    )
    outputs = Warp(data_format="channels_last", dtype=policy)(
        [images, velocity]
    )
    compute_dtype = keras.mixed_precision.Policy(policy).compute_dtype
    assert keras.backend.standardize_dtype(outputs.dtype) == compute_dtype
    expected = Warp(data_format="channels_last")([images, velocity])
    error = np.abs(
        ops.convert_to_numpy(ops.cast(outputs, "float32"))
        - ops.convert_to_numpy(expected)
    )
    assert error.max() <= TOLERANCES[compute_dtype]
    # The points of `THETA`, so that the control of the layer's test,
    # `rounded_coordinates_error`, is this warp's too.
    grid = torch.nn.functional.affine_grid(
        torch.from_numpy(THETA[None]).float(), (1, 2, *SHAPE[1:3]), False
    )
    reference = torch.nn.functional.grid_sample(
        torch.from_numpy(np.moveaxis(images, -1, 1)), grid, align_corners=False
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(expected),
        np.moveaxis(reference.numpy(), 1, -1),
        atol=1e-4,
    )


@pytest.mark.parametrize("dtype", ("float16", "bfloat16"))
def test_grid_sample_of_low_precision_images_and_grid(dtype):
    images = noise_images()
    theta = torch.from_numpy(THETA[None]).float()
    grid = torch.nn.functional.affine_grid(
        theta, (1, 2, *SHAPE[1:3]), align_corners=False
    ).numpy()
    outputs = grid_sample(
        ops.cast(images, dtype),
        ops.cast(grid, dtype),
        data_format="channels_last",
    )
    assert keras.backend.standardize_dtype(outputs.dtype) == dtype
    # The oracle samples at the grid as rounded to `dtype`, in float32.
    rounded_grid = ops.convert_to_numpy(
        ops.cast(ops.cast(grid, dtype), "float32")
    )
    rounded_images = ops.convert_to_numpy(
        ops.cast(ops.cast(images, dtype), "float32")
    )
    expected = torch.nn.functional.grid_sample(
        torch.from_numpy(np.moveaxis(rounded_images, -1, 1)),
        torch.from_numpy(rounded_grid),
        align_corners=False,
    )
    expected = np.moveaxis(expected.numpy(), 1, -1)
    error = np.abs(
        ops.convert_to_numpy(ops.cast(outputs, "float32")) - expected
    )
    assert error.max() <= TOLERANCES[dtype]


@pytest.fixture
def global_policy(request):
    """Set the global dtype policy for one test."""
    keras.config.set_dtype_policy(request.param)
    yield request.param
    keras.config.set_dtype_policy("float32")


@pytest.mark.parametrize(
    "global_policy", ("mixed_float16", "mixed_bfloat16"), indirect=True
)
def test_fit_under_mixed_precision(global_policy):
    """Training under a mixed policy moves theta, with finite losses."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(1)
    x = rng.random((16, 24, 24, 1)).astype("float32")
    y = rng.random((16, 3)).astype("float32")
    layer = SpatialTransformer(output_size=(16, 16))
    model = keras.Sequential(
        [
            keras.Input((24, 24, 1)),
            layer,
            keras.layers.Flatten(),
            keras.layers.Dense(3),
        ]
    )
    model.compile(keras.optimizers.SGD(0.05), "mse")
    assert layer.compute_dtype == global_policy.removeprefix("mixed_")
    if global_policy == "mixed_float16":
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    before = ops.convert_to_numpy(layer.theta_regressor.kernel)
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    after = ops.convert_to_numpy(layer.theta_regressor.kernel)
    assert np.all(np.isfinite(history.history["loss"]))
    assert layer.theta_regressor.kernel.dtype == "float32"
    assert np.abs(after - before).max() > 1e-6
