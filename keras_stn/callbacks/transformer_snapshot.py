"""A callback that pictures what a `SpatialTransformer` learns."""

import io
import time
from pathlib import Path

import keras
import numpy as np

from keras_stn.callbacks.drawing import draw_transformer
from keras_stn.layers.spatial_transformer import SpatialTransformer
from keras_stn.typing import Tensor


class TransformerSnapshot(keras.callbacks.Callback):
    """Draw a fixed batch beside a spatial transformer's outputs as it trains.

    At the start of training and then every `every_n_epochs` epochs, draws
    each input of `inputs` with the outline of the transformer's sampling
    grid, beside the transformer's output (see
    `keras_stn.callbacks.draw_transformer`), and writes the picture as
    `output_dir/epoch_NNN.png` (NNN: the number of epochs done) and, when
    `log_dir` is given, as a TensorBoard image summary. Needs Pillow, and
    the `tensorboard` package for `log_dir`; both are imported only when
    the callback draws.

    Args:
        inputs: a fixed batch of the model's inputs (a few examples).
        output_dir: the folder of the PNG files, or `None` for none.
        log_dir: a TensorBoard log folder, or `None` for none.
        layer: the `SpatialTransformer` to draw, or its name; `None` takes
            the model's first one. Its input must be computable from the
            model's inputs (a functional or `Sequential` model).
        every_n_epochs: how often to draw.

    Example:

    >>> import keras_stn
    >>> model = keras.Sequential([
    ...     keras.Input((28, 28, 1)),
    ...     keras_stn.SpatialTransformer(),
    ...     keras.layers.Flatten(),
    ...     keras.layers.Dense(10),
    ... ])
    >>> snapshot = TransformerSnapshot(
    ...     np.zeros((4, 28, 28, 1), "float32"), output_dir=None
    ... )
    >>> snapshot.set_model(model)
    >>> snapshot.on_train_begin()
    >>> snapshot.last_image.shape
    (468, 236, 3)
    """

    def __init__(
        self,
        inputs: Tensor,
        output_dir: str | None = None,
        log_dir: str | None = None,
        layer: SpatialTransformer | str | None = None,
        every_n_epochs: int = 1,
    ):
        super().__init__()
        if (
            isinstance(every_n_epochs, bool)
            or not isinstance(every_n_epochs, int)
            or every_n_epochs < 1
        ):
            raise ValueError(
                "Invalid value for argument `every_n_epochs`. Expected a "
                f"strictly positive integer. Received {every_n_epochs!r}"
            )
        self.inputs = inputs
        self.output_dir = None if output_dir is None else Path(output_dir)
        self.log_dir = log_dir
        self.layer = layer
        self.every_n_epochs = every_n_epochs
        self.last_image = None
        self._writer = None

    def on_train_begin(self, logs=None):
        self._snapshot(0)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_n_epochs == 0:
            self._snapshot(epoch + 1)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _snapshot(self, epoch):
        layer = self._transformer()
        layer_inputs = self.inputs
        if layer.input is not self.model.inputs[0]:
            # The transformer sits deeper: compute what reaches it.
            inputs = self.model.inputs
            submodel = keras.Model(
                inputs[0] if len(inputs) == 1 else inputs, layer.input
            )
            layer_inputs = submodel(self.inputs)
        self.last_image = draw_transformer(layer, layer_inputs)
        png = _encode_png(self.last_image)
        if self.output_dir is not None:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / f"epoch_{epoch:03d}.png").write_bytes(png)
        if self.log_dir is not None:
            self._write_summary(f"spatial_transformer/{layer.name}", png, epoch)

    def _transformer(self):
        """The `SpatialTransformer` to draw."""
        if isinstance(self.layer, SpatialTransformer):
            return self.layer
        found = [
            layer
            for layer in _all_layers(self.model)
            if isinstance(layer, SpatialTransformer)
            and (self.layer is None or layer.name == self.layer)
        ]
        if not found:
            raise ValueError(
                "Invalid value for argument `layer`. Expected a "
                "SpatialTransformer of the model or its name. Received "
                f"layer={self.layer!r}, and the model has "
                f"{[type(x).__name__ for x in self.model.layers]}"
            )
        return found[0]

    def _write_summary(self, tag, png, step):
        """Append the PNG to the TensorBoard log as an image summary."""
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.summary.writer import event_file_writer

        if self._writer is None:
            self._writer = event_file_writer.EventFileWriter(str(self.log_dir))
        height, width = self.last_image.shape[:2]
        image = Summary.Image(
            height=height,
            width=width,
            colorspace=3,
            encoded_image_string=png,
        )
        summary = Summary(value=[Summary.Value(tag=tag, image=image)])
        event = Event(wall_time=time.time(), step=step, summary=summary)
        self._writer.add_event(event)
        self._writer.flush()


def _all_layers(model):
    """Every layer of `model`, nested models included, depth first."""
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


def _encode_png(image):
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image)).save(buffer, format="PNG")
    return buffer.getvalue()
