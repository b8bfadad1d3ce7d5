"""The `SpatialTransformer` layer: identity start, shapes, config, saving,
training, every transform family, volumes, several transformers, and bad
arguments."""

import itertools

import keras
import numpy as np
import pytest
import torch
from keras import ops

from keras_stn import SpatialTransformer
from keras_stn import transforms

FAMILIES = ["affine", "attention", "similarity", "projective", "tps"]


def pooled_features(data_format="channels_last"):
    """A tiny localization net: the mean of each channel."""
    return keras.Sequential(
        [keras.layers.GlobalAveragePooling2D(data_format=data_format)]
    )


def saved_and_loaded(model, x, path):
    """Save `model` as a `.keras` file, load it, and check its predictions."""
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(
        ops.convert_to_numpy(loaded.predict(x, verbose=0)),
        ops.convert_to_numpy(model.predict(x, verbose=0)),
    )
    return loaded


def randomize_regressor(layer, rng, scale=0.1):
    """Move a built layer's regressor away from the identity."""
    regressor = layer.theta_regressor
    kernel = rng.normal(0.0, 0.02, regressor.kernel.shape)
    bias = ops.convert_to_numpy(regressor.bias)
    regressor.set_weights([kernel, bias + rng.normal(0.0, scale, bias.shape)])


@pytest.mark.parametrize(
    "shape,data_format,localization_net",
    [
        ((2, 28, 28, 1), "channels_last", None),
        ((2, 42, 42, 3), "channels_last", None),
        ((2, 3, 20, 24), "channels_first", None),
        ((3, 16, 16, 2), "channels_last", pooled_features),
    ],
)
def test_untrained_layer_is_the_identity(shape, data_format, localization_net):
    rng = np.random.default_rng(0)
    images = rng.normal(size=shape).astype("float32")
    layer = SpatialTransformer(
        localization_net=localization_net and localization_net(),
        data_format=data_format,
    )
    np.testing.assert_array_equal(ops.convert_to_numpy(layer(images)), images)
    theta = ops.convert_to_numpy(layer.compute_theta(images))
    np.testing.assert_array_equal(
        theta, np.tile(np.eye(2, 3, dtype="float32"), (shape[0], 1, 1))
    )


def test_regressor_starts_with_zero_kernel_and_identity_bias():
    layer = SpatialTransformer()
    layer.build((None, 28, 28, 1))
    kernel = ops.convert_to_numpy(layer.theta_regressor.kernel)
    bias = ops.convert_to_numpy(layer.theta_regressor.bias)
    np.testing.assert_array_equal(kernel, np.zeros_like(kernel))
    np.testing.assert_array_equal(bias, [1, 0, 0, 0, 1, 0])


