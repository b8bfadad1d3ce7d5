"""The transform toolkit: map_points, invert, compose, pixel matrices, point
solves and sampled boxes, each against an independent oracle (PyTorch's
`affine_grid`, scikit-image, SciPy, OpenCV, NumPy's linear algebra, or
warping twice)."""

import cv2
import keras
import numpy as np
import pytest
import skimage.transform
import torch
from keras import ops
from scipy.interpolate import RBFInterpolator

import keras_stn
from keras_stn import transforms
from keras_stn.ops import compose_affine
from keras_stn.ops import get_affine_transform
from keras_stn.ops import get_perspective_transform
from keras_stn.ops import invert_affine
from keras_stn.ops import pixel_matrix_to_theta
from keras_stn.ops import sampled_boxes
from keras_stn.ops import sampled_outlines
from keras_stn.ops import theta_to_pixel_matrix
from keras_stn.ops import warp_affine

from helpers import BACKEND
from helpers import assert_gradients_match_finite_differences
from helpers import compile_function
from helpers import float64_enabled
from helpers import normalized_mesh
from helpers import unnormalize

# (family, spatial rank) for every family and rank it supports.
FAMILY_RANKS = [
    ("affine", 2),
    ("affine", 3),
    ("attention", 2),
    ("attention", 3),
    ("similarity", 2),
    ("projective", 2),
    ("projective", 3),
    ("tps", 2),
]
INVERTIBLE = [fr for fr in FAMILY_RANKS if fr[0] != "tps"]


def numpy(x):
    return ops.convert_to_numpy(x)


def random_parameters(family, rank, batch, rng, spread=0.1):
    """Parameters near the family's identity, float32."""
    transform = transforms.get(family)
    shape = transform.parameter_shape(rank)
    identity = transform.identity(rank)
    return (identity + rng.normal(0.0, spread, (batch, *shape))).astype(
        "float32"
    )


def homogeneous(theta):
    """Affine `(batch, n, n + 1)` with its last row, NumPy."""
    batch, rank = theta.shape[:2]
    last = np.zeros((batch, 1, rank + 1))
    last[:, 0, -1] = 1.0
    return np.concatenate([theta, last], axis=1)


def torch_affine_grid(theta, size, align_corners):
    shape = (theta.shape[0], 1, *size)
    return torch.nn.functional.affine_grid(
        torch.tensor(theta, dtype=torch.float64), shape, align_corners
    ).numpy()


def mesh_points(size, batch, align_corners):
    """The output pixels' normalized coordinates as `(batch, N, rank)`."""
    mesh = normalized_mesh(size, align_corners).reshape(1, -1, len(size))
    return np.repeat(mesh, batch, axis=0).astype("float32")


# map_points


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("family,rank", FAMILY_RANKS)
def test_map_points_are_the_points_of_the_family_grid(
    family, rank, align_corners
):
    rng = np.random.default_rng(0)
    transform = transforms.get(family)
    parameters = random_parameters(family, rank, 3, rng)
    size = (5, 7) if rank == 2 else (3, 4, 5)
    points = mesh_points(size, 3, align_corners)
    mapped = numpy(transform.map_points(parameters, points))
    grid = numpy(transform.grid(parameters, size, align_corners))
    assert mapped.shape == points.shape and mapped.dtype == np.float32
    np.testing.assert_allclose(mapped, grid.reshape(points.shape), atol=2e-6)


@pytest.mark.parametrize("rank", [2, 3])
def test_affine_map_points_against_pytorch_affine_grid(rank):
    rng = np.random.default_rng(1)
    theta = random_parameters("affine", rank, 2, rng, spread=0.3)
    size = (6, 5) if rank == 2 else (3, 4, 5)
    points = mesh_points(size, 2, align_corners=True)
    mapped = numpy(transforms.Affine().map_points(theta, points))
    expected = torch_affine_grid(theta, size, align_corners=True)
    np.testing.assert_allclose(
        mapped, expected.reshape(points.shape), atol=1e-6
    )


