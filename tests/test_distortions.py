"""The distorted MNIST sets, `examples/distortions.py`, against SciPy,
scikit-image and geometry computed here from the returned parameters."""

import functools

import numpy as np
import pytest
from scipy import ndimage
from skimage.transform import ProjectiveTransform

import distortions

COUNT = 200
DIGIT_BOX = (slice(4, 24), slice(8, 20))
# The 4x4 thin-plate-spline control points of "elastic", `(row, col)`.
CONTROL_POINTS = np.stack(
    np.meshgrid(np.linspace(0, 27, 4), np.linspace(0, 27, 4), indexing="ij"),
    axis=-1,
).reshape(-1, 2)
INTERIOR_CONTROLS = (5, 6, 9, 10)
# The paper's clutter: 6 random 8x8 crops of other digits.
PATCHES, PATCH_SIZE = 6, 8


def fake_digits(count, seed=0, box=DIGIT_BOX):
    """uint8 images `(count, 28, 28)`: random strokes in `box`."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, 28, 28), "uint8")
    shape = (box[0].stop - box[0].start, box[1].stop - box[1].start)
    images[:, box[0], box[1]] = rng.integers(0, 256, (count, *shape))
    images[images < 160] = 0
    return images


def smooth_digits(count, seed=0):
    """`fake_digits` blurred (sigma 1 px): resampling keeps their moments."""
    blurred = ndimage.gaussian_filter(
        fake_digits(count, seed).astype("float64"), (0, 1, 1)
    )
    peaks = blurred.max(axis=(1, 2), keepdims=True)
    return np.round(255 * blurred / peaks).astype("uint8")


def gaussian_blobs(centres, sigma):
    """uint8 images of Gaussian blobs, one per `(row, col)` in `centres`."""
    rows, cols = np.indices((28, 28))
    centres = np.asarray(centres, "float64").reshape(-1, 2)
    squared = (rows - centres[:, 0, None, None]) ** 2 + (
        cols - centres[:, 1, None, None]
    ) ** 2
    return np.round(255 * np.exp(-squared / (2 * sigma**2))).astype("uint8")


@functools.cache
def distorted(distortion, seed=0):
    """`distort(fake_digits(COUNT), distortion, seed)`, computed once."""
    return distortions.distort(fake_digits(COUNT), distortion, seed)


def pasted(images, size):
    """Digits `(n, 28, 28)` in [0, 1] pasted, undistorted, at the centre of
    `size`x`size` canvases."""
    pad = (size - 28) // 2
    return np.pad(images / 255.0, ((0, 0), (pad, pad), (pad, pad)))


def centroids(images):
    """The centres of mass `(n, 2)`, `(row, col)`, of `(n, h, w)` images."""
    rows, cols = np.indices(images.shape[1:])
    mass = images.sum(axis=(1, 2))
    row = (images * rows).sum(axis=(1, 2)) / mass
    col = (images * cols).sum(axis=(1, 2)) / mass
    return np.stack([row, col], axis=1)


def orientations(images):
    """The principal axes' angles (degrees) of `(n, h, w)` images.

    From the second central moments: the angle from the row axis (pointing
    down) towards the column axis, in (-90, 90].
    """
    rows, cols = np.indices(images.shape[1:])
    centres = centroids(images)
    d_row = rows - centres[:, 0, None, None]
    d_col = cols - centres[:, 1, None, None]
    mu_rr = (images * d_row**2).sum(axis=(1, 2))
    mu_cc = (images * d_col**2).sum(axis=(1, 2))
    mu_rc = (images * d_row * d_col).sum(axis=(1, 2))
    return np.degrees(0.5 * np.arctan2(2 * mu_rc, mu_rr - mu_cc))


def rotation_scale_matrices(degrees, scales):
    """`(n, 2, 2)` matrices acting on `(row, col)` offsets: a rotation
    counter-clockwise as displayed (rows point down), then a scaling.

    On the screen, `(row, col) = (-1, 0)` (up) turned by 90 degrees
    counter-clockwise is `(0, -1)` (left).
    """
    radians = np.deg2rad(degrees)
    cos, sin = np.cos(radians), np.sin(radians)
    matrices = np.empty((len(radians), 2, 2))
    matrices[:, 0, 0], matrices[:, 0, 1] = cos, -sin
    matrices[:, 1, 0], matrices[:, 1, 1] = sin, cos
    return matrices * np.reshape(scales, (-1, 1, 1))


def moved_corners(parameters):
    """The projective targets `(n, 4, 2)` of the digit's corners.

    Top-left, top-right, bottom-left, bottom-right, as `(row, col)`: each
    corner scaled about the centre 13.5, then moved by its shift.
    """
    corners = np.array([[0, 0], [0, 1], [1, 0], [1, 1]]) * 27.0
    scales = parameters["scale"][:, None, None]
    return scales * (corners - 13.5) + 13.5 + parameters["corner_shifts"]


def quadrilaterals(corners):
    """Corners `(n, 4, 2)` reordered around the outline: TL, TR, BR, BL."""
    return corners[:, [0, 1, 3, 2]]


def is_convex(polygons):
    """Whether each polygon `(n, k, 2)` is convex (and not self-crossing)."""
    edges = np.roll(polygons, -1, axis=1) - polygons
    following = np.roll(edges, -1, axis=1)
    cross = (
        edges[..., 0] * following[..., 1] - edges[..., 1] * following[..., 0]
    )
    return np.all(cross > 0, axis=1) | np.all(cross < 0, axis=1)


def shoelace_area(polygon):
    """The area of a simple polygon `(k, 2)` (the shoelace formula)."""
    x, y = polygon[:, 0], polygon[:, 1]
    return 0.5 * abs(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def clip_to_square(polygon, low, high):
    """A convex polygon `(k, 2)` clipped to the square `[low, high]^2`.

    Sutherland-Hodgman: clips against each of the four sides in turn.
    """
    for axis in (0, 1):
        for bound, sign in ((low, 1.0), (high, -1.0)):
            clipped = []
            for start, end in zip(
                polygon, np.roll(polygon, -1, axis=0), strict=True
            ):
                start_in = sign * (start[axis] - bound) >= 0
                end_in = sign * (end[axis] - bound) >= 0
                if start_in:
                    clipped.append(start)
                if start_in != end_in:
                    t = (bound - start[axis]) / (end[axis] - start[axis])
                    clipped.append(start + t * (end - start))
            polygon = np.array(clipped).reshape(-1, 2)
    return polygon


def edge_distances(polygon, points):
    """Signed distances `(p, k)` of `points` to a convex polygon's edges,
    positive inside."""
    edges = np.roll(polygon, -1, axis=0) - polygon
    offsets = points[:, None, :] - polygon[None]
    cross = edges[:, 0] * offsets[..., 1] - edges[:, 1] * offsets[..., 0]
    orientation = np.sign(
        np.sum(polygon[:, 0] * np.roll(polygon[:, 1], -1))
        - np.sum(np.roll(polygon[:, 0], -1) * polygon[:, 1])
    )
    return orientation * cross / np.linalg.norm(edges, axis=1)


def thin_plate_spline(controls, values, points):
    """The thin-plate spline through `values` at `controls`, at `points`.

    Solves the classical system `[[K, P], [P^T, 0]]` with the kernel
    `r^2 log r` and an affine part.
    """

    def kernel(a, b):
        r = np.linalg.norm(a[:, None] - b[None], axis=-1)
        return np.where(r > 0, r**2 * np.log(np.where(r > 0, r, 1.0)), 0.0)

    k = len(controls)
    affine = np.concatenate([np.ones((k, 1)), controls], axis=1)
    system = np.block(
        [[kernel(controls, controls), affine], [affine.T, np.zeros((3, 3))]]
    )
    coefficients = np.linalg.solve(
        system, np.concatenate([values, np.zeros((3, values.shape[1]))])
    )
    points_affine = np.concatenate([np.ones((len(points), 1)), points], 1)
    return (
        kernel(points, controls) @ coefficients[:k]
        + points_affine @ coefficients[k:]
    )


# All distortions.


@pytest.mark.parametrize("distortion", distortions.DISTORTIONS)
def test_shapes_dtype_and_range(distortion):
    canvases, parameters = distorted(distortion)
    size = distortions.CANVAS_SIZES[distortion]
    assert canvases.shape == (COUNT, size, size, 1)
    assert canvases.dtype == np.float32
    assert canvases.min() >= 0.0 and canvases.max() <= 1.0
    assert canvases.max() > 0.9
    for values in parameters.values():
        assert len(values) == COUNT


@pytest.mark.parametrize("distortion", distortions.DISTORTIONS)
def test_the_seed_decides_everything(distortion):
    images = fake_digits(32)
    first, first_parameters = distortions.distort(images, distortion, 5)
    again, again_parameters = distortions.distort(images, distortion, 5)
    other, other_parameters = distortions.distort(images, distortion, 6)
    np.testing.assert_array_equal(first, again)
    assert first_parameters.keys() == again_parameters.keys()
    for name, values in first_parameters.items():
        np.testing.assert_array_equal(values, again_parameters[name])
        assert not np.allclose(values, other_parameters[name])
    assert not np.allclose(first, other)


@pytest.mark.parametrize("distortion", distortions.DISTORTIONS)
def test_canvases_are_not_the_digit_pasted_in_the_centre(distortion):
    canvases, _ = distorted(distortion)
    plain = pasted(fake_digits(COUNT), distortions.CANVAS_SIZES[distortion])
    differences = np.abs(canvases[..., 0] - plain).max(axis=(1, 2))
    assert np.mean(differences > 0.1) > 0.95


def test_unknown_distortion_is_rejected():
    with pytest.raises(ValueError, match="`distortion`.*'shear'"):
        distortions.distort(fake_digits(2), "shear", 0)


@pytest.mark.parametrize("shape", [(2, 28, 27), (28, 28), (2, 28, 28, 1)])
def test_wrong_image_shape_is_rejected(shape):
    with pytest.raises(ValueError, match="`images`"):
        distortions.distort(np.zeros(shape, "uint8"), "rotated", 0)


# Rotated.


def test_rotated_angles_are_uniform_in_90_degrees_either_way():
    angles = distorted("rotated")[1]["angle"]
    assert np.all(np.abs(angles) <= 90.0)
    assert angles.min() < -80 and angles.max() > 80
    assert angles.std() == pytest.approx(180 / np.sqrt(12), rel=0.1)
    assert abs(angles.mean()) < 10


def test_rotated_turns_a_bar_counter_clockwise_by_its_angle():
    bars = np.zeros((COUNT, 28, 28), "uint8")
    bars[:, 4:24, 13:15] = 255  # vertical, 20x2, centred on 13.5
    canvases, parameters = distortions.distort(bars, "rotated", 0)
    assert np.all(np.abs(orientations(bars / 255.0)) < 1e-6)
    # A vertical bar turned counter-clockwise by `a` points along
    # (row, col) = (cos a, sin a): its principal axis is at `a` (mod 180).
    error = (orientations(canvases[..., 0]) - parameters["angle"] + 90) % 180
    assert np.all(np.abs(error - 90) < 2.0)
    # The bar stays on the canvas, and turns about the canvas' centre.
    np.testing.assert_allclose(centroids(canvases[..., 0]), 13.5, atol=0.2)


def test_rotated_matches_scipy_rotate():
    canvases, parameters = distorted("rotated")
    images = fake_digits(COUNT) / 255.0
    expected = [
        ndimage.rotate(image, angle, reshape=False, order=1)
        for image, angle in zip(images, parameters["angle"], strict=True)
    ]
    np.testing.assert_allclose(canvases[..., 0], expected, atol=1e-5)


def test_rotated_keeps_the_ink_that_stays_on_the_canvas():
    # Wide digits, whose corners leave the canvas when turned.
    images = fake_digits(COUNT, box=(slice(1, 27), slice(1, 27)))
    canvases, parameters = distortions.distort(images, "rotated", 0)
    rows, cols = np.indices((28, 28))
    offsets = np.stack([rows.ravel(), cols.ravel()], axis=1) - 13.5
    matrices = rotation_scale_matrices(parameters["angle"], 1.0)
    landed = np.einsum("nij,pj->npi", matrices, offsets) + 13.5
    stays = np.all((landed > -0.5) & (landed < 27.5), axis=-1)
    ink = images.reshape(COUNT, -1) / 255.0
    kept, lost = (ink * stays).sum(axis=1), (ink * ~stays).sum(axis=1)
    assert np.mean(lost > 0.05 * ink.sum(axis=1)) > 0.3
    np.testing.assert_allclose(
        canvases.sum(axis=(1, 2, 3)), kept, rtol=0.04, atol=1.0
    )


# Rotated, translated and scaled.


def test_rts_parameters_span_their_ranges():
    parameters = distorted("rts")[1]
    angles, scales = parameters["angle"], parameters["scale"]
    assert np.all(np.abs(angles) <= 45.0)
    assert angles.min() < -40 and angles.max() > 40
    assert np.all((scales >= 0.7) & (scales <= 1.2))
    assert scales.min() < 0.75 and scales.max() > 1.15
    assert scales.std() == pytest.approx(0.5 / np.sqrt(12), rel=0.1)
    assert parameters["shift"].shape == (COUNT, 2)
    assert np.all(parameters["shift"].std(axis=0) > 3.0)


def test_rts_scales_the_ink_area_by_the_scale_squared():
    images = smooth_digits(COUNT)
    canvases, parameters = distortions.distort(images, "rts", 0)
    ratios = canvases.sum(axis=(1, 2, 3)) / (images / 255.0).sum(axis=(1, 2))
    np.testing.assert_allclose(ratios, parameters["scale"] ** 2, rtol=0.02)


def test_rts_moves_the_centroid_by_the_drawn_transform():
    images = smooth_digits(COUNT)
    canvases, parameters = distortions.distort(images, "rts", 0)
    matrices = rotation_scale_matrices(parameters["angle"], parameters["scale"])
    offsets = centroids(images / 255.0) - 13.5
    expected = (
        20.5 + parameters["shift"] + np.einsum("nij,nj->ni", matrices, offsets)
    )
    np.testing.assert_allclose(centroids(canvases[..., 0]), expected, atol=0.3)


def test_rts_matches_scipy_affine_transform():
    canvases, parameters = distorted("rts")
    images = fake_digits(COUNT) / 255.0
    matrices = rotation_scale_matrices(parameters["angle"], parameters["scale"])
    for index in range(COUNT):
        # Canvas point p shows the digit at inverse @ (p - 20.5 - shift) + 13.5.
        inverse = np.linalg.inv(matrices[index])
        offset = 13.5 - inverse @ (20.5 + parameters["shift"][index])
        expected = ndimage.affine_transform(
            images[index], inverse, offset, output_shape=(42, 42), order=1
        )
        np.testing.assert_allclose(canvases[index, ..., 0], expected, atol=1e-5)


def test_rts_keeps_the_digit_whole_anywhere_on_the_canvas():
    canvases = distorted("rts")[0][..., 0]
    border = np.ones((42, 42), bool)
    border[1:-1, 1:-1] = False
    assert np.all(canvases[:, border] == 0.0)
    # Positions reach every side of the canvas.
    lit_rows, lit_cols = canvases.any(axis=2), canvases.any(axis=1)
    first_row, first_col = lit_rows.argmax(1), lit_cols.argmax(1)
    last_row = 41 - lit_rows[:, ::-1].argmax(1)
    last_col = 41 - lit_cols[:, ::-1].argmax(1)
    assert first_row.min() <= 3 and first_col.min() <= 3
    assert last_row.max() >= 38 and last_col.max() >= 38


# Projective.


def test_projective_parameters_have_the_paper_statistics():
    parameters = distorted("projective")[1]
    scales, shifts = parameters["scale"], parameters["corner_shifts"]
    assert shifts.shape == (COUNT, 4, 2)
    assert np.all((scales >= 0.75) & (scales <= 1.0))
    assert scales.min() < 0.76 and scales.max() > 0.99
    assert shifts.std() == pytest.approx(5.0, rel=0.1)
    assert abs(shifts.mean()) < 0.5
    # Independent corners and coordinates: no correlation between them.
    correlations = np.corrcoef(shifts.reshape(COUNT, 8), rowvar=False)
    assert np.all(np.abs(correlations - np.eye(8)) < 0.25)


def test_projective_corner_shifts_follow_corner_std():
    digits = fake_digits(COUNT)
    default = distortions.distort(digits, "projective", seed=0)
    milder = distortions.distort(digits, "projective", seed=0, corner_std=2.0)
    np.testing.assert_array_equal(default[0], distorted("projective")[0])
    shifts = milder[1]["corner_shifts"]
    assert shifts.std() == pytest.approx(2.0, rel=0.1)
    assert is_convex(quadrilaterals(moved_corners(milder[1]))).all()
    # The same draws of the scales; the canvases differ.
    np.testing.assert_array_equal(milder[1]["scale"], default[1]["scale"])
    assert not np.array_equal(milder[0], default[0])
    # Other distortions do not read it.
    np.testing.assert_array_equal(
        distortions.distort(digits, "rts", seed=0, corner_std=2.0)[0],
        distorted("rts")[0],
    )


def test_projective_maps_the_digit_square_onto_the_moved_corners():
    # A digit all ink: the canvas shows the quadrilateral of moved corners.
    images = np.full((COUNT, 28, 28), 255, "uint8")
    canvases, parameters = distortions.distort(images, "projective", 0)
    quads = quadrilaterals(moved_corners(parameters))
    # Corners that would fold the square are drawn again.
    convex = is_convex(quads)
    assert convex.all()
    rows, cols = np.indices((28, 28))
    points = np.stack([rows.ravel(), cols.ravel()], axis=1).astype("float64")
    area_errors = []
    for canvas, quad in zip(canvases[convex], quads[convex], strict=True):
        distances = edge_distances(quad, points)
        inside = np.all(distances > 0, axis=1)
        clear = np.all(np.abs(distances) > 1e-3, axis=1)
        lit = canvas.ravel() >= 1 - 1e-5
        np.testing.assert_array_equal(lit[clear], inside[clear])
        area = shoelace_area(clip_to_square(quad, -0.5, 27.5))
        area_errors.append(canvas.sum() / area - 1)
    area_errors = np.abs(area_errors)
    assert area_errors.max() < 0.05 and area_errors.mean() < 0.01


def test_projective_matches_a_homography_estimated_by_skimage():
    canvases, parameters = distorted("projective")
    images = fake_digits(COUNT) / 255.0
    corners = np.array([[0, 0], [0, 1], [1, 0], [1, 1]]) * 27.0
    rows, cols = np.indices((28, 28))
    points = np.stack([rows.ravel(), cols.ravel()], axis=1).astype("float64")
    targets = moved_corners(parameters)
    for index in range(COUNT):
        # The canvas shows at each point the digit point that maps onto it.
        to_digit = ProjectiveTransform.from_estimate(targets[index], corners)
        sources = to_digit(points)
        expected = ndimage.map_coordinates(images[index], sources.T, order=1)
        np.testing.assert_allclose(canvases[index].ravel(), expected, atol=1e-4)


# Elastic.


def test_elastic_control_shifts_are_uniform_within_3_pixels():
    shifts = distorted("elastic")[1]["control_shifts"]
    assert shifts.shape == (COUNT, 16, 2)
    assert np.all(np.abs(shifts) <= 3.0)
    assert shifts.min() < -2.9 and shifts.max() > 2.9
    assert shifts.std() == pytest.approx(3 / np.sqrt(3), rel=0.1)
    assert abs(shifts.mean()) < 0.2


def test_elastic_warp_is_the_thin_plate_spline_of_the_control_shifts():
    # Linear ramps (exact under bilinear sampling) tell which digit point
    # each canvas pixel shows: it is the pixel minus the spline's shift.
    rows, cols = np.indices((28, 28))
    ramps = np.stack([9 * rows, 9 * cols]).astype("uint8")
    count = 50
    shown = []
    for ramp in ramps:
        canvases, parameters = distortions.distort(
            np.repeat(ramp[None], count, axis=0), "elastic", 3
        )
        shown.append(canvases[..., 0] * 255 / 9)
    pixels = np.stack([rows, cols], axis=-1).astype("float64")
    shifts = pixels - np.stack(shown, axis=-1)
    for index in range(count):
        expected = thin_plate_spline(
            CONTROL_POINTS,
            parameters["control_shifts"][index],
            pixels.reshape(-1, 2),
        ).reshape(28, 28, 2)
        # Only where the digit point is inside the ramp, not on its edge.
        sources = pixels - expected
        inside = np.all((sources > 0.01) & (sources < 26.99), axis=-1)
        assert inside.mean() > 0.6
        np.testing.assert_allclose(
            shifts[index][inside], expected[inside], atol=1e-3
        )
        # At the interior control points, the shift is the drawn one.
        for control in INTERIOR_CONTROLS:
            row, col = CONTROL_POINTS[control].astype(int)
            np.testing.assert_allclose(
                shifts[index, row, col],
                parameters["control_shifts"][index, control],
                atol=1e-3,
            )


def test_elastic_moves_a_blob_on_a_control_point_with_it():
    for control in INTERIOR_CONTROLS:
        centre = CONTROL_POINTS[control]
        blobs = np.repeat(gaussian_blobs(centre, sigma=1.2), COUNT, axis=0)
        canvases, parameters = distortions.distort(blobs, "elastic", 0)
        moves = centroids(canvases[..., 0]) - centroids(blobs / 255.0)
        shifts = parameters["control_shifts"][:, control]
        # The warp also stretches and squeezes around the point, so the
        # blob's centroid follows the point's shift only approximately.
        errors = np.linalg.norm(moves - shifts, axis=1)
        assert errors.mean() < 1.0
        assert errors.mean() < 0.4 * np.linalg.norm(shifts, axis=1).mean()
        for axis in (0, 1):
            assert np.corrcoef(moves[:, axis], shifts[:, axis])[0, 1] > 0.9


def test_elastic_warp_is_smooth_and_roughly_keeps_the_ink():
    canvases = distorted("elastic")[0][..., 0]
    images = fake_digits(COUNT) / 255.0
    ratios = canvases.sum(axis=(1, 2)) / images.sum(axis=(1, 2))
    assert np.all((ratios > 0.5) & (ratios < 2.0))
    assert ratios.mean() == pytest.approx(1.0, abs=0.05)
    # The ink moves by a few pixels at most: the digit's columns 8 to 19
    # stay within columns 3 to 24 (3 px, and a little spline overshoot).
    lit = canvases > 0
    assert not np.any(lit[:, :, :3]) and not np.any(lit[:, :, 25:])
    assert lit[:, :, :8].any() and lit[:, :, 20:].any()


# Cluttered.


def test_cluttered_places_the_digit_at_its_shift():
    canvases, parameters = distorted("cluttered")
    digits = pasted(fake_digits(COUNT), 60)
    placed = np.stack(
        [
            ndimage.shift(digit, shift, order=1)
            for digit, shift in zip(digits, parameters["shift"], strict=True)
        ]
    )
    # Clutter only adds ink, by maximum: the digit is all there.
    assert np.all(canvases[..., 0] >= placed - 1e-5)
    # Whole: shifting lost none of its ink.
    np.testing.assert_allclose(
        placed.sum(axis=(1, 2)), digits.sum(axis=(1, 2)), rtol=1e-6
    )
    assert np.all(parameters["shift"].std(axis=0) > 5.0)


def test_cluttered_adds_patches_of_other_digits():
    images = fake_digits(COUNT)
    canvases, parameters = distorted("cluttered")
    placed = np.stack(
        [
            ndimage.shift(digit, shift, order=1)
            for digit, shift in zip(
                pasted(images, 60), parameters["shift"], strict=True
            )
        ]
    )
    clutter = canvases[..., 0] > placed + 1e-5
    assert np.mean(np.any(clutter & (placed == 0), axis=(1, 2))) > 0.95
    patch = PATCH_SIZE
    assert np.all(clutter.sum(axis=(1, 2)) <= PATCHES * patch**2)
    # Clutter shows digit pixels as they are: multiples of 1/255.
    values = canvases[..., 0][clutter] * 255
    np.testing.assert_allclose(values, np.round(values), atol=1e-3)
    # In pieces of at most 8x8, but where two patches touch.
    sizes = []
    for mask in clutter:
        labels, _ = ndimage.label(mask, structure=np.ones((3, 3)))
        for rows, cols in ndimage.find_objects(labels):
            sizes.append(max(rows.stop - rows.start, cols.stop - cols.start))
    assert np.mean(np.array(sizes) <= patch) > 0.9


def test_cluttered_patches_are_whole_8x8_squares():
    # Solid digits: every patch is a whole 8x8 square of ink, so every
    # clutter pixel lies in an 8x8 square of ink...
    images = np.zeros((COUNT, 28, 28), "uint8")
    images[:, 4:24, 4:24] = 255
    canvases, parameters = distortions.distort(images, "cluttered", 0)
    placed = np.stack(
        [
            ndimage.shift(digit, shift, order=1)
            for digit, shift in zip(
                pasted(images, 60), parameters["shift"], strict=True
            )
        ]
    )
    canvases = canvases[..., 0]
    clutter = canvases > placed + 1e-5
    lit = canvases >= 1 - 1e-6
    in_squares = ndimage.binary_opening(lit, np.ones((1, 8, 8)))
    assert np.all(in_squares[clutter])
    # ... and no larger: 9x9 squares of ink only where patches overlap
    # each other or the digit.
    in_larger = ndimage.binary_opening(lit, np.ones((1, 9, 9)))
    assert np.mean(in_larger[clutter]) < 0.05
    counts = clutter.sum(axis=(1, 2))
    assert np.all(counts <= PATCHES * PATCH_SIZE**2)
    assert np.mean(counts >= 2 * PATCH_SIZE**2) > 0.9
