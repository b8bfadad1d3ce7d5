"""The transform families: parameter counts, identities, grids against
PyTorch's `affine_grid`, gradients, serialization and bad arguments."""

import itertools

import keras
import numpy as np
import pytest
import torch
from keras import ops

from keras_stn import transforms

from helpers import assert_gradients_match_finite_differences

FAMILIES = ["affine", "attention", "similarity", "projective", "tps"]


def torch_affine_grid(theta, output_size, align_corners):
    """PyTorch's normalized grid of a NumPy batch of affine matrices."""
    size = (theta.shape[0], 1, *output_size)
    return torch.nn.functional.affine_grid(
        torch.tensor(theta), size, align_corners=align_corners
    ).numpy()


@pytest.mark.parametrize(
    "transform,spatial_rank,count",
    [
        ("affine", 2, 6),
        ("affine", 3, 12),
        ("attention", 2, 3),
        ("attention", 3, 4),
        ("similarity", 2, 4),
        ("projective", 2, 8),
        ("projective", 3, 15),
        ("tps", 2, 32),
        (transforms.ThinPlateSpline(grid_size=(3, 5)), 2, 30),
        (transforms.ThinPlateSpline(grid_size=(2, 2)), 2, 8),
    ],
)
def test_parameter_counts(transform, spatial_rank, count):
    transform = transforms.get(transform)
    shape = transform.parameter_shape(spatial_rank)
    assert int(np.prod(shape)) == count
    assert transform.identity(spatial_rank).shape == shape


@pytest.mark.parametrize(
    "family,size,align_corners",
    list(
        itertools.product(FAMILIES, [(5, 7), (1, 4), (16, 16)], (False, True))
    ),
)
def test_identity_parameters_give_the_identity_grid(
    family, size, align_corners
):
    transform = transforms.get(family)
    identity = np.broadcast_to(
        transform.identity(2), (2, *transform.parameter_shape(2))
    ).astype("float32")
    grid = transform.grid(identity, size, align_corners=align_corners)
    expected = torch_affine_grid(
        np.tile(np.eye(2, 3, dtype="float32"), (2, 1, 1)), size, align_corners
    )
    np.testing.assert_allclose(ops.convert_to_numpy(grid), expected, atol=1e-6)


def attention_matrix(scale, *translation):
    rank = len(translation)
    return np.c_[scale * np.eye(rank), translation]


def similarity_matrix(scale, angle, tx, ty):
    cos, sin = scale * np.cos(angle), scale * np.sin(angle)
    return np.array([[cos, -sin, tx], [sin, cos, ty]])


def affine_matrix(*entries):
    rank = {6: 2, 12: 3}[len(entries)]
    return np.reshape(entries, (rank, rank + 1))


@pytest.mark.parametrize(
    "family,matrix,output_size",
    [
        ("attention", attention_matrix, (6, 9)),
        ("attention", attention_matrix, (4, 5, 6)),
        ("similarity", similarity_matrix, (6, 9)),
        ("affine", affine_matrix, (6, 9)),
        ("affine", affine_matrix, (4, 5, 6)),
    ],
)
@pytest.mark.parametrize("align_corners", [False, True])
def test_affine_families_match_torch(
    family, matrix, output_size, align_corners
):
    transform = transforms.get(family)
    rank = len(output_size)
    shape = transform.parameter_shape(rank)
    rng = np.random.default_rng(rank)
    parameters = transform.identity(rank) + rng.normal(0.0, 0.3, (3, *shape))
    parameters = parameters.astype("float32")
    theta = np.stack([matrix(*p.flatten()) for p in parameters])
    expected = torch_affine_grid(
        theta.astype("float32"), output_size, align_corners
    )
    grid = transform.grid(parameters, output_size, align_corners)
    np.testing.assert_allclose(ops.convert_to_numpy(grid), expected, atol=1e-5)


# Keras' JAX backend computes `ops.cos` and `ops.sin` of float64 in float32
# (its dtype rules follow JAX without x64), so the similarity's rotation is
# differentiated with a larger step and tolerance.
@pytest.mark.parametrize(
    "family,output_size,step,rtol",
    [(f, (5, 6), 1e-6, 1e-6) for f in FAMILIES if f != "similarity"]
    + [("similarity", (5, 6), 1e-3, 1e-4)]
    + [(f, (3, 4, 5), 1e-6, 1e-6) for f in ("affine", "attention")]
    + [("projective", (3, 4, 5), 1e-6, 1e-6)],
)
def test_gradients_match_finite_differences(family, output_size, step, rtol):
    transform = transforms.get(family)
    rank = len(output_size)
    shape = transform.parameter_shape(rank)
    rng = np.random.default_rng(3)
    # Small perturbations keep projective denominators near 1.
    parameters = transform.identity(rank) + rng.normal(0.0, 0.1, (2, *shape))
    upstream = rng.normal(size=(2, *output_size, rank))

    def loss(parameters):
        grid = transform.grid(parameters, output_size, align_corners=False)
        return ops.sum(ops.multiply(grid, upstream))

    assert_gradients_match_finite_differences(
        loss, [parameters], rng, step=step, rtol=rtol
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_serialization_round_trip(family):
    transform = transforms.get(family)
    if family == "tps":
        transform = transforms.ThinPlateSpline(grid_size=(3, 5))
    config = keras.saving.serialize_keras_object(transform)
    restored = transforms.get(config)
    assert type(restored) is type(transform)
    assert restored.get_config() == transform.get_config()
    assert keras.saving.serialize_keras_object(restored) == config


@pytest.mark.parametrize(
    "identifier", ["shear", "Affine", None, 3, {"class_name": "Nothing"}]
)
def test_unknown_transforms_are_rejected(identifier):
    with pytest.raises(ValueError, match="`transform`"):
        transforms.get(identifier)


@pytest.mark.parametrize("grid_size", [(1, 4), (4, 1), (4,), (2, 2.5), 4])
def test_thin_plate_spline_needs_a_grid_of_at_least_2x2(grid_size):
    with pytest.raises(ValueError, match="`grid_size`"):
        transforms.ThinPlateSpline(grid_size=grid_size)


@pytest.mark.parametrize(
    "family,parameters_shape",
    [
        ("affine", (2, 6)),
        ("affine", (2, 3, 3)),
        ("attention", (2, 4)),
        ("similarity", (2, 3)),
        ("projective", (2, 9)),
        ("projective", (2, 3, 3)),
        ("tps", (2, 16, 3)),
        ("tps", (2, 15, 2)),
        ("tps", (2, 32)),
    ],
)
def test_wrong_parameter_counts_are_rejected(family, parameters_shape):
    transform = transforms.get(family)
    with pytest.raises(ValueError, match="`parameters`"):
        transform.grid(np.zeros(parameters_shape, "float32"), (4, 4))


@pytest.mark.parametrize("family", ["similarity", "tps"])
def test_families_for_images_only_reject_volumes(family):
    transform = transforms.get(family)
    parameters = np.zeros((1, *transform.parameter_shape(2)), "float32")
    with pytest.raises(ValueError, match="supports images"):
        transform.grid(parameters, (4, 4, 4))
