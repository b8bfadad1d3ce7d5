"""`TransformerSnapshot` and `draw_transformer`: readable pictures and
TensorBoard summaries that follow the transformer as it trains."""

import io

import keras
import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_file_loader import (
    RawEventFileLoader,
)
from tensorboard.compat.proto.event_pb2 import Event

from keras_stn import SpatialTransformer
from keras_stn.callbacks import TransformerSnapshot
from keras_stn.callbacks import draw_transformer
from keras_stn.callbacks.drawing import MARGIN


def classifier(*transformers, input_shape=(28, 28, 1)):
    return keras.Sequential(
        [
            keras.Input(input_shape),
            *transformers,
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


def random_data(count=32, shape=(28, 28, 1)):
    rng = np.random.default_rng(0)
    x = rng.random((count, *shape)).astype("float32")
    return x, rng.integers(0, 10, count)


def read_png(path):
    return np.asarray(Image.open(path).convert("RGB"))


def test_snapshots_follow_training(tmp_path):
    model = classifier(SpatialTransformer(name="st"))
    model.compile(
        keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy"
    )
    x, y = random_data()
    snapshot = TransformerSnapshot(
        x[:3], output_dir=tmp_path / "png", log_dir=tmp_path / "logs"
    )
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[snapshot])

    pictures = [
        read_png(tmp_path / "png" / f"epoch_{e:03d}.png") for e in range(3)
    ]
    assert all(p.shape == pictures[0].shape for p in pictures)
    # 28x28 panels drawn 4x larger: input, then output, in each of 3 rows.
    scale, size = 4, 112
    assert pictures[0].shape == (
        3 * (size + MARGIN) + MARGIN,
        2 * size + 3 * MARGIN,
        3,
    )
    top, left = MARGIN, MARGIN
    right = left + size + MARGIN

    def panels(picture):
        row = picture[top : top + size]
        return row[:, left : left + size], row[:, right : right + size]

    # At the start the transformer is the identity: the output panel is the
    # input panel (inside the outline, which runs along the border pixels).
    drawn_input, drawn_output = panels(pictures[0])
    inner = slice(scale, size - scale)
    np.testing.assert_array_equal(
        drawn_output[inner, inner], drawn_input[inner, inner]
    )
    assert drawn_output.std() > 10  # not a blank panel
    # Training moves the transformer, and the pictures with it.
    assert not np.array_equal(panels(pictures[2])[1], drawn_output)

    events = [
        Event.FromString(record)
        for path in (tmp_path / "logs").iterdir()
        for record in RawEventFileLoader(str(path)).Load()
    ]
    events = [event for event in events if event.HasField("summary")]
    assert [event.step for event in events] == [0, 1, 2]
    for event, picture in zip(events, pictures, strict=True):
        (value,) = event.summary.value
        assert value.tag == "spatial_transformer/st"
        image = Image.open(io.BytesIO(value.image.encoded_image_string))
        np.testing.assert_array_equal(np.asarray(image.convert("RGB")), picture)


def test_every_n_epochs(tmp_path):
    model = classifier(SpatialTransformer())
    model.compile("adam", "sparse_categorical_crossentropy")
    x, y = random_data(count=8)
    snapshot = TransformerSnapshot(x[:2], output_dir=tmp_path, every_n_epochs=2)
    model.fit(x, y, epochs=5, verbose=0, callbacks=[snapshot])
    names = sorted(path.name for path in tmp_path.iterdir())
    assert names == ["epoch_000.png", "epoch_002.png", "epoch_004.png"]


def test_a_deeper_transformer_is_drawn_from_the_model_inputs(tmp_path):
    model = classifier(
        SpatialTransformer(output_size=(20, 20), name="first"),
        keras.layers.Conv2D(3, 3, padding="same"),
        SpatialTransformer(
            transform="attention",
            num_transformers=2,
            output_size=(10, 12),
            name="second",
        ),
    )
    x, _ = random_data(count=2)
    snapshot = TransformerSnapshot(x, output_dir=tmp_path, layer="second")
    snapshot.set_model(model)
    snapshot.on_train_begin()
    picture = read_png(tmp_path / "epoch_000.png")
    # 20x20 feature maps drawn 6x larger, then two 10x12 outputs.
    assert picture.shape == (
        2 * (120 + MARGIN) + MARGIN,
        120 + 2 * 72 + 4 * MARGIN,
        3,
    )


def test_draw_transformer_shows_several_transformers_and_channels_first():
    layer = SpatialTransformer(
        num_transformers=3,
        merge_mode="stack",
        output_size=(8, 8),
        data_format="channels_first",
    )
    images = np.random.default_rng(1).random((2, 3, 16, 16)).astype("float32")
    layer(images)
    picture = draw_transformer(layer, images)
    # 16x16 inputs drawn 7x larger, then three 8x8 outputs.
    assert picture.shape == (
        2 * (112 + MARGIN) + MARGIN,
        112 + 3 * 56 + 5 * MARGIN,
        3,
    )


def test_draw_transformer_shows_two_channels_in_magenta_and_cyan():
    layer = SpatialTransformer(output_size=(16, 16))
    # Channel 0 lights the left half, channel 1 the top half.
    images = np.zeros((1, 16, 16, 2), "float32")
    images[0, :, :8, 0] = 1.0
    images[0, :8, :, 1] = 1.0
    layer(images)
    picture = draw_transformer(layer, images)
    # 16x16 drawn 7x larger; the output panel (the identity's) beside the
    # input's. The centres of its quarters: both, channel 1, channel 0,
    # neither.
    top, left = MARGIN, MARGIN + 112 + MARGIN
    quarters = [
        picture[top + row * 56 + 28, left + col * 56 + 28]
        for row in (0, 1)
        for col in (0, 1)
    ]
    expected = [[255, 255, 255], [0, 255, 255], [255, 0, 255], [0, 0, 0]]
    np.testing.assert_array_equal(quarters, expected)


@pytest.mark.parametrize("every_n_epochs", [0, 1.5, True])
def test_bad_every_n_epochs(every_n_epochs):
    with pytest.raises(ValueError, match="`every_n_epochs`"):
        TransformerSnapshot(
            np.zeros((1, 8, 8, 1)), every_n_epochs=every_n_epochs
        )


def test_unknown_layer_is_rejected():
    model = classifier(SpatialTransformer())
    snapshot = TransformerSnapshot(np.zeros((1, 28, 28, 1)), layer="nothing")
    snapshot.set_model(model)
    with pytest.raises(ValueError, match="`layer`"):
        snapshot.on_train_begin()


def test_volumes_cannot_be_drawn():
    layer = SpatialTransformer()
    volumes = np.zeros((1, 4, 4, 4, 1), "float32")
    layer(volumes)
    with pytest.raises(ValueError, match="`images`"):
        draw_transformer(layer, volumes)