def st_cnn(input_shape=(42, 42, 1), **kwargs):
    return keras.Sequential(
        [
            keras.Input(input_shape),
            SpatialTransformer(output_size=(28, 28), **kwargs),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


def test_output_shapes():
    model = st_cnn()
    assert model.layers[0].output.shape == (None, 28, 28, 1)
    assert model.output_shape == (None, 10)
    layer = SpatialTransformer(output_size=(5, 6), data_format="channels_first")
    out = layer(np.zeros((2, 3, 9, 9), "float32"))
    assert tuple(out.shape) == (2, 3, 5, 6)
    assert layer.compute_output_shape((None, 3, 9, 9)) == (None, 3, 5, 6)


def classification_data(count=32, size=42, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((count, size, size, 1)).astype("float32")
    y = rng.integers(0, 10, count)
    return x, y


@pytest.mark.parametrize("jit_compile", ["auto", True])
def test_fit_trains_the_localization_net(jit_compile):
    model = st_cnn()
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss="sparse_categorical_crossentropy",
        jit_compile=jit_compile,
    )
    x, y = classification_data()
    layer = model.layers[0]
    before = [ops.convert_to_numpy(w) for w in layer.localization_net.weights]
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    after = [ops.convert_to_numpy(w) for w in layer.localization_net.weights]
    # The regressor's kernel starts at zero, so the localization net gets a
    # gradient from the second step on; it must have moved.
    assert any(
        not np.array_equal(a, b) for a, b in zip(before, after, strict=True)
    )
    theta = ops.convert_to_numpy(layer.compute_theta(x))
    assert not np.allclose(theta, np.eye(2, 3), atol=1e-6)


def test_keras_file_round_trip(tmp_path):
    model = st_cnn(padding_mode="border", align_corners=True)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = classification_data()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    loaded = saved_and_loaded(model, x, tmp_path / "st_cnn.keras")
    layer = loaded.layers[0]
    assert isinstance(layer, SpatialTransformer)
    assert layer.padding_mode == "border" and layer.align_corners is True


def test_config_round_trip_with_a_custom_localization_net():
    layer = SpatialTransformer(
        localization_net=pooled_features(),
        output_size=(7, 8),
        mode="nearest",
        padding_mode="reflection",
        align_corners=True,
        data_format="channels_last",
        name="st",
    )
    config = layer.get_config()
    restored = SpatialTransformer.from_config(config)
    assert restored.get_config() == config
    assert isinstance(restored.localization_net, keras.Sequential)
    images = np.random.default_rng(0).random((2, 10, 10, 1)).astype("float32")
    assert tuple(restored(images).shape) == (2, 7, 8, 1)


def test_learns_a_known_affine_distortion():
    """Fit the layer alone to undo a fixed affine warp of smooth images."""
    rng = np.random.default_rng(0)
    count, size = 64, 32
    coords = np.linspace(-1, 1, size)
    xs, ys = np.meshgrid(coords, coords)
    images = np.zeros((count, size, size, 1), "float32")
    for _ in range(3):
        cx, cy = rng.uniform(-0.35, 0.35, (2, count, 1, 1))
        blob = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * 0.15**2))
        images[..., 0] += blob
    angle, scale, shift = np.deg2rad(20.0), 0.85, (0.1, -0.05)
    distortion = np.array(
        [
            [scale * np.cos(angle), -scale * np.sin(angle), shift[0]],
            [scale * np.sin(angle), scale * np.cos(angle), shift[1]],
        ],
        "float32",
    )
    # The oracle: PyTorch warps the clean images into the distorted ones.
    t_images = torch.tensor(images).permute(0, 3, 1, 2)
    t_theta = torch.tensor(np.tile(distortion, (count, 1, 1)))
    grid = torch.nn.functional.affine_grid(t_theta, t_images.shape, False)
    distorted = torch.nn.functional.grid_sample(
        t_images, grid, align_corners=False
    )
    distorted = distorted.permute(0, 2, 3, 1).numpy()
    # Undoing output -> distorted -> clean needs distortion @ theta = I.
    square = np.vstack([distortion, [0.0, 0.0, 1.0]])
    expected_theta = np.linalg.inv(square)[:2]

    layer = SpatialTransformer(localization_net=pooled_features())
    model = keras.Sequential([keras.Input((size, size, 1)), layer])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    initial_loss = model.evaluate(distorted, images, verbose=0)
    model.fit(distorted, images, batch_size=16, epochs=60, verbose=0)
    final_loss = model.evaluate(distorted, images, verbose=0)
    theta = ops.convert_to_numpy(layer.compute_theta(distorted)).mean(axis=0)
    assert final_loss < initial_loss / 20
    np.testing.assert_allclose(theta, expected_theta, atol=0.05)


