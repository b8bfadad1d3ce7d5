"""Callbacks and pictures that show what a spatial transformer learned."""

from keras_stn.callbacks.drawing import draw_transformer
from keras_stn.callbacks.transformer_snapshot import TransformerSnapshot

__all__ = ["TransformerSnapshot", "draw_transformer"]
