"""Property-based tests of the sampler and the grid generators.

Hypothesis draws the shapes (1x1 images and outputs, and batch 1, among
them), channels, modes, padding modes, `align_corners`, data formats and
dtypes; each case is checked against an oracle computed in float64 from the
same inputs: PyTorch's `grid_sample` and `affine_grid` with autograd, and,
for the attention and similarity families, `affine_grid` of their matrices
written out in PyTorch; for the projective and thin-plate spline grids, the
maps written out independently in PyTorch (a matrix product and a division;
the spline's linear system solved by `torch.linalg.solve`).

Sampling points keep 0.1 pixel from every kink of the sampled function
(whole pixel coordinates, half pixels for `"nearest"` and the mirror lines
of reflection padding), where float32 and float64 may take opposite sides.

Tolerances (absolute and relative), against the float64 oracle:
float32 values 1e-5 and gradients 1e-4 (grids: values 1e-5 absolute,
gradients 1e-4); float64 values and gradients 1e-10. The sampler also
draws float16 and bfloat16 images and grids, whose values (not gradients)
are checked against the oracle at the inputs rounded to the dtype, to 2e-3
and 1e-2 of the largest output.

The examples are derandomized, so each run (and CI) tries the same ones.
"""

import contextlib

import keras
import numpy as np
import torch
from hypothesis import assume
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from keras import ops

from keras_stn import transforms
from keras_stn.ops import affine_grid
from keras_stn.ops import grid_sample
from keras_stn.ops import projective_grid
from keras_stn.ops import tps_grid
from keras_stn.ops import warp_affine

from helpers import BACKEND
from helpers import float64_enabled
from helpers import normalized_mesh
from helpers import torch_grid_sample
from helpers import unnormalize
from helpers import value_and_gradients

MODES = ("bilinear", "nearest", "bicubic")
VOLUME_MODES = ("bilinear", "nearest")
PADDINGS = ("zeros", "border", "reflection")
DATA_FORMATS = ("channels_last", "channels_first")
DTYPES = ("float32", "float64")
# (value, gradient) tolerances, absolute and relative, per dtype.
TOLERANCES = {"float32": (1e-5, 1e-4), "float64": (1e-10, 1e-10)}
# The sampler also takes float16 and bfloat16 (values only): a few units
# in the last place of the output, relative to the largest output.
LOW_PRECISION_TOLERANCES = {"float16": 2e-3, "bfloat16": 1e-2}
SAMPLER_DTYPES = DTYPES + tuple(LOW_PRECISION_TOLERANCES)


