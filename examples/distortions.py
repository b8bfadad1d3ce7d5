"""The distorted MNIST data sets of the Spatial Transformer paper.

Jaderberg et al. (2015, section 4.1 and appendix A) distort MNIST digits in
five ways; each function here draws the distortions from a seed, applies
them with SciPy (so the data do not depend on the library under test) and
returns the parameters it drew, for statistics and tests:

- `"rotated"` (R), 28x28: rotation by U(-90, 90) degrees about the centre.
- `"rts"` (RTS), 42x42: rotation by U(-45, 45) degrees, scaling by
  U(0.7, 1.2), and a random position.
- `"projective"` (P), 28x28: scaling by U(0.75, 1), then each corner moved
  by N(0, 5 px) in x and y (drawn again where the corners would fold the
  square).
- `"elastic"` (E), 28x28: a thin-plate spline moving each point of a 4x4
  grid over the digit by U(-3, 3) px in x and y.
- `"cluttered"` (TC), 60x60: a random position, plus 6 random 8x8 crops of
  other digits.

Rotations are counter-clockwise as seen on the picture, in degrees. Digits
keep their whole ink on the canvas in `"rts"` and `"cluttered"`, whose
positions are drawn uniformly among those that keep it whole.
"""

import functools

import numpy as np
from scipy import interpolate
from scipy import ndimage

from arguments import check_choice
from mnist_data import DIGIT
from mnist_data import check_digits

CANVAS_SIZES = {
    "rotated": 28,
    "rts": 42,
    "projective": 28,
    "elastic": 28,
    "cluttered": 60,
}
DISTORTIONS = tuple(CANVAS_SIZES)
ROTATED_MAX_ANGLE = 90.0
RTS_MAX_ANGLE = 45.0
RTS_SCALES = (0.7, 1.2)
PROJECTIVE_SCALES = (0.75, 1.0)
PROJECTIVE_CORNER_STD = 5.0
ELASTIC_GRID = 4
ELASTIC_MAX_SHIFT = 3.0
CLUTTER_PATCHES = 6
CLUTTER_SIZE = 8
_CENTRE = (DIGIT - 1) / 2
# Images are resampled in chunks of this many, to bound the memory that the
# coordinate arrays take.
_CHUNK = 1024


