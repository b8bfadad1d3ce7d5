"""Pictures of what a `SpatialTransformer` does to a batch of images."""

import itertools
import math

import numpy as np
from keras import ops

from keras_stn.ops.sampled_regions import sampled_boxes
from keras_stn.ops.sampled_regions import sampled_outlines
from keras_stn.typing import Tensor

# The colours of the two channels of two-channel images.
TWO_CHANNEL_COLOURS = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
# Outline colours of the transformers' sampling grids, in turn.
OUTLINE_COLOURS = [(255, 48, 48), (48, 200, 48), (48, 140, 255), (255, 200, 0)]
BACKGROUND = (32, 32, 32)
MARGIN = 4
MIN_PANEL_SIZE = 112


def draw_transformer(layer, images: Tensor, columns: int = 1) -> np.ndarray:
    """Draw a batch of inputs beside what a spatial transformer makes of them.

    Each example shows the input with the outline of each transformer's
    sampling grid drawn on it (the region of the input that the output
    shows, `keras_stn.ops.sampled_outlines`) over its bounding box in a
    darker shade (`keras_stn.ops.sampled_boxes`), then the transformer
    outputs. Values are scaled per example from the input's range; one
    channel is drawn in grey, two in magenta (the first) and cyan (the
    second), so that where both are bright it is white, three as RGB, others
    as their mean. Needs Pillow.

    Args:
        layer: a built `keras_stn.SpatialTransformer` on images (4-D).
        images: a batch of the layer's inputs, laid out as its
            `data_format` says.
        columns: how many examples to draw side by side in each row.

    Returns:
        An RGB image, a `uint8` NumPy array of shape `(height, width, 3)`.

    Example:

    >>> import keras_stn
    >>> layer = keras_stn.SpatialTransformer(output_size=(20, 20))
    >>> images = np.random.rand(2, 28, 28, 1).astype("float32")
    >>> _ = layer(images)
    >>> draw_transformer(layer, images).shape
    (236, 204, 3)
    """
    try:
        from PIL import Image
        from PIL import ImageDraw
    except ImportError as error:
        raise ImportError(
            "Drawing a spatial transformer needs Pillow: "
            "`pip install keras-stn[callbacks]` or `pip install pillow`"
        ) from error
    if isinstance(columns, bool) or not isinstance(columns, int) or columns < 1:
        raise ValueError(
            "Invalid value for argument `columns`. Expected a strictly "
            f"positive integer. Received columns={columns!r}"
        )
    if len(images.shape) != 4:
        raise ValueError(
            "Invalid shape for argument `images`. Only images (4-D inputs) "
            f"can be drawn. Received images.shape={tuple(images.shape)}"
        )
    theta = layer.compute_theta(images)
    inputs = _channels_last(ops.convert_to_numpy(images), layer.data_format)
    outputs = _split_transformers(
        ops.convert_to_numpy(layer.warp(images, theta)), layer
    )
    input_size = tuple(inputs.shape[1:3])
    arguments = (layer.transform, theta, input_size, layer.output_size)
    outlines = ops.convert_to_numpy(
        sampled_outlines(*arguments, layer.align_corners)
    ).reshape(len(inputs), layer.num_transformers, -1, 2)
    boxes = ops.convert_to_numpy(
        sampled_boxes(*arguments, layer.align_corners).pixels
    ).reshape(len(inputs), layer.num_transformers, 4)
    height, width = inputs.shape[1:3]
    out_height, out_width = outputs.shape[2:4]
    scale = max(1, math.ceil(MIN_PANEL_SIZE / max(height, width)))
    count = layer.num_transformers
    cell_width = (width + count * out_width) * scale + (count + 1) * MARGIN
    cell_height = max(height, out_height) * scale + MARGIN
    batch = len(inputs)
    rows = math.ceil(batch / columns)
    canvas = Image.new(
        "RGB",
        (
            min(batch, columns) * cell_width + MARGIN,
            rows * cell_height + MARGIN,
        ),
        BACKGROUND,
    )
    draw = ImageDraw.Draw(canvas)
    for example in range(batch):
        low, high = inputs[example].min(), inputs[example].max()
        top = MARGIN + (example // columns) * cell_height
        left = MARGIN + (example % columns) * cell_width
        picture = _to_picture(inputs[example], low, high, scale)
        canvas.paste(picture, (left, top))
        colours = itertools.cycle(OUTLINE_COLOURS)
        regions = zip(outlines[example], boxes[example], colours, strict=False)
        for outline, box, colour in regions:
            x0, y0, x1, y1 = [(v + 0.5) * scale for v in box]
            draw.rectangle(
                (left + x0, top + y0, left + x1, top + y1),
                outline=tuple(c // 2 for c in colour),
            )
            points = [
                (left + (x + 0.5) * scale, top + (y + 0.5) * scale)
                for x, y in outline
            ]
            draw.line(points + points[:1], fill=colour, width=1)
        left += width * scale + MARGIN
        for output in outputs[example]:
            canvas.paste(_to_picture(output, low, high, scale), (left, top))
            left += out_width * scale + MARGIN
    return np.asarray(canvas)


def _channels_last(images, data_format):
    if data_format == "channels_first":
        return np.moveaxis(images, 1, -1)
    return images


def _split_transformers(outputs, layer):
    """The layer's outputs as `(batch, num_transformers, h, w, channels)`."""
    count = layer.num_transformers
    if layer.merge_mode == "stack":
        if layer.data_format == "channels_first":
            outputs = np.moveaxis(outputs, 2, -1)
        return outputs
    outputs = _channels_last(outputs, layer.data_format)
    batch, height, width, channels = outputs.shape
    outputs = outputs.reshape(batch, height, width, count, channels // count)
    return np.moveaxis(outputs, 3, 1)


def _to_picture(image, low, high, scale):
    """A Pillow RGB image of a `(height, width, channels)` array."""
    from PIL import Image

    if image.shape[-1] == 2:
        image = image @ TWO_CHANNEL_COLOURS.astype(image.dtype)
    elif image.shape[-1] != 3:
        image = np.repeat(image.mean(axis=-1, keepdims=True), 3, axis=-1)
    span = high - low if high > low else 1.0
    pixels = np.clip((image - low) / span * 255.0, 0, 255).astype(np.uint8)
    picture = Image.fromarray(pixels, "RGB")
    height, width = pixels.shape[:2]
    return picture.resize((width * scale, height * scale), Image.NEAREST)
