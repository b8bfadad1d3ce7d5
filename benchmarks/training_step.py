"""Time a training step of an ST-CNN against the CNN alone and pure PyTorch.

Four models on the same batch (64 RGB images of 64x64, 10 classes), each
trained with Adam on sparse categorical cross-entropy:

- `cnn`: three 3x3 convolutions (32, 64, 64 filters, each with ReLU and
  2x2 max pooling), a dense layer of 128 and the softmax;
- `st_cnn`: the same CNN behind a `SpatialTransformer` that keeps the
  input's size, with a light localization net (2x2 average pooling and
  two dense layers of 32), as the paper's multi-ST SVHN nets;
- `pointwise_cnn`: the same CNN behind a trainable 1x1 convolution (3
  filters), whose cost is close to nothing but which, as a transformer
  does, makes the first 3x3 convolution compute its input's gradient: the
  part of a transformer's cost that any trainable first layer brings;
- `torch_st_cnn`: the ST-CNN written in pure PyTorch, as a user would
  without keras-stn (`affine_grid` and `grid_sample`, channels first,
  `torch.optim.Adam`), timed in the same process whatever the backend.

The Keras models are timed with `train_on_batch`, which runs the train
function that `fit` compiles by default. Prints one JSON line with the
median step time of each and the ratios.

    KERAS_BACKEND=jax python benchmarks/training_step.py
"""

import argparse
import json

import keras
import numpy as np
import torch

import keras_stn

from timing import BACKEND
from timing import median_seconds

BATCH = 64
SIZE = 64
CHANNELS = 3
CLASSES = 10
FILTERS = (32, 64, 64)
UNITS = 128
LOCALIZATION_UNITS = 32


def keras_cnn():
    """The CNN's layers, as a list (the models share its architecture)."""
    layers = []
    for filters in FILTERS:
        layers += [
            keras.layers.Conv2D(filters, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(2),
        ]
    return layers + [
        keras.layers.Flatten(),
        keras.layers.Dense(UNITS, activation="relu"),
        keras.layers.Dense(CLASSES, activation="softmax"),
    ]


def keras_model(front=None):
    """The Keras CNN, behind `front`: `None`, `"transformer"` or
    `"pointwise"` (a 1x1 convolution)."""
    layers = [keras.Input((SIZE, SIZE, CHANNELS))]
    if front == "pointwise":
        layers.append(keras.layers.Conv2D(CHANNELS, 1))
    if front == "transformer":
        localization_net = keras.Sequential(
            [
                keras.layers.AveragePooling2D(2),
                keras.layers.Flatten(),
                keras.layers.Dense(LOCALIZATION_UNITS, activation="relu"),
                keras.layers.Dense(LOCALIZATION_UNITS, activation="relu"),
            ]
        )
        layers.append(keras_stn.SpatialTransformer(localization_net))
    model = keras.Sequential(layers + keras_cnn())
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


class TorchSpatialTransformerCNN(torch.nn.Module):
    """The ST-CNN in pure PyTorch, channels first."""

    def __init__(self):
        super().__init__()
        pooled = (SIZE // 2) ** 2 * CHANNELS
        self.localization = torch.nn.Sequential(
            torch.nn.AvgPool2d(2),
            torch.nn.Flatten(),
            torch.nn.Linear(pooled, LOCALIZATION_UNITS),
            torch.nn.ReLU(),
            torch.nn.Linear(LOCALIZATION_UNITS, LOCALIZATION_UNITS),
            torch.nn.ReLU(),
        )
        self.theta = torch.nn.Linear(LOCALIZATION_UNITS, 6)
        torch.nn.init.zeros_(self.theta.weight)
        with torch.no_grad():
            self.theta.bias.copy_(torch.tensor([1.0, 0, 0, 0, 1, 0]))
        layers, channels = [], CHANNELS
        for filters in FILTERS:
            layers += [
                torch.nn.Conv2d(channels, filters, 3, padding=1),
                torch.nn.ReLU(),
                torch.nn.MaxPool2d(2),
            ]
            channels = filters
        side = SIZE // 2 ** len(FILTERS)
        self.classifier = torch.nn.Sequential(
            *layers,
            torch.nn.Flatten(),
            torch.nn.Linear(channels * side * side, UNITS),
            torch.nn.ReLU(),
            torch.nn.Linear(UNITS, CLASSES),
        )

    def forward(self, images):
        theta = self.theta(self.localization(images)).view(-1, 2, 3)
        grid = torch.nn.functional.affine_grid(
            theta, images.shape, align_corners=False
        )
        warped = torch.nn.functional.grid_sample(
            images, grid, align_corners=False
        )
        return self.classifier(warped)


def torch_step(images, labels):
    """One training step of the pure-PyTorch ST-CNN, ready to call."""
    model = TorchSpatialTransformerCNN()
    optimizer = torch.optim.Adam(model.parameters())
    images = torch.tensor(np.moveaxis(images, -1, 1))
    labels = torch.tensor(labels, dtype=torch.long)

    def step():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def measure(repeats):
    """Time the four models' training steps; return the medians and ratios."""
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(BATCH, SIZE, SIZE, CHANNELS))
    images = images.astype("float32")
    labels = rng.integers(0, CLASSES, BATCH).astype("int32")
    keras.utils.set_random_seed(0)
    cnn, st_cnn = keras_model(), keras_model("transformer")
    pointwise_cnn = keras_model("pointwise")
    seconds = median_seconds(
        {
            "cnn": lambda: cnn.train_on_batch(images, labels),
            "st_cnn": lambda: st_cnn.train_on_batch(images, labels),
            "pointwise_cnn": lambda: pointwise_cnn.train_on_batch(
                images, labels
            ),
            "torch_st_cnn": torch_step(images, labels),
        },
        repeats,
    )
    return {
        "backend": BACKEND,
        **seconds,
        "st_cnn_over_cnn": seconds["st_cnn"] / seconds["cnn"],
        "pointwise_cnn_over_cnn": seconds["pointwise_cnn"] / seconds["cnn"],
        "st_cnn_over_torch": seconds["st_cnn"] / seconds["torch_st_cnn"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    print(json.dumps(measure(args.repeats)), flush=True)


if __name__ == "__main__":
    main()