def distort(
    images: np.ndarray,
    distortion: str,
    seed: int,
    corner_std: float = PROJECTIVE_CORNER_STD,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Distort MNIST digits as one of the paper's data sets.

    Args:
        images: uint8 digits of shape `(n, 28, 28)`.
        distortion: one of `DISTORTIONS` (see the module's table).
        seed: seed of the random distortions; the result depends only on
            `images`, `distortion`, `seed` and `corner_std`.
        corner_std: `"projective"` only: the standard deviation, in pixels,
            of each corner's shift (`PROJECTIVE_CORNER_STD`, our reading of
            the paper, by default).

    Returns:
        `(canvases, parameters)`: float32 images of shape `(n, size, size,
        1)` with values in [0, 1], `size` being `CANVAS_SIZES[distortion]`,
        and a dict of the drawn parameters, one array per parameter with
        one row per image: `"angle"` (degrees), `"scale"`, `"shift"` (the
        digit centre's `(row, col)` offset from the canvas centre, pixels),
        `"corner_shifts"` `(n, 4, 2)`, `"control_shifts"` `(n, 16, 2)`,
        as the distortion has them.

    Example:

    >>> digits = np.zeros((2, 28, 28), "uint8")
    >>> digits[:, 8:20, 12:16] = 255
    >>> canvases, parameters = distort(digits, "rts", seed=0)
    >>> canvases.shape, sorted(parameters)
    ((2, 42, 42, 1), ['angle', 'scale', 'shift'])
    """
    check_choice(distortion, "distortion", DISTORTIONS)
    images = check_digits(images)
    rng = np.random.default_rng(seed)
    draw = {
        "rotated": _draw_rotated,
        "rts": _draw_rts,
        "projective": functools.partial(_draw_projective, std=corner_std),
        "elastic": _draw_elastic,
        "cluttered": _draw_cluttered,
    }[distortion]
    source_points, parameters = draw(images, rng)
    size = CANVAS_SIZES[distortion]
    canvases = _resample(images.astype("float32") / 255.0, source_points, size)
    if distortion == "cluttered":
        add_clutter(canvases, images, rng)
    return np.clip(canvases, 0.0, 1.0)[..., None], parameters


def canvas_points(size: int) -> np.ndarray:
    """The `(row, col)` pixel coordinates of a `size`x`size` canvas.

    Args:
        size: the canvas' side, in pixels.

    Returns:
        float64 array of shape `(size * size, 2)`, in row-major order.
    """
    rows, cols = np.indices((size, size), dtype="float64")
    return np.stack([rows.ravel(), cols.ravel()], axis=1)


def _resample(pixels, source_points, size):
    """Sample each digit at its canvas pixels' source points (bilinear).

    `source_points(start, stop)` returns, for the digits `start:stop`, the
    digit coordinates `(k, size * size, 2)` that each canvas pixel shows.
    """
    canvases = np.empty((len(pixels), size, size), "float32")
    for start in range(0, len(pixels), _CHUNK):
        stop = min(start + _CHUNK, len(pixels))
        points = source_points(start, stop)
        for offset, index in enumerate(range(start, stop)):
            ndimage.map_coordinates(
                pixels[index],
                points[offset].T,
                output=canvases[index].reshape(-1),
                order=1,
                cval=0.0,
            )
    return canvases


def _rotation_matrices(degrees, scales):
    """`(n, 2, 2)` matrices that rotate `(row, col)` points on the picture.

    Counter-clockwise as seen on the picture (rows point down), then scaled.
    """
    angles = np.deg2rad(degrees)
    cos, sin = np.cos(angles) * scales, np.sin(angles) * scales
    return np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], 1)


def _affine_source_points(forward, shifts, size):
    """Source points of digits moved by `forward` about their centre.

    A digit point `p` lands on the canvas at `forward @ (p - c) + c' +
    shift`, `c` and `c'` being the digit's and the canvas' centres.
    """
    inverse = np.linalg.inv(forward)
    canvas_centre = (size - 1) / 2

    def source_points(start, stop):
        points = canvas_points(size) - canvas_centre - shifts[start:stop, None]
        return np.einsum("nij,npj->npi", inverse[start:stop], points) + _CENTRE

    return source_points


def _ink_corners(images):
    """The corners `(n, 4, 2)` of each digit's ink box, centred on the digit.

    Widened by the one pixel over which bilinear sampling fades ink out.
    """
    rows, cols = images.any(axis=2), images.any(axis=1)
    top, left = rows.argmax(1) - 1, cols.argmax(1) - 1
    bottom = DIGIT - rows[:, ::-1].argmax(1)
    right = DIGIT - cols[:, ::-1].argmax(1)
    corners = [(top, left), (top, right), (bottom, left), (bottom, right)]
    return np.stack([np.stack(c, 1) for c in corners], 1) - _CENTRE


def _random_shifts(rng, forward, images, size):
    """Shifts, uniform among those that keep each moved digit on the canvas."""
    moved = np.einsum("nij,nkj->nki", forward, _ink_corners(images))
    half = (size - 1) / 2
    low, high = -half - moved.min(1), half - moved.max(1)
    return low + rng.uniform(size=(len(images), 2)) * (high - low)


def _draw_rotated(images, rng):
    angles = rng.uniform(-ROTATED_MAX_ANGLE, ROTATED_MAX_ANGLE, len(images))
    forward = _rotation_matrices(angles, 1.0)
    shifts = np.zeros((len(images), 2))
    parameters = {"angle": angles}
    return _affine_source_points(forward, shifts, DIGIT), parameters


def _draw_rts(images, rng):
    angles = rng.uniform(-RTS_MAX_ANGLE, RTS_MAX_ANGLE, len(images))
    scales = rng.uniform(*RTS_SCALES, len(images))
    forward = _rotation_matrices(angles, scales)
    size = CANVAS_SIZES["rts"]
    shifts = _random_shifts(rng, forward, images, size)
    parameters = {"angle": angles, "scale": scales, "shift": shifts}
    return _affine_source_points(forward, shifts, size), parameters


def _draw_projective(images, rng, std):
    n = len(images)
    scales = rng.uniform(*PROJECTIVE_SCALES, n)
    corners = np.array([[0, 0], [0, 1], [1, 0], [1, 1]]) * (DIGIT - 1.0)
    centred = scales[:, None, None] * (corners - _CENTRE) + _CENTRE
    corner_shifts = rng.normal(0.0, std, (n, 4, 2))
    # A homography maps the square onto a convex quadrilateral only; a
    # folded one would show the digit across the line at infinity. Such
    # corners (about 2%) are drawn again.
    folded = ~_is_convex(centred + corner_shifts)
    while folded.any():
        corner_shifts[folded] = rng.normal(0.0, std, (folded.sum(), 4, 2))
        folded = ~_is_convex(centred + corner_shifts)
    targets = centred + corner_shifts
    # The homography from canvas to digit: it maps each target to its corner.
    homographies = _homographies(targets, np.broadcast_to(corners, (n, 4, 2)))

    def source_points(start, stop):
        points = np.concatenate(
            [canvas_points(DIGIT), np.ones((DIGIT * DIGIT, 1))], axis=1
        )
        mapped = np.einsum("nij,pj->npi", homographies[start:stop], points)
        return mapped[..., :2] / mapped[..., 2:]

    parameters = {"scale": scales, "corner_shifts": corner_shifts}
    return source_points, parameters


def _is_convex(corners):
    """Whether the quadrilaterals of `(n, 4, 2)` corners are convex.

    The corners are top-left, top-right, bottom-left, bottom-right; the
    outline goes through them in the order 0, 1, 3, 2.
    """
    outline = corners[:, [0, 1, 3, 2]]
    edges = np.roll(outline, -1, axis=1) - outline
    turns = np.cross(edges, np.roll(edges, -1, axis=1))
    return np.all(turns > 0, axis=1) | np.all(turns < 0, axis=1)


def _homographies(sources, targets):
    """The `(n, 3, 3)` homographies mapping 4 `sources` to 4 `targets` each.

    Solves the usual 8x8 linear system of the four correspondences, with the
    bottom-right entry fixed to 1.
    """
    n = len(sources)
    x, y = sources[..., 0], sources[..., 1]
    u, v = targets[..., 0], targets[..., 1]
    ones, zeros = np.ones_like(x), np.zeros_like(x)
    rows_u = np.stack([x, y, ones, zeros, zeros, zeros, -u * x, -u * y], -1)
    rows_v = np.stack([zeros, zeros, zeros, x, y, ones, -v * x, -v * y], -1)
    system = np.concatenate([rows_u, rows_v], axis=1)
    values = np.concatenate([u, v], axis=1)[..., None]
    entries = np.linalg.solve(system, values)[..., 0]
    return np.concatenate([entries, np.ones((n, 1))], axis=1).reshape(n, 3, 3)


def _draw_elastic(images, rng):
    n = len(images)
    axis = np.linspace(0.0, DIGIT - 1.0, ELASTIC_GRID)
    controls = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1)
    controls = controls.reshape(-1, 2)
    shifts = rng.uniform(
        -ELASTIC_MAX_SHIFT, ELASTIC_MAX_SHIFT, (n, len(controls), 2)
    )
    # The thin-plate spline through the control points is linear in their
    # values: interpolating the identity gives the matrix that maps control
    # shifts to the shift of every canvas pixel.
    spline = interpolate.RBFInterpolator(
        controls, np.eye(len(controls)), kernel="thin_plate_spline"
    )
    weights = spline(canvas_points(DIGIT))

    def source_points(start, stop):
        # A canvas pixel shows the digit at its own place minus the shift
        # there, so ink moves by about the shifts of the nearby points.
        moved = np.einsum("pk,nki->npi", weights, shifts[start:stop])
        return canvas_points(DIGIT) - moved

    return source_points, {"control_shifts": shifts}


def _draw_cluttered(images, rng):
    n = len(images)
    forward = np.broadcast_to(np.eye(2), (n, 2, 2))
    size = CANVAS_SIZES["cluttered"]
    shifts = _random_shifts(rng, forward, images, size)
    return _affine_source_points(forward, shifts, size), {"shift": shifts}


def add_clutter(
    canvases: np.ndarray,
    images: np.ndarray,
    rng: np.random.Generator,
    patches: int = CLUTTER_PATCHES,
    size: int = CLUTTER_SIZE,
) -> None:
    """Add crops of random digits to each canvas, in place.

    Each crop is `size` pixels square, taken at a random place of a random
    digit's central 20x20 box (where the ink is) and put at a random place
    of the canvas, keeping the brighter pixel where it overlaps.

    Args:
        canvases: float32 canvases `(n, height, height)` with values in
            [0, 1], changed in place.
        images: the uint8 digits `(m, 28, 28)` that the crops come from.
        rng: the generator that draws the crops and their places.
        patches: how many crops each canvas gets.
        size: the crops' side, in pixels, at most 12.

    Example:

    >>> canvases = np.zeros((2, 40, 40), "float32")
    >>> add_clutter(canvases, np.full((3, 28, 28), 255, "uint8"),
    ...             np.random.default_rng(0), patches=1, size=5)
    >>> (canvases.sum(axis=(1, 2)) == 25).tolist()
    [True, True]
    """
    n, side = len(canvases), canvases.shape[1]
    shape = (n, patches)
    sources = rng.integers(0, len(images), shape)
    low, high = 4, DIGIT - 4 - size + 1
    source_corners = rng.integers(low, high, shape + (2,))
    canvas_corners = rng.integers(0, side - size + 1, shape + (2,))
    pixels = images.astype("float32") / 255.0
    span = np.arange(size)
    for patch in range(patches):
        rows = source_corners[:, patch, 0, None] + span
        cols = source_corners[:, patch, 1, None] + span
        crops = pixels[
            sources[:, patch, None, None], rows[:, :, None], cols[:, None, :]
        ]
        rows = canvas_corners[:, patch, 0, None] + span
        cols = canvas_corners[:, patch, 1, None] + span
        index = np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]
        canvases[index] = np.maximum(canvases[index], crops)
