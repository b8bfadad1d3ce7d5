"""Print the largest differences between keras-stn and independent oracles.

1. The sampler: for every mode (bicubic included), padding mode,
   `align_corners` and data format, samples random images at random grids
   (inside, on and outside the border) and compares the output and the
   gradients with respect to the images and the grid against
   `torch.nn.functional.grid_sample`; then volumes against its 5-D form.
2. The gradient with respect to theta of `warp_affine` against
   `affine_grid` + `grid_sample`.
3. Every transform family's grid against its oracle: PyTorch's
   `affine_grid` for the affine families, scikit-image's
   `ProjectiveTransform` for homographies and SciPy's `RBFInterpolator`
   for thin-plate splines.

Runs on the backend that `KERAS_BACKEND` selects:

    KERAS_BACKEND=jax python benchmarks/oracle_errors.py
"""

import itertools
import sys
from pathlib import Path

import keras
import numpy as np
import torch
from keras import ops
from scipy.interpolate import RBFInterpolator
from skimage.transform import ProjectiveTransform

from keras_stn import transforms
from keras_stn.ops import grid_sample
from keras_stn.ops import warp_affine

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import normalized_mesh  # noqa: E402
from helpers import random_images_and_upstream  # noqa: E402
from helpers import torch_grid_sample  # noqa: E402
from helpers import value_and_gradients  # noqa: E402

# (batch, height, width, channels, out_height, out_width)
SIZES = [(4, 28, 28, 1, 28, 28), (2, 17, 23, 5, 31, 9), (2, 64, 64, 8, 32, 32)]
# (batch, depth, height, width, channels, out_depth, out_height, out_width)
VOLUME_SIZES = [(2, 16, 16, 16, 2, 16, 16, 16), (2, 9, 7, 5, 3, 4, 6, 8)]
# Output sizes of the transform families' grids, images and volumes.
GRID_SIZES = {2: [(28, 28), (64, 48)], 3: [(16, 16, 16), (5, 9, 7)]}


def grid_sample_errors(
    mode, padding_mode, align_corners, data_format, rng, sizes=SIZES
):
    """Largest absolute errors of output and gradients over `sizes`."""
    worst = np.zeros(3)
    for size in sizes:
        images, upstream = random_images_and_upstream(rng, size, data_format)
        rank = len(size) // 2 - 1
        batch, out_size = size[0], size[-rank:]
        grid = rng.uniform(-1.2, 1.2, (batch, *out_size, rank))
        grid = grid.astype("float32")
        kwargs = dict(
            mode=mode, padding_mode=padding_mode, align_corners=align_corners
        )

        def loss(images, grid, kwargs=kwargs, upstream=upstream):
            out = grid_sample(images, grid, data_format=data_format, **kwargs)
            return ops.sum(ops.multiply(out, upstream))

        out = grid_sample(images, grid, data_format=data_format, **kwargs)
        _, grads = value_and_gradients(loss, images, grid)
        expected = torch_grid_sample(
            images, grid, upstream, data_format, **kwargs
        )
        ours = [ops.convert_to_numpy(out), *grads]
        errors = [
            np.abs(a - b).max() for a, b in zip(ours, expected, strict=True)
        ]
        worst = np.maximum(worst, errors)
    return worst


MODES = ("bilinear", "nearest", "bicubic")


def theta_gradient_errors(padding_mode, align_corners, rng):
    """Relative errors of the theta gradient of `warp_affine`.

    Returns the largest difference of keras-stn's float32 gradient from
    PyTorch's in float32 and in float64, and of PyTorch's float32 gradient
    from its float64 one, each divided by the largest float64 value. A
    sampling point within rounding of an integer pixel coordinate sits on
    the kink of bilinear interpolation, where the two float32 computations
    may take different sides; float64 says which side is right.
    """
    images = rng.normal(size=(4, 28, 28, 3)).astype("float32")
    theta = (np.eye(2, 3) + rng.normal(0, 0.2, (4, 2, 3))).astype("float32")
    upstream = rng.normal(size=(4, 20, 20, 3)).astype("float32")

    def loss(theta):
        out = warp_affine(
            images,
            theta,
            (20, 20),
            padding_mode=padding_mode,
            align_corners=align_corners,
            data_format="channels_last",
        )
        return ops.sum(ops.multiply(out, upstream))

    _, (grad,) = value_and_gradients(loss, theta)
    torch_grads = []
    for dtype in (torch.float32, torch.float64):
        t_theta = torch.tensor(theta, dtype=dtype, requires_grad=True)
        t_grid = torch.nn.functional.affine_grid(
            t_theta, (4, 3, 20, 20), align_corners=align_corners
        )
        t_out = torch.nn.functional.grid_sample(
            torch.tensor(images, dtype=dtype).permute(0, 3, 1, 2),
            t_grid,
            padding_mode=padding_mode,
            align_corners=align_corners,
        ).permute(0, 2, 3, 1)
        (t_out * torch.tensor(upstream, dtype=dtype)).sum().backward()
        torch_grads.append(t_theta.grad.numpy())
    torch32, torch64 = torch_grads
    scale = np.abs(torch64).max()
    pairs = [(grad, torch32), (grad, torch64), (torch32, torch64)]
    return [np.abs(a - b).max() / scale for a, b in pairs]