@pytest.mark.parametrize(
    "family,rank",
    [
        fr
        for fr in FAMILY_RANKS
        if fr[0] in ("affine", "similarity", "projective")
    ],
)
def test_map_points_against_scikit_image(family, rank):
    rng = np.random.default_rng(2)
    transform = transforms.get(family)
    parameters = random_parameters(family, rank, 2, rng, spread=0.2)
    points = rng.uniform(-1.2, 1.2, (2, 9, rank)).astype("float32")
    mapped = numpy(transform.map_points(parameters, points))
    if family == "projective":
        matrices = numpy(transform.to_homography(parameters))
    else:
        matrices = homogeneous(numpy(transform.to_affine(parameters)))
    for example in range(2):
        oracle = skimage.transform.ProjectiveTransform(
            matrix=matrices[example].astype("float64"), dimensionality=rank
        )
        np.testing.assert_allclose(
            mapped[example], oracle(points[example]), atol=2e-6
        )


def test_tps_map_points_against_scipy_thin_plate_spline():
    # SciPy's RBF interpolant with the r^2 log r kernel and an affine
    # part is the same unique spline.
    rng = np.random.default_rng(3)
    transform = transforms.ThinPlateSpline(grid_size=(3, 4))
    targets = random_parameters(transform, 2, 2, rng)
    points = rng.uniform(-1.1, 1.1, (2, 20, 2)).astype("float32")
    mapped = numpy(transform.map_points(targets, points))
    for example in range(2):
        oracle = RBFInterpolator(
            transform.control_points,
            targets[example].astype("float64"),
            kernel="thin_plate_spline",
            degree=1,
        )(points[example].astype("float64"))
        np.testing.assert_allclose(mapped[example], oracle, atol=2e-6)


# invert


@pytest.mark.parametrize("family,rank", INVERTIBLE)
def test_invert_undoes_map_points(family, rank):
    rng = np.random.default_rng(4)
    transform = transforms.get(family)
    parameters = random_parameters(family, rank, 3, rng, spread=0.2)
    points = rng.uniform(-1.0, 1.0, (3, 10, rank)).astype("float32")
    inverse = transform.invert(parameters)
    assert tuple(inverse.shape) == parameters.shape
    there = transform.map_points(parameters, points)
    back = numpy(transform.map_points(inverse, there))
    np.testing.assert_allclose(back, points, atol=1e-5)


@pytest.mark.parametrize("rank", [2, 3])
def test_invert_affine_against_numpy(rank):
    rng = np.random.default_rng(5)
    theta = random_parameters("affine", rank, 4, rng, spread=0.5)
    inverse = numpy(invert_affine(theta))
    expected = np.linalg.inv(homogeneous(theta.astype("float64")))[:, :rank]
    np.testing.assert_allclose(inverse, expected, rtol=1e-5, atol=1e-5)


def test_singular_inputs_give_non_finite_inverses():
    theta = np.zeros((1, 2, 3), "float32")
    assert not np.all(np.isfinite(numpy(invert_affine(theta))))
    scale_zero = np.array([[0.0, 0.1, 0.2]], "float32")
    inverse = numpy(transforms.Attention().invert(scale_zero))
    assert not np.all(np.isfinite(inverse))


def test_thin_plate_spline_has_no_inverse():
    transform = transforms.ThinPlateSpline()
    with pytest.raises(ValueError, match="ThinPlateSpline"):
        transform.invert(transform.identity(2)[None])


# compose


def coordinate_images(size):
    """Channels-last images holding their own pixel coordinates `x, y[, z]`:
    linear, so that bilinear (trilinear) sampling reproduces them exactly,
    and a warped image holds the points that it sampled."""
    axes = np.meshgrid(*[np.arange(n) for n in size], indexing="ij")
    return np.stack(axes[::-1], axis=-1)[None].astype("float32")


@pytest.mark.parametrize("rank", [2, 3])
def test_compose_equals_warping_twice(rank):
    rng = np.random.default_rng(6)
    size = (12, 14) if rank == 2 else (6, 7, 8)
    images = coordinate_images(size)
    # Contractions with small shifts: every point of either warp and of
    # the composition lies between the pixel centres, away from padding.
    first = random_parameters("affine", rank, 1, rng, spread=0.05)
    second = random_parameters("affine", rank, 1, rng, spread=0.05)
    first[:, :, :rank] *= 0.6
    second[:, :, :rank] *= 0.7
    kwargs = {"data_format": "channels_last"}
    middle_size = tuple(n - 2 for n in size)
    twice = warp_affine(
        warp_affine(images, first, middle_size, **kwargs),
        second,
        size,
        **kwargs,
    )
    once = warp_affine(images, compose_affine(first, second), size, **kwargs)
    np.testing.assert_allclose(numpy(twice), numpy(once), atol=1e-4)
    # Composing with the inverse gives back the identity.
    identity = numpy(compose_affine(first, invert_affine(first)))
    np.testing.assert_allclose(identity[0], np.eye(rank, rank + 1), atol=1e-6)


