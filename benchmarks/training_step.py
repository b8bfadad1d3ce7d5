"""Time a training step of an ST-CNN against the CNN alone and pure PyTorch.

Four models on the same batch of RGB images of 64x64 and 10 classes, each
trained with Adam on sparse categorical cross-entropy:

- `cnn`: convolutions with ReLU, each followed by 2x2 max pooling, then
  dense layers with ReLU and the softmax (the architectures below);
- `st_cnn`: the same CNN behind a `SpatialTransformer` that keeps the
  input's size, with a light localization net (2x2 average pooling and
  two dense layers of 32), as the paper's multi-ST SVHN nets;
- `pointwise_cnn`: the same CNN behind a trainable 1x1 convolution (3
  filters), whose cost is close to nothing but which, as a transformer
  does, makes the first convolution compute its input's gradient: the
  part of a transformer's cost that any trainable first layer brings;
- `torch_st_cnn`: the ST-CNN written in pure PyTorch, as a user would
  without keras-stn (`affine_grid` and `grid_sample`, channels first,
  `torch.optim.Adam`), timed in the same process whatever the backend.

The CNNs (`--cnns`):

- `small`: three 3x3 convolutions (32, 64 and 64 filters, each pooled
  with stride 2) and a dense layer of 128, in batches of 64;
- `svhn`: the baseline CNN of the paper's SVHN experiments (Goodfellow et
  al., 2013, "Multi-digit Number Recognition from Street View Imagery"):
  eight 5x5 convolutions (48, 64, 128, 160, then 192 filters), pooled
  with strides alternating between 2 and 1, and two dense layers of
  3072; one softmax of 10 classes stands in for its five heads of 11,
  which cost next to nothing. In batches of 16, since a step of it takes
  about a second on a small CPU.

The Keras models are timed with `train_on_batch`, which runs the train
function that `fit` compiles by default. Prints one JSON line per CNN with
the median step time of each model and the ratios.

    KERAS_BACKEND=jax python benchmarks/training_step.py --cnns small svhn
"""

from typing import NamedTuple

import keras
import numpy as np
import torch

import keras_stn

from timing import BACKEND
from timing import benchmark_main
from timing import median_seconds

SIZE = 64
CHANNELS = 3
CLASSES = 10
LOCALIZATION_UNITS = 32


class Architecture(NamedTuple):
    """A CNN of the benchmark and the batch it is timed on.

    `convolutions` holds `(filters, kernel_size, pooling_stride)` per
    convolution; `units`, the dense layers' sizes before the softmax.
    """

    convolutions: tuple
    units: tuple
    batch: int


ARCHITECTURES = {
    "small": Architecture(
        convolutions=((32, 3, 2), (64, 3, 2), (64, 3, 2)),
        units=(128,),
        batch=64,
    ),
    "svhn": Architecture(
        convolutions=(
            (48, 5, 2),
            (64, 5, 1),
            (128, 5, 2),
            (160, 5, 1),
            (192, 5, 2),
            (192, 5, 1),
            (192, 5, 2),
            (192, 5, 1),
        ),
        units=(3072, 3072),
        batch=16,
    ),
}


def keras_cnn(architecture):
    """The CNN's layers, as a list (the models share its architecture)."""
    layers = []
    for filters, kernel_size, stride in architecture.convolutions:
        layers += [
            keras.layers.Conv2D(
                filters, kernel_size, padding="same", activation="relu"
            ),
            keras.layers.MaxPooling2D(2, strides=stride, padding="same"),
        ]
    layers.append(keras.layers.Flatten())
    for units in architecture.units:
        layers.append(keras.layers.Dense(units, activation="relu"))
    return layers + [keras.layers.Dense(CLASSES, activation="softmax")]


def keras_model(architecture, front=None):
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
    model = keras.Sequential(layers + keras_cnn(architecture))
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