@pytest.mark.parametrize("transform", FAMILIES)
def test_mixed_precision_keeps_theta_in_float32(transform):
    images = np.random.default_rng(0).random((2, 16, 16, 1)).astype("float32")
    layer = SpatialTransformer(transform=transform, dtype="mixed_float16")
    out = layer(images)
    assert keras.backend.standardize_dtype(out.dtype) == "float16"
    theta = layer.compute_theta(images)
    assert keras.backend.standardize_dtype(theta.dtype) == "float32"
    np.testing.assert_allclose(
        ops.convert_to_numpy(out).astype("float32"), images, atol=1e-3
    )


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"localization_net": "conv"}, "`localization_net`"),
        ({"output_size": (0, 28)}, "`output_size`"),
        ({"output_size": 28}, "`output_size`"),
        ({"mode": "cubic"}, "`mode`"),
        ({"padding_mode": "wrap"}, "`padding_mode`"),
        ({"data_format": "NCHW"}, "`data_format`"),
        ({"transform": "shear"}, "`transform`"),
        ({"num_transformers": 0}, "`num_transformers`"),
        ({"num_transformers": 1.5}, "`num_transformers`"),
        ({"num_transformers": True}, "`num_transformers`"),
        ({"merge_mode": "sum"}, "`merge_mode`"),
        ({"theta_bound": 0}, "`theta_bound`"),
        ({"theta_bound": -1.0}, "`theta_bound`"),
        ({"theta_bound": float("inf")}, "`theta_bound`"),
        ({"theta_bound": True}, "`theta_bound`"),
        ({"theta_bound": "1"}, "`theta_bound`"),
        ({"theta_scale": 0.0}, "`theta_scale`"),
        ({"theta_scale": None}, "`theta_scale`"),
        ({"theta_scale": float("nan")}, "`theta_scale`"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SpatialTransformer(**kwargs)


@pytest.mark.parametrize(
    "transform,num_transformers,theta_scale,theta_bound",
    [
        ("affine", 1, 1.0, 0.25),
        ("tps", 2, 1.0, 0.25),
        ("attention", 3, 0.1, 0.25),
        ("projective", 1, 0.1, None),
    ],
)
def test_scaled_and_bounded_theta(
    transform, num_transformers, theta_scale, theta_bound
):
    rng = np.random.default_rng(3)
    images = rng.normal(size=(4, 12, 12, 2)).astype("float32")
    layer = SpatialTransformer(
        pooled_features(),
        transform=transform,
        num_transformers=num_transformers,
        merge_mode="stack",
        theta_scale=theta_scale,
        theta_bound=theta_bound,
    )
    layer.build(images.shape)
    identity = layer.transform.identity(2).astype("float32")
    theta = ops.convert_to_numpy(layer.compute_theta(images))
    np.testing.assert_array_equal(theta, np.broadcast_to(identity, theta.shape))
    # Offsets from small to far beyond the bound: theta follows
    # identity + bound * tanh(scale * offset / bound), computed in NumPy.
    regressor = layer.theta_regressor
    kernel = rng.normal(0.0, 20.0 / theta_scale, regressor.kernel.shape)
    bias = rng.normal(0.0, 0.1, regressor.bias.shape)
    regressor.set_weights([kernel, bias])
    features = images.mean(axis=(1, 2))
    features /= np.sqrt(np.sum(features**2, axis=-1, keepdims=True) + 1e-3)
    offset = theta_scale * (features @ kernel + bias)
    if theta_bound is not None:
        offset = theta_bound * np.tanh(offset / theta_bound)
    expected = identity + offset.reshape(4, num_transformers, *identity.shape)
    theta = ops.convert_to_numpy(layer.compute_theta(images))
    np.testing.assert_allclose(
        theta.reshape(expected.shape), expected, rtol=1e-5, atol=1e-5
    )
    if theta_bound is not None:
        assert np.all(np.abs(theta - identity) <= theta_bound + 1e-6)
        assert np.abs(theta - identity).max() > 0.99 * theta_bound


def test_bounded_theta_passes_the_full_gradient_at_the_identity():
    """At the identity, the bound changes neither outputs nor gradients."""
    x, y = classification_data()
    models = [st_cnn(), st_cnn(theta_bound=0.5)]
    models[1].set_weights(models[0].get_weights())
    # The bounded layer's regressor bias is the offset: zero, not identity.
    bias = models[1].layers[0].theta_regressor.bias
    bias.assign(np.zeros(bias.shape, "float32"))
    for model in models:
        model.compile(
            optimizer=keras.optimizers.SGD(0.1),
            loss="sparse_categorical_crossentropy",
        )
        model.train_on_batch(x, y)
    kernels = [
        ops.convert_to_numpy(m.layers[0].theta_regressor.kernel) for m in models
    ]
    assert np.abs(kernels[0]).max() > 0
    np.testing.assert_allclose(kernels[1], kernels[0], rtol=1e-4, atol=1e-7)


def test_localization_net_must_give_feature_vectors():
    layer = SpatialTransformer(localization_net=keras.layers.Conv2D(4, 3))
    with pytest.raises(ValueError, match="feature vectors"):
        layer.build((None, 16, 16, 1))


def test_input_of_the_wrong_rank_is_rejected():
    layer = SpatialTransformer()
    with pytest.raises(ValueError, match="ndim=4"):
        layer(np.zeros((2, 16, 16), "float32"))


@pytest.mark.parametrize(
    "transform,num_transformers,merge_mode",
    list(itertools.product(FAMILIES, [1, 3], ["concat", "stack"])),
)
def test_every_family_starts_at_the_identity(
    transform, num_transformers, merge_mode
):
    images = np.random.default_rng(0).normal(size=(2, 20, 24, 3))
    images = images.astype("float32")
    layer = SpatialTransformer(
        transform=transform,
        num_transformers=num_transformers,
        merge_mode=merge_mode,
    )
    out = ops.convert_to_numpy(layer(images))
    copies = [images] * num_transformers
    if merge_mode == "stack":
        np.testing.assert_array_equal(out, np.stack(copies, axis=1))
    else:
        np.testing.assert_array_equal(out, np.concatenate(copies, axis=-1))
    identity = transforms.get(transform).identity(2).astype("float32")
    theta = ops.convert_to_numpy(layer.compute_theta(images))
    expected_shape = (2, num_transformers) if num_transformers > 1 else (2,)
    np.testing.assert_array_equal(
        theta, np.broadcast_to(identity, expected_shape + identity.shape)
    )


@pytest.mark.parametrize(
    "transform,data_format",
    list(
        itertools.product(
            ["affine", "attention", "projective"],
            ["channels_last", "channels_first"],
        )
    ),
)
def test_volumes_start_at_the_identity(transform, data_format):
    shape = (2, 6, 8, 10, 2)
    if data_format == "channels_first":
        shape = (2, 2, 6, 8, 10)
    volumes = np.random.default_rng(0).normal(size=shape).astype("float32")
    layer = SpatialTransformer(transform=transform, data_format=data_format)
    np.testing.assert_array_equal(ops.convert_to_numpy(layer(volumes)), volumes)


@pytest.mark.parametrize(
    "merge_mode,data_format",
    list(
        itertools.product(
            ["concat", "stack"], ["channels_last", "channels_first"]
        )
    ),
)
def test_several_transformers_match_torch(merge_mode, data_format):
    rng = np.random.default_rng(1)
    images = rng.normal(size=(3, 16, 20, 2)).astype("float32")
    if data_format == "channels_first":
        images = images.transpose(0, 3, 1, 2)
    layer = SpatialTransformer(
        localization_net=pooled_features(data_format),
        output_size=(9, 11),
        num_transformers=2,
        merge_mode=merge_mode,
        data_format=data_format,
    )
    layer.build(images.shape)
    randomize_regressor(layer, rng)
    out = ops.convert_to_numpy(layer(images))
    theta = ops.convert_to_numpy(layer.compute_theta(images))
    assert theta.shape == (3, 2, 2, 3)
    nchw = torch.tensor(images)
    if data_format == "channels_last":
        nchw = nchw.permute(0, 3, 1, 2)
    warped = []
    for index in range(2):
        grid = torch.nn.functional.affine_grid(
            torch.tensor(theta[:, index]), (3, 2, 9, 11), align_corners=False
        )
        warped.append(
            torch.nn.functional.grid_sample(nchw, grid, align_corners=False)
        )
    expected = torch.stack(warped, dim=1)  # (batch, 2, channels, 9, 11)
    if data_format == "channels_last":
        expected = expected.permute(0, 1, 3, 4, 2)
    expected = expected.numpy()
    if merge_mode == "concat":
        if data_format == "channels_last":
            expected = np.concatenate([expected[:, 0], expected[:, 1]], -1)
        else:
            expected = expected.reshape(3, 4, 9, 11)
    assert out.shape == expected.shape
    assert layer.compute_output_shape(images.shape) == expected.shape
    np.testing.assert_allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize(
    "transform,kwargs,input_shape",
    [
        ("attention", {}, (20, 20, 1)),
        ("similarity", {"padding_mode": "reflection"}, (20, 20, 1)),
        ("projective", {"mode": "bicubic"}, (20, 20, 1)),
        (transforms.ThinPlateSpline(grid_size=(3, 3)), {}, (20, 20, 1)),
        ("tps", {"num_transformers": 2}, (20, 20, 2)),
        ("affine", {"num_transformers": 3, "merge_mode": "stack"}, (20, 20, 1)),
        ("attention", {"output_size": (5, 6, 7)}, (8, 8, 8, 1)),
        ("projective", {"num_transformers": 2}, (8, 8, 8, 1)),
        ("affine", {"theta_bound": 0.5, "theta_scale": 0.5}, (20, 20, 1)),
    ],
)
def test_keras_file_round_trip_of_every_family(
    tmp_path, transform, kwargs, input_shape
):
    rng = np.random.default_rng(2)
    layer = SpatialTransformer(transform=transform, **kwargs)
    model = keras.Sequential(
        [
            keras.Input(input_shape),
            layer,
            keras.layers.Flatten(),
            keras.layers.Dense(3),
        ]
    )
    randomize_regressor(layer, rng, scale=0.05)
    x = rng.random((4, *input_shape)).astype("float32")
    loaded = saved_and_loaded(model, x, tmp_path / "model.keras")
    restored = loaded.layers[0]
    assert type(restored.transform) is type(layer.transform)
    # Sublayer names may differ; the layer's own arguments may not.
    for key, value in layer.get_config().items():
        if key != "localization_net":
            assert restored.get_config()[key] == value, key
    np.testing.assert_array_equal(
        ops.convert_to_numpy(restored.compute_theta(x)),
        ops.convert_to_numpy(layer.compute_theta(x)),
    )


def test_transformers_in_series_train_end_to_end(tmp_path):
    """An attention window on the image, then an affine transformer on a
    deeper feature map, as the paper's multi-ST models."""
    model = keras.Sequential(
        [
            keras.Input((32, 32, 1)),
            SpatialTransformer(
                transform="attention", output_size=(24, 24), name="first"
            ),
            keras.layers.Conv2D(6, 3, padding="same", activation="relu"),
            SpatialTransformer(
                localization_net=pooled_features(), name="second"
            ),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss="sparse_categorical_crossentropy",
    )
    x, y = classification_data(size=32)
    transformers = [model.get_layer("first"), model.get_layer("second")]
    before = [
        [ops.convert_to_numpy(w) for w in layer.trainable_weights]
        for layer in transformers
    ]
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    for layer, weights in zip(transformers, before, strict=True):
        after = [ops.convert_to_numpy(w) for w in layer.trainable_weights]
        changed = [
            not np.array_equal(a, b)
            for a, b in zip(after, weights, strict=True)
        ]
        assert all(changed), layer.name
    saved_and_loaded(model, x, tmp_path / "series.keras")


def test_a_volume_model_trains():
    model = keras.Sequential(
        [
            keras.Input((8, 10, 12, 1)),
            SpatialTransformer(transform="attention", output_size=(6, 6, 6)),
            keras.layers.Conv3D(4, 3, activation="relu"),
            keras.layers.GlobalAveragePooling3D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    assert model.layers[0].output.shape == (None, 6, 6, 6, 1)
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss="sparse_categorical_crossentropy",
    )
    rng = np.random.default_rng(0)
    x = rng.random((16, 8, 10, 12, 1)).astype("float32")
    y = rng.integers(0, 3, 16)
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    theta = ops.convert_to_numpy(model.layers[0].compute_theta(x))
    assert theta.shape == (16, 4)
    assert not np.allclose(theta, [1.0, 0.0, 0.0, 0.0], atol=1e-6)


@pytest.mark.parametrize(
    "kwargs,input_shape,match",
    [
        ({"transform": "similarity"}, (None, 6, 6, 6, 1), "supports images"),
        ({"transform": "tps"}, (None, 6, 6, 6, 1), "supports images"),
        ({"mode": "bicubic"}, (None, 6, 6, 6, 1), "`mode`"),
        ({"output_size": (5, 5)}, (None, 6, 6, 6, 1), "`output_size`"),
        ({"output_size": (5, 5, 5)}, (None, 6, 6, 1), "`output_size`"),
        ({}, (None, None, None, 6, 1), "spatial sizes of volumes"),
    ],
)
def test_build_rejects_inputs_the_layer_cannot_handle(
    kwargs, input_shape, match
):
    layer = SpatialTransformer(**kwargs)
    with pytest.raises(ValueError, match=match):
        layer.build(input_shape)


@pytest.mark.parametrize(
    "num_transformers,theta_shape",
    [(1, (2, 6)), (1, (2, 3, 3)), (2, (2, 2, 3)), (2, (2, 3, 2, 3))],
)
def test_warp_rejects_theta_of_the_wrong_shape(num_transformers, theta_shape):
    layer = SpatialTransformer(num_transformers=num_transformers)
    images = np.zeros((2, 16, 16, 1), "float32")
    layer(images)
    with pytest.raises(ValueError, match="`theta`"):
        layer.warp(images, np.zeros(theta_shape, "float32"))


def test_a_config_saved_before_normalize_features_keeps_raw_features():
    """Models saved before the option regressed theta from the features as
    they were; their config, without the key, still does."""
    layer = SpatialTransformer()
    assert layer.normalize_features
    config = layer.get_config()
    assert config["normalize_features"] is True
    del config["normalize_features"]
    assert not SpatialTransformer.from_config(config).normalize_features