# pixel matrices


def smooth_image(size, rng):
    """A smooth float32 image: a few low-frequency waves, and its largest
    slopes along x and y, in value per pixel."""
    height, width = size
    rows, columns = np.mgrid[:height, :width].astype("float64")
    image = np.zeros(size)
    slope_x = slope_y = 0.0
    for _ in range(3):
        fx, fy = rng.uniform(-0.25, 0.25, 2)
        phase = rng.uniform(0, 2 * np.pi)
        image += np.sin(fx * columns + fy * rows + phase)
        slope_x, slope_y = slope_x + abs(fx), slope_y + abs(fy)
    return image.astype("float32"), slope_x, slope_y


def interior(matrix, input_size, output_size):
    """Output pixels whose sampling point is a pixel or more inside."""
    height, width = output_size
    rows, columns = np.mgrid[:height, :width]
    points = matrix @ np.stack(
        [columns.ravel(), rows.ravel(), np.ones(rows.size)]
    )
    x, y = points[:2] / points[2]
    inside = (
        (x >= 1)
        & (x <= input_size[1] - 2)
        & (y >= 1)
        & (y <= input_size[0] - 2)
    )
    return inside.reshape(output_size)


def opencv_tolerance(slope_x, slope_y):
    if int(cv2.__version__.split(".")[0]) >= 5:
        # OpenCV 5 interpolates float images in floating point: measured
        # 2e-6 on every backend; float32 rounding of values near 3.
        return 1e-5
    # OpenCV 4 rounds each sampling point to 1/32 pixel (INTER_BITS = 5):
    # at most 1/64 off along each axis, plus its fixed-point rounding of
    # the coordinates (AB_BITS = 10, 1/1024). Twice that bound times the
    # image's largest slopes, plus float32 rounding.
    return 2 * (1 / 64 + 1 / 1024) * (slope_x + slope_y) + 1e-4


@pytest.mark.parametrize("align_corners", [False, True])
def test_pixel_matrix_warps_as_opencv_warp_affine(align_corners):
    rng = np.random.default_rng(7)
    input_size, output_size = (40, 48), (30, 36)
    image, slope_x, slope_y = smooth_image(input_size, rng)
    angle = 0.3
    theta = np.array(
        [
            [
                [0.8 * np.cos(angle), -0.7 * np.sin(angle), 0.1],
                [0.8 * np.sin(angle), 0.7 * np.cos(angle), -0.05],
            ]
        ],
        "float32",
    )
    matrix = numpy(
        theta_to_pixel_matrix(theta, input_size, output_size, align_corners)
    )[0]
    assert matrix.shape == (3, 3)
    np.testing.assert_array_equal(matrix[2], [0, 0, 1])
    ours = numpy(
        warp_affine(
            image[None, :, :, None],
            theta,
            output_size,
            align_corners=align_corners,
            data_format="channels_last",
        )
    )[0, :, :, 0]
    theirs = cv2.warpAffine(
        image,
        matrix[:2].astype("float64"),
        output_size[::-1],
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
    )
    mask = interior(matrix.astype("float64"), input_size, output_size)
    assert mask.mean() > 0.5
    error = np.abs(ours - theirs)[mask].max()
    assert error <= opencv_tolerance(slope_x, slope_y)


@pytest.mark.parametrize("align_corners", [False, True])
def test_pixel_matrix_warps_as_opencv_warp_perspective(align_corners):
    rng = np.random.default_rng(8)
    input_size, output_size = (36, 44), (28, 32)
    image, slope_x, slope_y = smooth_image(input_size, rng)
    parameters = np.array(
        [[0.8, 0.1, 0.05, -0.05, 0.75, 0.0, 0.15, -0.1]], "float32"
    )
    layer = keras_stn.SpatialTransformer(
        transform="projective",
        output_size=output_size,
        align_corners=align_corners,
        data_format="channels_last",
    )
    ours = numpy(layer.warp(image[None, :, :, None], parameters))[0, :, :, 0]
    homography = transforms.Projective().to_homography(parameters)
    matrix = numpy(
        theta_to_pixel_matrix(
            homography, input_size, output_size, align_corners
        )
    )[0].astype("float64")
    theirs = cv2.warpPerspective(
        image,
        matrix,
        output_size[::-1],
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
    )
    mask = interior(matrix, input_size, output_size)
    assert mask.mean() > 0.5
    error = np.abs(ours - theirs)[mask].max()
    assert error <= opencv_tolerance(slope_x, slope_y)