def torch_cnn(architecture):
    """The CNN in pure PyTorch, channels first, as a `torch.nn.Sequential`.

    Keras pads a pooling of stride 1 at the bottom and right ("same"); the
    zeros padded here give the same maxima, since they follow a ReLU.
    """
    layers, channels, side = [], CHANNELS, SIZE
    for filters, kernel_size, stride in architecture.convolutions:
        layers += [
            torch.nn.Conv2d(
                channels, filters, kernel_size, padding=kernel_size // 2
            ),
            torch.nn.ReLU(),
        ]
        if stride == 1:
            layers.append(torch.nn.ZeroPad2d((0, 1, 0, 1)))
        layers.append(torch.nn.MaxPool2d(2, stride=stride))
        channels, side = filters, side // stride
    layers.append(torch.nn.Flatten())
    features = channels * side * side
    for units in architecture.units:
        layers += [torch.nn.Linear(features, units), torch.nn.ReLU()]
        features = units
    return torch.nn.Sequential(*layers, torch.nn.Linear(features, CLASSES))


class TorchSpatialTransformerCNN(torch.nn.Module):
    """The ST-CNN in pure PyTorch, channels first."""

    def __init__(self, architecture):
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
        self.classifier = torch_cnn(architecture)

    def forward(self, images):
        theta = self.theta(self.localization(images)).view(-1, 2, 3)
        grid = torch.nn.functional.affine_grid(
            theta, images.shape, align_corners=False
        )
        warped = torch.nn.functional.grid_sample(
            images, grid, align_corners=False
        )
        return self.classifier(warped)


def torch_step(architecture, images, labels, device="cpu"):
    """One training step of the pure-PyTorch ST-CNN, ready to call.

    Args:
        architecture: the CNN's `Architecture`.
        images: NumPy array, channels last (moved first here).
        labels: NumPy array of class indices.
        device: the torch device of the model and the batch.

    Returns:
        A function of no arguments that runs the step and returns its loss.
    """
    model = TorchSpatialTransformerCNN(architecture).to(device)
    optimizer = torch.optim.Adam(model.parameters())
    images = torch.tensor(np.moveaxis(images, -1, 1), device=device)
    labels = torch.tensor(labels, dtype=torch.long, device=device)

    def step():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def measure(cnn_name, repeats, device="cpu", architecture=None):
    """Time the four models' training steps on one CNN.

    Args:
        cnn_name: a key of `ARCHITECTURES`, or the name of `architecture`.
        repeats: the number of timed rounds.
        device: the torch device of the pure-PyTorch ST-CNN; the Keras
            models run on the backend's default device.
        architecture: the CNN's `Architecture`, or `None` for
            `ARCHITECTURES[cnn_name]`.

    Returns:
        A dict of the median step times, in seconds, and their ratios.
    """
    if architecture is None:
        architecture = ARCHITECTURES[cnn_name]
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(architecture.batch, SIZE, SIZE, CHANNELS))
    images = images.astype("float32")
    labels = rng.integers(0, CLASSES, architecture.batch).astype("int32")
    keras.utils.set_random_seed(0)
    cnn = keras_model(architecture)
    st_cnn = keras_model(architecture, "transformer")
    pointwise_cnn = keras_model(architecture, "pointwise")
    seconds = median_seconds(
        {
            "cnn": lambda: cnn.train_on_batch(images, labels),
            "st_cnn": lambda: st_cnn.train_on_batch(images, labels),
            "pointwise_cnn": lambda: pointwise_cnn.train_on_batch(
                images, labels
            ),
            "torch_st_cnn": torch_step(architecture, images, labels, device),
        },
        repeats,
    )
    return {
        "backend": BACKEND,
        "cnn_name": cnn_name,
        "batch": architecture.batch,
        **seconds,
        "st_cnn_over_cnn": seconds["st_cnn"] / seconds["cnn"],
        "pointwise_cnn_over_cnn": seconds["pointwise_cnn"] / seconds["cnn"],
        "st_cnn_over_torch": seconds["st_cnn"] / seconds["torch_st_cnn"],
    }


if __name__ == "__main__":
    benchmark_main(__doc__, measure, ARCHITECTURES, option="--cnns")