def fuzz_settings(max_examples):
    """Hypothesis settings: deterministic, no deadline, no example file."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
    )


def precision(dtype):
    """Let the backend compute in `dtype` (JAX needs a switch for float64)."""
    if dtype == "float64":
        return float64_enabled()
    return contextlib.nullcontext()


def assert_close(actual, expected, tolerance):
    """`assert_allclose` with one absolute and relative tolerance."""
    np.testing.assert_allclose(
        ops.convert_to_numpy(actual), expected, rtol=tolerance, atol=tolerance
    )


def outputs_and_gradients(fn, upstream, *args):
    """`fn(*args)` and the gradients of `sum(fn(*args) * upstream)`.

    On JAX, which compiles each eager op anew for each new shape, both come
    from one compiled function: one compilation per drawn example.

    Returns:
        `(outputs, gradients)`: NumPy arrays, one gradient per argument.
    """

    def loss(*tensors):
        outputs = fn(*tensors)
        return ops.sum(ops.multiply(outputs, upstream)), outputs

    if BACKEND == "jax":
        import jax

        argnums = tuple(range(len(args)))
        both = jax.jit(jax.value_and_grad(loss, argnums, has_aux=True))
        (_, outputs), gradients = both(*args)
        return np.asarray(outputs), [np.asarray(g) for g in gradients]
    _, gradients = value_and_gradients(lambda *t: loss(*t)[0], *args)
    return ops.convert_to_numpy(fn(*args)), gradients


@st.composite
def sampler_cases(draw, rank, sizes=None, dtypes=SAMPLER_DTYPES):
    """Arguments of one `grid_sample` call, and a seed for its arrays.

    Args:
        draw: Hypothesis' draw function.
        rank: 2 for images, 3 for volumes.
        sizes: `(input_size, output_size)` pairs to draw from; `None` draws
            each spatial size from 1 to 6 (images) or 4 (volumes).
        dtypes: the dtypes to draw from.
    """
    largest = 6 if rank == 2 else 4
    if sizes is None:
        size = st.tuples(*[st.integers(1, largest)] * rank)
        input_size, output_size = draw(size), draw(size)
    else:
        input_size, output_size = draw(st.sampled_from(sizes))
    return dict(
        batch=draw(st.integers(1, 3)),
        input_size=input_size,
        output_size=output_size,
        channels=draw(st.integers(1, 3)),
        mode=draw(st.sampled_from(MODES if rank == 2 else VOLUME_MODES)),
        padding_mode=draw(st.sampled_from(PADDINGS)),
        align_corners=draw(st.booleans()),
        data_format=draw(st.sampled_from(DATA_FORMATS)),
        dtype=draw(st.sampled_from(dtypes)),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


def nudged_grid(rng, batch, input_size, output_size, align_corners):
    """A random normalized grid whose points keep 0.1 pixel from any kink.

    The pixel coordinates are whole numbers from `-size - 2` to `2 * size
    + 1` plus a fraction in (0.1, 0.4) or (0.6, 0.9): inside and outside
    the image, and away from whole and half pixels. Along an axis of one
    pixel with `align_corners=True`, where every coordinate is that pixel,
    the normalized coordinates are uniform in [-1.5, 1.5].

    Returns:
        A float64 array `(batch, *output_size, rank)`, `x, y[, z]` last.
    """
    shape = (batch, *output_size)
    axes = []
    for size in input_size[::-1]:
        if size == 1 and align_corners:
            axes.append(rng.uniform(-1.5, 1.5, shape))
            continue
        pixels = (
            rng.integers(-size - 2, 2 * size + 2, shape)
            + rng.uniform(0.1, 0.4, shape)
            + 0.5 * rng.integers(0, 2, shape)
        )
        if align_corners:
            axes.append(pixels * 2.0 / (size - 1) - 1.0)
        else:
            axes.append((2.0 * pixels + 1.0) / size - 1.0)
    return np.stack(axes, axis=-1)


def check_low_precision_grid_sample(case, images, grid, kwargs, implementation):
    """`grid_sample` of float16 or bfloat16 images and grid, values only.

    The oracle samples the images and grid as rounded to the dtype, in
    float64; the outputs may differ by the rounding of the outputs to the
    dtype (the sampler's coordinates and sums are float32).
    """
    dtype = case["dtype"]
    rounded = [
        torch.tensor(a).to(getattr(torch, dtype)).double().numpy()
        for a in (images, grid)
    ]

    def sample(images, grid):
        return grid_sample(
            ops.cast(images, dtype),
            ops.cast(grid, dtype),
            data_format=case["data_format"],
            implementation=implementation,
            **kwargs,
        )

    if BACKEND == "jax":
        import jax

        sample = jax.jit(sample)
    out = sample(*(a.astype("float32") for a in rounded))
    expected, _, _ = torch_grid_sample(
        *rounded, np.zeros(()), case["data_format"], **kwargs
    )
    assert keras.backend.standardize_dtype(out.dtype) == dtype
    out = ops.convert_to_numpy(ops.cast(out, "float32"))
    scale = max(1.0, float(np.abs(expected).max()))
    assert_close(out, expected, LOW_PRECISION_TOLERANCES[dtype] * scale)


def check_grid_sample(case, implementation):
    """`grid_sample` and its gradients against PyTorch's, for one case."""
    rng = np.random.default_rng(case["seed"])
    batch, channels = case["batch"], case["channels"]
    images = rng.normal(size=(batch, *case["input_size"], channels))
    upstream = rng.normal(size=(batch, *case["output_size"], channels))
    if case["data_format"] == "channels_first":
        images, upstream = (
            np.moveaxis(images, -1, 1),
            np.moveaxis(upstream, -1, 1),
        )
    grid = nudged_grid(
        rng,
        batch,
        case["input_size"],
        case["output_size"],
        case["align_corners"],
    )
    dtype = case["dtype"]
    kwargs = dict(
        mode=case["mode"],
        padding_mode=case["padding_mode"],
        align_corners=case["align_corners"],
    )
    if dtype in LOW_PRECISION_TOLERANCES:
        check_low_precision_grid_sample(
            case, images, grid, kwargs, implementation
        )
        return
    images, grid, upstream = (a.astype(dtype) for a in (images, grid, upstream))

    def sample(images, grid):
        return grid_sample(
            images,
            grid,
            data_format=case["data_format"],
            implementation=implementation,
            **kwargs,
        )

    with precision(dtype):
        out, (grad_images, grad_grid) = outputs_and_gradients(
            sample, upstream, images, grid
        )
    expected, expected_images, expected_grid = torch_grid_sample(
        *(a.astype("float64") for a in (images, grid, upstream)),
        case["data_format"],
        **kwargs,
    )
    assert ops.convert_to_numpy(out).dtype == np.dtype(dtype)
    assert tuple(out.shape) == expected.shape
    value_tolerance, gradient_tolerance = TOLERANCES[dtype]
    assert_close(out, expected, value_tolerance)
    assert_close(grad_images, expected_images, gradient_tolerance)
    assert_close(grad_grid, expected_grid, gradient_tolerance)


# JAX compiles each drawn example's sampler and gradients anew (1-3 s for
# bicubic sampling on this CPU, where the other backends run eagerly), so it
# draws two fifths as many examples (derandomized, as on the others).
SAMPLER_EXAMPLES = 0.4 if BACKEND == "jax" else 1.0


@fuzz_settings(max_examples=round(150 * SAMPLER_EXAMPLES))
@given(case=sampler_cases(rank=2))
def test_grid_sample_matches_torch(case):
    check_grid_sample(case, "keras")


@fuzz_settings(max_examples=round(60 * SAMPLER_EXAMPLES))
@given(case=sampler_cases(rank=3))
def test_grid_sample_of_volumes_matches_torch(case):
    check_grid_sample(case, "keras")


# The fast paths of `implementation="auto"` (XLA on TensorFlow, compiled
# once per shape and options, and PyTorch's kernel on torch) on a few
# shapes, to keep the compilations few.
AUTO_SIZES = {
    2: [((5, 4), (3, 2)), ((1, 1), (2, 1))],
    3: [((3, 2, 4), (2, 1, 2))],
}


@fuzz_settings(max_examples=12)
@given(
    case=st.sampled_from((2, 3)).flatmap(
        lambda rank: sampler_cases(rank, AUTO_SIZES[rank])
    )
)
def test_grid_sample_auto_matches_torch(case):
    check_grid_sample(case, "auto")


@st.composite
def affine_cases(draw):
    """A batch of random affine `theta` of either rank, and grid options."""
    rank = draw(st.sampled_from((2, 3)))
    return dict(
        rank=rank,
        batch=draw(st.integers(1, 3)),
        output_size=draw(st.tuples(*[st.integers(1, 7)] * rank)),
        align_corners=draw(st.booleans()),
        dtype=draw(st.sampled_from(DTYPES)),
        scale=draw(st.sampled_from((0.1, 1.0, 10.0))),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


def check_grid(grid_fn, parameters, torch_fn, upstream_shape, rng, dtype):
    """A grid generator's values and gradient against a PyTorch oracle.

    Args:
        grid_fn: maps the parameters (a backend tensor) to the grid.
        parameters: NumPy array of the generator's parameters, in `dtype`.
        torch_fn: maps the parameters (a float64 torch tensor) to the
            expected grid.
        upstream_shape: the shape of the grid.
        rng: a `numpy.random.Generator`, for the upstream gradient.
        dtype: `"float32"` or `"float64"`.
    """
    upstream = rng.normal(size=upstream_shape).astype(dtype)
    with precision(dtype):
        grid, (gradient,) = outputs_and_gradients(grid_fn, upstream, parameters)
    t_parameters = torch.tensor(parameters, dtype=torch.float64)
    t_parameters.requires_grad_(True)
    expected = torch_fn(t_parameters)
    (expected * torch.tensor(upstream, dtype=torch.float64)).sum().backward()
    assert ops.convert_to_numpy(grid).dtype == np.dtype(dtype)
    assert tuple(grid.shape) == tuple(expected.shape)
    value_tolerance, gradient_tolerance = TOLERANCES[dtype]
    scale = max(1.0, float(np.abs(expected.detach().numpy()).max()))
    assert_close(grid, expected.detach().numpy(), value_tolerance * scale)
    assert_close(gradient, t_parameters.grad.numpy(), gradient_tolerance)


@fuzz_settings(max_examples=80)
@given(case=affine_cases())
def test_affine_grid_matches_torch(case):
    rng = np.random.default_rng(case["seed"])
    rank, size = case["rank"], case["output_size"]
    theta = rng.normal(0.0, case["scale"], (case["batch"], rank, rank + 1))
    theta = theta.astype(case["dtype"])

    def expected(theta):
        return torch.nn.functional.affine_grid(
            theta,
            (case["batch"], 1, *size),
            align_corners=case["align_corners"],
        )

    check_grid(
        lambda theta: affine_grid(theta, size, case["align_corners"]),
        theta,
        expected,
        (case["batch"], *size, rank),
        rng,
        case["dtype"],
    )


@st.composite
def family_cases(draw):
    """Parameters of the attention or similarity family, and grid options.

    Similarity is drawn in float32 only: Keras' JAX backend computes the
    cosine and sine of float64 in float32 (docs/getting-started.md, "Backends").
    """
    family = draw(st.sampled_from(("attention", "similarity")))
    rank = 2 if family == "similarity" else draw(st.sampled_from((2, 3)))
    dtypes = ("float32",) if family == "similarity" else DTYPES
    return dict(
        family=family,
        rank=rank,
        batch=draw(st.integers(1, 3)),
        output_size=draw(st.tuples(*[st.integers(1, 7)] * rank)),
        align_corners=draw(st.booleans()),
        dtype=draw(st.sampled_from(dtypes)),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


def torch_family_matrix(family, parameters):
    """The affine matrix of a family's parameters, in float64 PyTorch."""
    if family == "attention":
        scale, translation = parameters[:, :1], parameters[:, 1:]
        rank = translation.shape[-1]
        linear = scale[:, :, None] * torch.eye(rank, dtype=torch.float64)
        return torch.cat([linear, translation[:, :, None]], dim=-1)
    scale, angle, tx, ty = parameters.unbind(-1)
    cos, sin = scale * torch.cos(angle), scale * torch.sin(angle)
    rows = [torch.stack([cos, -sin, tx], -1), torch.stack([sin, cos, ty], -1)]
    return torch.stack(rows, dim=1)


@fuzz_settings(max_examples=60)
@given(case=family_cases())
def test_attention_and_similarity_grids_match_torch(case):
    rng = np.random.default_rng(case["seed"])
    family = transforms.get(case["family"])
    rank, size = case["rank"], case["output_size"]
    batch, align_corners = case["batch"], case["align_corners"]
    parameters = family.identity(rank) + rng.normal(
        0.0, 0.5, (batch, *family.parameter_shape(rank))
    )
    parameters = parameters.astype(case["dtype"])

    def expected(parameters):
        return torch.nn.functional.affine_grid(
            torch_family_matrix(case["family"], parameters),
            (batch, 1, *size),
            align_corners=align_corners,
        )

    check_grid(
        lambda p: family.grid(p, size, align_corners),
        parameters,
        expected,
        (batch, *size, rank),
        rng,
        case["dtype"],
    )


def torch_mesh(size, align_corners):
    """Homogeneous `(x, y[, z], 1)` of the output pixels, float64 torch."""
    mesh = normalized_mesh(size, align_corners)
    ones = np.ones((*mesh.shape[:-1], 1))
    return torch.tensor(np.concatenate([mesh, ones], axis=-1))


@fuzz_settings(max_examples=80)
@given(case=affine_cases())
def test_projective_grid_matches_torch(case):
    rng = np.random.default_rng(case["seed"])
    rank, size = case["rank"], case["output_size"]
    batch = case["batch"]
    homography = np.eye(rank + 1) + rng.normal(
        0.0, 0.3, (batch, rank + 1, rank + 1)
    )
    # The denominator w = (p, 1) . last row stays >= 0.3 over the square;
    # the matrix's scale (either sign) does not change the map.
    limit = 0.5 / rank
    homography[:, rank, :rank] = rng.uniform(-limit, limit, (batch, rank))
    homography[:, rank, rank] = rng.uniform(0.8, 1.5, batch)
    homography *= case["scale"] * rng.choice([-1.0, 1.0], (batch, 1, 1))
    homography = homography.astype(case["dtype"])
    mesh = torch_mesh(size, case["align_corners"])

    def expected(homography):
        mapped = torch.einsum("...k,bjk->b...j", mesh, homography)
        return mapped[..., :rank] / mapped[..., rank:]

    check_grid(
        lambda h: projective_grid(h, size, case["align_corners"]),
        homography,
        expected,
        (batch, *size, rank),
        rng,
        case["dtype"],
    )


def tps_kernel(differences):
    """`U(r) = r^2 log r`, 0 at 0, of float64 torch vectors `differences`."""
    squared = (differences**2).sum(-1)
    safe = torch.where(squared > 0, squared, torch.ones_like(squared))
    return 0.5 * squared * torch.log(safe)


@st.composite
def tps_cases(draw):
    """Control points (a regular grid or scattered) and grid options."""
    if draw(st.booleans()):
        rows, columns = draw(st.integers(2, 4)), draw(st.integers(2, 4))
        xs, ys = np.meshgrid(
            np.linspace(-1, 1, columns), np.linspace(-1, 1, rows)
        )
        control_points = np.stack([xs.ravel(), ys.ravel()], axis=-1)
    else:
        count = draw(st.integers(3, 8))
        seed = draw(st.integers(0, 2**32 - 1))
        control_points = np.random.default_rng(seed).uniform(-1, 1, (count, 2))
        # Well spread: no two points close, not nearly on one line.
        distances = np.linalg.norm(
            control_points[:, None] - control_points[None], axis=-1
        )
        affine = np.c_[control_points, np.ones(count)]
        assume(distances[np.triu_indices(count, 1)].min() > 0.2)
        assume(np.linalg.svd(affine, compute_uv=False)[-1] > 0.3)
    return dict(
        control_points=control_points,
        batch=draw(st.integers(1, 3)),
        output_size=draw(st.tuples(*[st.integers(1, 7)] * 2)),
        align_corners=draw(st.booleans()),
        dtype=draw(st.sampled_from(DTYPES)),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


@fuzz_settings(max_examples=60)
@given(case=tps_cases())
def test_tps_grid_matches_torch(case):
    rng = np.random.default_rng(case["seed"])
    points = case["control_points"]
    count, size, batch = len(points), case["output_size"], case["batch"]
    targets = points + rng.normal(0.0, 0.3, (batch, count, 2))
    targets = targets.astype(case["dtype"])
    t_points = torch.tensor(points)
    system = torch.zeros((count + 3, count + 3), dtype=torch.float64)
    system[:count, :count] = tps_kernel(t_points[:, None] - t_points[None])
    system[:count, count] = 1.0
    system[:count, count + 1 :] = t_points
    system[count:, :count] = system[:count, count:].T
    mesh = torch_mesh(size, case["align_corners"])[..., :2]

    def expected(targets):
        # Kernel weights and the affine part (constant, x, y) per target.
        right = torch.cat(
            [targets, torch.zeros((batch, 3, 2), dtype=torch.float64)], 1
        )
        coefficients = torch.linalg.solve(system, right)
        features = torch.cat(
            [
                tps_kernel(mesh[..., None, :] - t_points),
                torch.ones((*size, 1), dtype=torch.float64),
                mesh,
            ],
            dim=-1,
        )
        return torch.einsum("hwk,bkj->bhwj", features, coefficients)

    check_grid(
        lambda t: tps_grid(t, size, points, case["align_corners"]),
        targets,
        expected,
        (batch, *size, 2),
        rng,
        case["dtype"],
    )


@fuzz_settings(max_examples=60)
@given(
    case=sampler_cases(rank=2, dtypes=DTYPES)
    | sampler_cases(rank=3, dtypes=DTYPES)
)
def test_warp_affine_matches_torch(case):
    rng = np.random.default_rng(case["seed"])
    batch, channels = case["batch"], case["channels"]
    input_size, output_size = case["input_size"], case["output_size"]
    rank, dtype = len(input_size), case["dtype"]
    align_corners = case["align_corners"]
    theta = np.eye(rank, rank + 1) + rng.normal(
        0.0, 0.5, (batch, rank, rank + 1)
    )
    theta = theta.astype(dtype)
    t_theta = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
    grid = torch.nn.functional.affine_grid(
        t_theta, (batch, 1, *output_size), align_corners=align_corners
    )
    # Points within 1e-3 pixel of a kink (a whole or half pixel) may fall
    # on either side in float32: such cases are not drawn.
    pixels = unnormalize(grid.detach().numpy(), input_size, align_corners)
    # (Along an axis of one pixel with align_corners=True, every point is
    # exactly that pixel, in both.)
    kink = np.abs(2 * pixels - np.round(2 * pixels)) / 2
    moving = ~((np.array(input_size[::-1]) == 1) & align_corners)
    assume(kink[..., moving].min(initial=1.0) > 1e-3)
    images = rng.normal(size=(batch, *input_size, channels)).astype(dtype)
    upstream = rng.normal(size=(batch, *output_size, channels)).astype(dtype)
    kwargs = dict(
        mode=case["mode"],
        padding_mode=case["padding_mode"],
        align_corners=align_corners,
    )

    def warp(images, theta):
        return warp_affine(
            images,
            theta,
            output_size,
            data_format="channels_last",
            implementation="keras",
            **kwargs,
        )

    with precision(dtype):
        out, (grad_images, grad_theta) = outputs_and_gradients(
            warp, upstream, images, theta
        )
    t_images = torch.tensor(images, dtype=torch.float64, requires_grad=True)
    expected = torch.nn.functional.grid_sample(
        t_images.movedim(-1, 1), grid, **kwargs
    ).movedim(1, -1)
    (expected * torch.tensor(upstream, dtype=torch.float64)).sum().backward()
    value_tolerance, gradient_tolerance = TOLERANCES[dtype]
    assert_close(out, expected.detach().numpy(), value_tolerance)
    assert_close(grad_images, t_images.grad.numpy(), gradient_tolerance)
    assert_close(grad_theta, t_theta.grad.numpy(), gradient_tolerance)