def main():
    rng = np.random.default_rng(0)
    print(f"backend: {keras.backend.backend()}, float32")
    print("grid_sample: max |ours - torch| over sizes", SIZES, VOLUME_SIZES)
    print(
        f"{'rank':3} {'mode':9} {'padding':11} {'corners':8} {'format':15} "
        f"{'output':>9} {'d images':>9} {'d grid':>9}"
    )
    worst = np.zeros(3)
    for sizes, modes in ((SIZES, MODES), (VOLUME_SIZES, MODES[:2])):
        rank = len(sizes[0]) // 2 - 1
        worst = np.zeros(3)
        for mode, padding_mode, corners, data_format in itertools.product(
            modes,
            ("zeros", "border", "reflection"),
            (False, True),
            ("channels_last", "channels_first"),
        ):
            errors = grid_sample_errors(
                mode, padding_mode, corners, data_format, rng, sizes
            )
            worst = np.maximum(worst, errors)
            print(
                f"{rank}-D {mode:9} {padding_mode:11} {corners!s:8} "
                f"{data_format:15} " + " ".join(f"{e:9.2e}" for e in errors)
            )
        print(f"{rank}-D worst:", " ".join(f"{e:.2e}" for e in worst))
    print("warp_affine: max |d theta difference| / max |d theta|")
    print(
        f"{'padding':11} {'corners':8} {'vs torch32':>11} {'vs torch64':>11} "
        f"{'torch32 vs 64':>14}"
    )
    for padding_mode, corners in itertools.product(
        ("zeros", "border", "reflection"), (False, True)
    ):
        errors = theta_gradient_errors(padding_mode, corners, rng)
        print(
            f"{padding_mode:11} {corners!s:8} "
            + " ".join(f"{e:11.2e}" for e in errors)
        )

    print("transform families: max |grid - oracle| over sizes", GRID_SIZES)
    print(f"{'family':12} {'rank':>4} {'params':>6} {'oracle':38} {'error':>9}")
    for family, rank, oracle_name, oracle in FAMILY_ORACLES:
        transform = transforms.get(family)
        count = int(np.prod(transform.parameter_shape(rank)))
        error = family_grid_error(transform, rank, oracle, rng)
        print(f"{family:12} {rank:4} {count:6} {oracle_name:38} {error:9.2e}")


def torch_affine_oracle(theta_of):
    """An oracle: PyTorch's `affine_grid` of the matrices `theta_of` gives."""

    def oracle(parameters, output_size, align_corners):
        theta = torch.tensor(np.stack([theta_of(p) for p in parameters]))
        size = (len(parameters), 1, *output_size)
        grid = torch.nn.functional.affine_grid(theta, size, align_corners)
        return grid.numpy()

    return oracle


def attention_matrix(parameters):
    scale, translation = parameters[0], parameters[1:]
    return np.c_[scale * np.eye(len(translation)), translation]


def similarity_matrix(parameters):
    scale, angle, tx, ty = parameters
    cos, sin = scale * np.cos(angle), scale * np.sin(angle)
    return np.array([[cos, -sin, tx], [sin, cos, ty]])


def skimage_projective(parameters, output_size, align_corners):
    """scikit-image's homographies applied to the normalized mesh."""
    mesh = normalized_mesh(output_size, align_corners)
    points = mesh.reshape(-1, len(output_size))
    size = len(output_size) + 1
    grids = []
    for p in parameters:
        matrix = np.append(p, 1.0).reshape(size, size)
        transform = ProjectiveTransform(matrix, dimensionality=size - 1)
        grids.append(transform(points).reshape(mesh.shape))
    return np.stack(grids)


def scipy_thin_plate_spline(parameters, output_size, align_corners):
    """SciPy's thin-plate spline interpolation of the control points."""
    control_points = transforms.ThinPlateSpline().control_points
    mesh = normalized_mesh(output_size, align_corners)
    grids = []
    for targets in parameters:
        spline = RBFInterpolator(
            control_points, targets, kernel="thin_plate_spline", degree=1
        )
        grids.append(spline(mesh.reshape(-1, 2)).reshape(mesh.shape))
    return np.stack(grids)


FAMILY_ORACLES = [
    ("affine", 2, "torch affine_grid", torch_affine_oracle(np.asarray)),
    ("affine", 3, "torch affine_grid (5-D)", torch_affine_oracle(np.asarray)),
    (
        "attention",
        2,
        "torch affine_grid [[s,0,tx],[0,s,ty]]",
        torch_affine_oracle(attention_matrix),
    ),
    (
        "attention",
        3,
        "torch affine_grid (5-D)",
        torch_affine_oracle(attention_matrix),
    ),
    (
        "similarity",
        2,
        "torch affine_grid of s*R(a), t",
        torch_affine_oracle(similarity_matrix),
    ),
    ("projective", 2, "skimage ProjectiveTransform", skimage_projective),
    ("projective", 3, "skimage ProjectiveTransform 3-D", skimage_projective),
    ("tps", 2, "scipy RBFInterpolator (TPS)", scipy_thin_plate_spline),
]


def family_grid_error(transform, rank, oracle, rng):
    """Largest |grid - oracle| over `GRID_SIZES` and `align_corners`."""
    shape = transform.parameter_shape(rank)
    worst = 0.0
    for output_size, corners in itertools.product(
        GRID_SIZES[rank], (False, True)
    ):
        noise = rng.normal(0.0, 0.1, (4, *shape))
        parameters = (transform.identity(rank) + noise).astype("float32")
        grid = transform.grid(parameters, output_size, corners)
        expected = oracle(parameters.astype("float64"), output_size, corners)
        error = np.abs(ops.convert_to_numpy(grid) - expected).max()
        worst = max(worst, error)
    return worst


if __name__ == "__main__":
    main()