@pytest.mark.parametrize("align_corners", [False, True])
def test_volume_pixel_matrix_against_pytorch_affine_grid(align_corners):
    rng = np.random.default_rng(9)
    theta = random_parameters("affine", 3, 2, rng, spread=0.3)
    input_size, output_size = (5, 6, 7), (3, 4, 5)
    matrix = numpy(
        theta_to_pixel_matrix(theta, input_size, output_size, align_corners)
    ).astype("float64")
    assert matrix.shape == (2, 4, 4)
    indices = np.stack(
        list(np.meshgrid(*map(np.arange, output_size), indexing="ij"))[::-1]
        + [np.ones(output_size)],
        axis=-1,
    )
    mapped = np.einsum("bij,...j->b...i", matrix, indices)[..., :3]
    grid = torch_affine_grid(theta, output_size, align_corners)
    expected = unnormalize(grid, input_size, align_corners)
    np.testing.assert_allclose(mapped, expected, atol=2e-5)


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize(
    "kind,shape",
    [
        ("affine", (2, 3)),
        ("affine", (3, 4)),
        ("projective", (3, 3)),
        ("projective", (4, 4)),
    ],
)
def test_pixel_matrix_round_trip(kind, shape, align_corners):
    rng = np.random.default_rng(10)
    rank = shape[1] - 1
    theta = np.eye(*shape) + rng.normal(0, 0.1, (2, *shape))
    projective = kind == "projective"
    if projective:
        theta[:, -1, -1] = 1.0
    input_size, output_size = (9, 7, 8)[:rank], (5, 6, 4)[:rank]
    with float64_enabled():
        matrix = theta_to_pixel_matrix(
            theta, input_size, output_size, align_corners
        )
        back = numpy(
            pixel_matrix_to_theta(
                matrix, input_size, output_size, align_corners, projective
            )
        )
        again = numpy(
            theta_to_pixel_matrix(back, input_size, output_size, align_corners)
        )
    np.testing.assert_allclose(back, theta, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(again, numpy(matrix), rtol=1e-13, atol=1e-13)


def test_pixel_matrix_to_theta_takes_opencv_affine_matrices():
    theta = np.array([[[0.9, 0.1, 0.2], [-0.1, 0.8, 0.05]]], "float32")
    matrix = numpy(theta_to_pixel_matrix(theta, (20, 30), (10, 15)))
    back = pixel_matrix_to_theta(matrix[:, :2], (20, 30), (10, 15))
    np.testing.assert_allclose(numpy(back), theta, atol=1e-6)


# point pairs


def quadrilaterals(rng, batch, scale):
    """Convex quadrilaterals near a square of side `2 * scale`, float64."""
    square = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
    return scale * (square + rng.uniform(-0.3, 0.3, (batch, 4, 2)))


@pytest.mark.parametrize("dtype,scale", [("float64", 100.0), ("float32", 1.0)])
def test_get_perspective_transform_against_opencv_and_scikit_image(
    dtype, scale
):
    rng = np.random.default_rng(11)
    # OpenCV takes float32 points: the same points for every solver.
    source = (quadrilaterals(rng, 3, scale) + scale).astype("float32")
    target = (quadrilaterals(rng, 3, scale) + scale).astype("float32")
    with float64_enabled():
        ours = numpy(
            get_perspective_transform(
                source.astype(dtype), target.astype(dtype)
            )
        )
    assert ours.shape == (3, 3, 3) and ours.dtype == dtype
    # OpenCV 5 solves in lower precision: its homographies map the points
    # within about 1e-6 pixel of their targets, where ours and
    # scikit-image's (float64 SVD) agree to 1e-15.
    exact = 1e-12 if dtype == "float64" else 2e-5
    tolerances = (max(exact, 1e-6), exact)
    for example in range(3):
        opencv = cv2.getPerspectiveTransform(source[example], target[example])
        scikit = skimage.transform.ProjectiveTransform.from_estimate(
            source[example].astype("float64"), target[example].astype("float64")
        ).params
        for oracle, tolerance in zip(
            (opencv, scikit / scikit[2, 2]), tolerances, strict=True
        ):
            scale = np.abs(oracle).max()
            np.testing.assert_allclose(
                ours[example], oracle, rtol=0, atol=tolerance * scale
            )


def test_get_affine_transform_against_opencv():
    rng = np.random.default_rng(12)
    source = rng.uniform(0, 50, (2, 3, 2)).astype("float32")
    target = rng.uniform(0, 50, (2, 3, 2)).astype("float32")
    ours = numpy(get_affine_transform(source, target))
    for example in range(2):
        oracle = cv2.getAffineTransform(source[example], target[example])
        np.testing.assert_allclose(ours[example], oracle, rtol=1e-3, atol=1e-3)
    # Both maps send their source points to their target points.
    mapped = np.einsum(
        "bij,bkj->bki", ours, np.concatenate([source, np.ones((2, 3, 1))], -1)
    )
    np.testing.assert_allclose(mapped, target, atol=1e-3)


def test_the_projective_family_shows_a_quadrilateral():
    # The parameters that make the output show a quadrilateral of the
    # input: the homography from the output's corners to its corners.
    corners = np.array([[[-1.0, -1.0], [1, -1], [1, 1], [-1, 1]]], "float32")
    quad = corners * 0.5 + np.array([[0.1, -0.2], [0, 0.1], [0, 0], [0.1, 0]])
    homography = get_perspective_transform(corners, quad.astype("float32"))
    parameters = ops.reshape(homography, (1, 9))[:, :8]
    mapped = transforms.Projective().map_points(parameters, corners)
    np.testing.assert_allclose(numpy(mapped), quad, atol=1e-5)


# gradients


def test_gradients_match_finite_differences():
    rng = np.random.default_rng(13)
    source = quadrilaterals(rng, 2, 1.0)
    target = quadrilaterals(rng, 2, 1.0)
    weights = rng.normal(size=(2, 3, 3))
    theta = np.eye(2, 3) + rng.normal(0, 0.2, (2, 2, 3))
    other = np.eye(2, 3) + rng.normal(0, 0.2, (2, 2, 3))
    points = rng.uniform(-1, 1, (2, 5, 2))
    projective = np.eye(3).ravel()[:8] + rng.normal(0, 0.1, (2, 8))
    targets = transforms.ThinPlateSpline().identity(2) + rng.normal(
        0, 0.1, (2, 16, 2)
    )

    def weighted(value, shape):
        w = np.resize(weights, shape)
        return ops.sum(value * ops.convert_to_tensor(w, value.dtype))

    checks = [
        (
            lambda s, t: weighted(get_perspective_transform(s, t), (2, 3, 3)),
            [source, target],
        ),
        (
            lambda s, t: weighted(
                get_affine_transform(s[:, :3], t[:, :3]), (2, 2, 3)
            ),
            [source, target],
        ),
        (lambda a: weighted(invert_affine(a), (2, 2, 3)), [theta]),
        (
            lambda a, b: weighted(compose_affine(a, b), (2, 2, 3)),
            [theta, other],
        ),
        (
            lambda p, q: weighted(
                transforms.Projective().map_points(p, q), (2, 5, 2)
            ),
            [projective, points],
        ),
        (
            lambda p, q: weighted(
                transforms.ThinPlateSpline().map_points(p, q), (2, 5, 2)
            ),
            [targets, points],
        ),
        (
            lambda p: weighted(transforms.Projective().invert(p), (2, 8)),
            [projective],
        ),
        (
            lambda a: weighted(
                theta_to_pixel_matrix(a, (10, 12), (8, 9)), (2, 3, 3)
            ),
            [theta],
        ),
    ]
    # Compiled on JAX, whose eager mode dispatches (and on first use
    # compiles) each of the many small float64 ops: 2x faster here.
    prepare = compile_function if BACKEND == "jax" else lambda fn: fn
    for fn, args in checks:
        assert_gradients_match_finite_differences(
            prepare(fn), args, rng, step=1e-6, rtol=1e-5
        )


# sampled boxes and the layer


@pytest.mark.parametrize("align_corners", [False, True])
def test_sampled_boxes_against_pytorch_affine_grid(align_corners):
    rng = np.random.default_rng(14)
    theta = random_parameters("affine", 2, 6, rng, spread=0.3)
    input_size, output_size = (20, 24), (7, 9)
    boxes = sampled_boxes(
        transforms.Affine(),
        theta.reshape(3, 2, 2, 3),
        input_size,
        output_size,
        align_corners,
    )
    assert tuple(boxes.normalized.shape) == (3, 2, 4)
    grid = torch_affine_grid(theta, output_size, align_corners)
    for name, points in (
        ("normalized", grid),
        ("pixels", unnormalize(grid, input_size, align_corners)),
    ):
        expected = np.concatenate(
            [points.min(axis=(1, 2)), points.max(axis=(1, 2))], axis=-1
        )
        np.testing.assert_allclose(
            numpy(getattr(boxes, name)).reshape(6, 4), expected, atol=2e-5
        )


def test_sampled_boxes_of_volumes_and_outlines_of_the_identity():
    identity = np.eye(3, 4, dtype="float32")[None]
    boxes = sampled_boxes(transforms.Affine(), identity, (4, 5, 6))
    np.testing.assert_array_equal(numpy(boxes.pixels), [[0, 0, 0, 5, 4, 3]])
    outline = numpy(
        sampled_outlines(
            transforms.Affine(), identity[:, :2, [0, 1, 3]], (3, 4)
        )
    )
    assert outline.shape == (1, 14, 2)
    np.testing.assert_array_equal(
        outline[0, :4], [[0, 0], [1, 0], [2, 0], [3, 0]]
    )


def test_layer_map_points():
    rng = np.random.default_rng(15)
    images = rng.random((2, 16, 16, 1)).astype("float32")
    layer = keras_stn.SpatialTransformer(
        keras.layers.GlobalAveragePooling2D(),
        output_size=(8, 8),
        num_transformers=2,
        data_format="channels_last",
    )
    layer.build(images.shape)
    theta = rng.normal(0, 0.3, (12,)) + np.tile([1, 0, 0, 0, 1, 0], 2)
    layer.theta_regressor.bias.assign(theta.astype("float32"))
    points = rng.uniform(-1, 1, (2, 5, 2)).astype("float32")
    mapped = numpy(layer.map_points(images, points))
    assert mapped.shape == (2, 2, 5, 2)
    matrices = theta.reshape(2, 2, 3)
    expected = np.einsum(
        "tij,bnj->btni",
        matrices,
        np.concatenate([points, np.ones((2, 5, 1))], -1),
    )
    np.testing.assert_allclose(mapped, expected, atol=1e-5)


# bad input


@pytest.mark.parametrize(
    "call,argument",
    [
        (lambda: invert_affine(np.zeros((1, 3, 3))), "theta"),
        (lambda: invert_affine(np.zeros((1, 2, 3), "int32")), "theta"),
        (
            lambda: compose_affine(np.zeros((1, 2, 3)), np.zeros((1, 3, 4))),
            "first",
        ),
        (
            lambda: theta_to_pixel_matrix(np.zeros((1, 2, 3)), (4,), (4, 4)),
            "input_size",
        ),
        (
            lambda: pixel_matrix_to_theta(
                np.zeros((1, 2, 3)), (4, 4), (4, 4), projective=True
            ),
            "matrix",
        ),
        (
            lambda: get_perspective_transform(
                np.zeros((1, 3, 2)), np.zeros((1, 3, 2))
            ),
            "source",
        ),
        (
            lambda: get_affine_transform(
                np.zeros((1, 3, 2)), np.zeros((2, 3, 2))
            ),
            "source",
        ),
        (
            lambda: transforms.Affine().map_points(
                np.zeros((1, 2, 3)), np.zeros((1, 5, 4))
            ),
            "points",
        ),
        (
            lambda: transforms.Affine().map_points(
                np.zeros((1, 2, 3)), np.zeros((1, 5, 3))
            ),
            "parameters",
        ),
        (
            lambda: sampled_boxes("affine", np.zeros((1, 2, 3)), (4, 4)),
            "transform",
        ),
        (
            lambda: sampled_outlines(
                transforms.Affine(), np.zeros((1, 3, 4)), (4, 4, 4)
            ),
            "input_size",
        ),
    ],
)
def test_bad_input(call, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        call()
