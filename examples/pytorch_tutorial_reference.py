"""The PyTorch "Spatial Transformer Networks" tutorial, in pure PyTorch.

The reference for `pytorch_tutorial.py`, its Keras port: the tutorial's net
(https://pytorch.org/tutorials/intermediate/spatial_transformer_tutorial.html)
with PyTorch's default initializers, `F.affine_grid` and `F.grid_sample`
with their defaults (`align_corners=False`), trained with SGD (learning
rate 0.01, batches of 64) on MNIST normalized with mean 0.1307 and standard
deviation 0.3081. It needs PyTorch but not Keras.

Usage (`--help` lists the options):

    python examples/pytorch_tutorial_reference.py --seed 0 --epochs 1
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# The MNIST file that the examples read (see `mnist_data.py`, not imported
# here since it imports Keras).
DEFAULT_DATA = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist_subset.npz"
)
MEAN = 0.1307
STD = 0.3081


class Net(nn.Module):
    """The tutorial's classifier: a spatial transformer, then a small CNN."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.conv2_drop = nn.Dropout2d()
        self.fc1 = nn.Linear(320, 50)
        self.fc2 = nn.Linear(50, 10)
        self.localization = nn.Sequential(
            nn.Conv2d(1, 8, kernel_size=7),
            nn.MaxPool2d(2, stride=2),
            nn.ReLU(True),
            nn.Conv2d(8, 10, kernel_size=5),
            nn.MaxPool2d(2, stride=2),
            nn.ReLU(True),
        )
        self.fc_loc = nn.Sequential(
            nn.Linear(10 * 3 * 3, 32), nn.ReLU(True), nn.Linear(32, 3 * 2)
        )
        # The regressor starts at the identity transform.
        self.fc_loc[2].weight.data.zero_()
        self.fc_loc[2].bias.data.copy_(
            torch.tensor([1, 0, 0, 0, 1, 0], dtype=torch.float)
        )

    def theta(self, x: torch.Tensor) -> torch.Tensor:
        """The affine transforms `(batch, 2, 3)` that the net applies to x."""
        features = self.localization(x).view(-1, 10 * 3 * 3)
        return self.fc_loc(features).view(-1, 2, 3)

    def stn(self, x: torch.Tensor) -> torch.Tensor:
        """Warp `x`, a batch `(batch, 1, 28, 28)`, with its transforms."""
        grid = F.affine_grid(self.theta(x), x.size(), align_corners=False)
        return F.grid_sample(x, grid, align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stn(x)
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
        x = x.view(-1, 320)
        x = F.relu(self.fc1(x))
        x = F.dropout(x, training=self.training)
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)


def normalize(images: np.ndarray) -> torch.Tensor:
    """uint8 images `(n, 28, 28)` to normalized floats `(n, 1, 28, 28)`."""
    x = torch.from_numpy(images.astype("float32") / 255.0)
    return ((x - MEAN) / STD).unsqueeze(1)


def train(
    model: Net,
    x: torch.Tensor,
    y: torch.Tensor,
    epochs: int,
    rng: np.random.Generator,
) -> None:
    """Train with SGD (learning rate 0.01) on shuffled batches of 64.

    Args:
        model: the net, trained in place.
        x: normalized training images `(n, 1, 28, 28)`.
        y: their labels, int64 `(n,)`.
        epochs: passes over the training set.
        rng: shuffles the training set before each epoch.
    """
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    model.train()
    for _ in range(epochs):
        order = torch.from_numpy(rng.permutation(len(x)))
        for batch in order.split(64):
            optimizer.zero_grad()
            loss = F.nll_loss(model(x[batch]), y[batch])
            loss.backward()
            optimizer.step()


@torch.no_grad()
def evaluate(
    model: Net, x: torch.Tensor, y: torch.Tensor
) -> tuple[float, np.ndarray]:
    """The test accuracy, and the transforms of the test images.

    Args:
        model: the trained net.
        x: normalized test images `(n, 1, 28, 28)`.
        y: their labels.

    Returns:
        `(accuracy, theta)`, with `theta` a float array `(n, 2, 3)`.
    """
    model.eval()
    correct = 0
    thetas = []
    for images, labels in zip(x.split(1000), y.split(1000), strict=True):
        correct += (model(images).argmax(1) == labels).sum().item()
        thetas.append(model.theta(images))
    return correct / len(x), torch.cat(thetas).numpy()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line (`sys.argv[1:]` if `argv` is `None`)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the weights, dropout and shuffling "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=1,
        help="training epochs (default: %(default)s)",
    )
    parser.add_argument(
        "--train-images",
        type=int,
        help="use the first N training images (default: all)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="MNIST .npz file with x_train, y_train, x_test and y_test "
        "(default: %(default)s)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Train and test the tutorial's net.

    Returns:
        A dict with the test `accuracy`, `theta` (the test images'
        transforms, `(n, 2, 3)`), `seconds` (wall time) and the settings.
    """
    args = parse_args(argv)
    start = time.perf_counter()
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    with np.load(args.data) as data:
        x_train = normalize(data["x_train"][: args.train_images])
        y_train = torch.from_numpy(data["y_train"][: args.train_images])
        x_test = normalize(data["x_test"])
        y_test = torch.from_numpy(data["y_test"])
    model = Net()
    train(model, x_train, y_train.long(), args.epochs, rng)
    accuracy, theta = evaluate(model, x_test, y_test.long())
    seconds = time.perf_counter() - start
    print(
        f"PyTorch reference: test accuracy {100 * accuracy:.1f}% on "
        f"{len(x_test)} images after {args.epochs} epoch(s) on "
        f"{len(x_train)} images (seed {args.seed}, {seconds:.1f} s)."
    )
    return {
        "accuracy": accuracy,
        "theta": theta,
        "seconds": round(seconds, 1),
        "epochs": args.epochs,
        "train_images": len(x_train),
        "seed": args.seed,
    }


if __name__ == "__main__":
    main()
