"""The bilinear sampler as a C++ kernel on JAX's CPU.

XLA's CPU code runs the generic sampler's gathers and, in the backward pass,
its scatter-add one element at a time on one thread; they made the sampler 2-6x
slower than PyTorch's fused kernel, forward and backward (docs/benchmarks.md).
Where a model is differentiated, this module runs the forward and backward
passes of bilinear (trilinear) sampling with `"zeros"` and `"border"` padding
as the C++ kernel of `bilinear_sampling.h`, called through XLA's foreign
function interface on its intra-op threads, with the generic sampler's numbers
(its rule for NaN and infinite points included) up to float rounding. The
backward pass computes only the gradients that are used: a transformer at a
model's input needs its grid's, not its input images'. Forward mode
(`jax.jvp`, `jax.jacfwd`) and second derivatives go through the generic
sampler's derivatives (see `_sampler`).

Without differentiation, the kernel runs in eager calls and in Keras'
`fit`, `evaluate` and `predict`; what a model exports holds plain XLA
operations: the kernel's operations lower to the generic sampler when
`jax.export` serializes them (`jax2tf`, Keras' SavedModel export), and a
model that another tracer calls directly (jax2onnx) samples with the
generic `keras.ops` sampler (see `_kernel_without_differentiation`). The
kernel's operations also lower to the generic sampler on platforms other
than the CPU, and where no C++ compiler can build the kernel
(`keras_stn.ops.sampling.cpp_kernel.build`).
"""

import ctypes
import functools
import math
import pathlib

import numpy as np

from keras_stn.ops.sampling.cpp_kernel.build import KERNEL_PADDING_MODES
from keras_stn.ops.sampling.cpp_kernel.build import compiled_library
from keras_stn.ops.sampling.cpp_kernel.build import coordinates_code
from keras_stn.ops.sampling.cpp_kernel.build import kernel_convention
from keras_stn.ops.sampling.cpp_kernel.build import stacked
from keras_stn.ops.sampling.cpp_kernel.private_api import private_function
from keras_stn.ops.sampling.generic import pixel_points
from keras_stn.ops.sampling.generic import sample_bilinear
from keras_stn.ops.sampling.options import SamplingOptions
from keras_stn.typing import Tensor

# The FFI handlers of `kernels/jax_bilinear_sampling.cc`, by the gradients
# they compute.
SAMPLE_TARGET = "KerasStnBilinearSample"
GRADIENT_TARGETS = {
    ("images",): "KerasStnBilinearGradImages",
    ("points",): "KerasStnBilinearGradPoints",
    ("images", "points"): "KerasStnBilinearGradBoth",
}


def sample(
    images: Tensor, points: Tensor | list[Tensor], options: SamplingOptions
) -> Tensor:
    """Sample with the kernel through XLA's FFI (`generic.sample`'s
    arguments, bilinear); XLA fuses the stacking of points given per axis
    into their computation."""
    return _kernel_sample(
        images,
        stacked(points),
        options.padding_mode,
        sample_bilinear,
        kernel_convention(options),
    )


def _kernel_sample(images, points, padding_mode, generic, align_corners):
    """Sample channels-last images bilinearly at points.

    The numbers of the generic sampler (for points in pixels or
    normalized ones) for bilinear
    sampling with `"zeros"` or `"border"` padding.

    Args:
        images: float tensor of shape `(batch, *spatial, channels)`.
        points: float tensor of shape `(batch, *output_shape, rank)`, the
            points' coordinates in the order `x, y[, z]`.
        padding_mode: `"zeros"` or `"border"`.
        generic: the generic sampler, `generic(images, points,
            padding_mode)` with points in pixels, one tensor per axis, which
            runs where the kernel does not.
        align_corners: `None` for coordinates in pixels (pixel `i` has its
            centre at `i`); else normalized ones, with this convention.

    Returns:
        Tensor of shape `(batch, *output_shape, channels)`.
    """
    import jax.numpy as jnp

    output_shape = points.shape[1:-1]
    flat = jnp.reshape(points, (-1, math.prod(output_shape), points.shape[-1]))
    sample = _sampler(_kernel_without_differentiation(images))
    outputs = sample(images, flat, padding_mode, generic, align_corners)
    return jnp.reshape(outputs, (-1, *output_shape, images.shape[-1]))


def _generic_sample(images, points, padding_mode, generic, align_corners):
    """The generic sampler on the kernel's arguments: `generic` at the
    points in pixels (`align_corners=None`) or normalized."""
    normalized = align_corners is not None
    points = pixel_points(images, points, bool(align_corners), normalized)
    return generic(images, points, padding_mode)


def _kernel_without_differentiation(images):
    """Whether an undifferentiated sampling runs the kernel too.

    It does in eager calls, and in what Keras traces for `fit`, `evaluate`
    and `predict` (its stateless calls), whose graphs run in this process;
    `jax.export` (Keras' SavedModel export) lowers the kernel's operations
    to the generic sampler. Other traces of a model called directly take
    the generic sampler: jax2onnx (Keras' ONNX export) knows no kernel
    operation. Keras answers "is this a stateless call?" with a private
    function only; where it is gone, only eager calls run the kernel.
    """
    import jax

    if not isinstance(images, jax.core.Tracer):
        return True
    in_stateless_scope = private_function(
        "keras.src.backend.common.stateless_scope", "in_stateless_scope"
    )
    try:
        return in_stateless_scope is not None and bool(in_stateless_scope())
    except Exception:  # A private API that fails means "don't know".
        return False


@functools.cache
def _sampler(kernel_without_differentiation: bool):
    """Sampling whose derivatives are the kernel's where JAX transposes
    them: `sample(images, points, padding_mode, generic, align_corners)`
    with points of shape `(batch, points, rank)`; without differentiation,
    the kernel's or the generic sampler's forward pass.

    A `jax.custom_jvp`: its forward-mode derivative is the primitive
    `tangent`, linear in the tangents of the arguments, which forward mode
    (`jax.jvp`, `jax.jacfwd`) computes through the generic sampler, and
    reverse mode (`jax.grad`, `jax.vjp`) transposes into the kernel's
    gradients of the perturbed arguments only.
    """
    import jax

    sample_primitive, tangent_primitive, _ = _primitives()
    options = ("padding_mode", "generic", "align_corners")

    def kernel_sample(images, points, *values):
        return sample_primitive.bind(
            images, points, **dict(zip(options, values, strict=True))
        )

    primal = _generic_sample
    if kernel_without_differentiation:
        primal = kernel_sample
    sample = jax.custom_jvp(primal, nondiff_argnums=(2, 3, 4))

    def derivative(padding_mode, generic, align_corners, primals, tangents):
        values = (padding_mode, generic, align_corners)
        outputs = kernel_sample(*primals, *values)
        perturbed = [
            (name, tangent)
            for name, tangent in zip(
                ("images", "points"), tangents, strict=True
            )
            if not isinstance(tangent, jax.custom_derivatives.SymbolicZero)
        ]
        names = tuple(name for name, _ in perturbed)
        tangent = tangent_primitive.bind(
            *primals,
            *(tangent for _, tangent in perturbed),
            wants=names,
            **dict(zip(options, values, strict=True)),
        )
        return outputs, tangent

    sample.defjvp(derivative, symbolic_zeros=True)
    return sample


@functools.cache
def _primitives():
    """The kernel's JAX primitives: the forward pass, its tangent, and the
    gradients.

    `sample(images, points, *, padding_mode, generic, align_corners) ->
    outputs`; `tangent(images, points, *tangents, *, wants, ...) ->
    outputs' tangent`, linear in the tangents of the arguments that `wants`
    names (`"images"`, `"points"`), whose transpose is `gradients(images,
    points, upstream, *, wants, ...) -> [grad_images][, grad_points]`.
    `sample` and `gradients` lower to the kernel on the CPU, and to the
    generic sampler (or its `jax.vjp`) elsewhere and for `jax.export`;
    `tangent` always lowers to the generic sampler's `jax.jvp`.
    """
    import jax
    import jax.numpy as jnp
    from jax.extend.core import Primitive
    from jax.interpreters import ad
    from jax.interpreters import batching
    from jax.interpreters import mlir

    def generic_tangent(images, points, *tangents, wants, **options):
        given = dict(zip(wants, tangents, strict=True))
        _, outputs_tangent = jax.jvp(
            functools.partial(_generic_sample, **options),
            (images, points),
            (
                given.get("images", jnp.zeros_like(images)),
                given.get("points", jnp.zeros_like(points)),
            ),
        )
        return outputs_tangent

    def generic_gradients(images, points, upstream, *, wants, **options):
        _, vjp = jax.vjp(
            functools.partial(_generic_sample, **options), images, points
        )
        grad_images, grad_points = vjp(upstream)
        found = {"images": grad_images, "points": grad_points}
        return [found[name] for name in wants]

    def sample_shape(images, points, *_, **__):
        return jax.core.ShapedArray(
            (*points.shape[:2], images.shape[-1]), images.dtype
        )

    def gradient_shapes(images, points, upstream, *, wants, **_):
        found = {"images": images, "points": points}
        return [
            jax.core.ShapedArray(found[name].shape, found[name].dtype)
            for name in wants
        ]

    def transposed(
        gradients, upstream, images, points, *tangents, wants, **options
    ):
        """The tangent's transpose: the kernel's gradients of the
        arguments whose tangents are the unknowns."""
        unknown = tuple(
            name
            for name, tangent in zip(wants, tangents, strict=True)
            if ad.is_undefined_primal(tangent)
        )
        found = {}
        if unknown and not isinstance(upstream, ad.Zero):
            results = gradients.bind(
                images, points, upstream, wants=unknown, **options
            )
            found = dict(zip(unknown, results, strict=True))
        return [None, None, *(found.get(name) for name in wants)]

    def lowering(generic_rule, target_of):
        def rule(
            ctx, *operands, padding_mode, generic, align_corners, **params
        ):
            exporting = ctx.module_context.lowering_parameters.for_export
            if exporting or not _registered_targets():
                return generic_rule(
                    ctx,
                    *operands,
                    padding_mode=padding_mode,
                    generic=generic,
                    align_corners=align_corners,
                    **params,
                )
            return jax.ffi.ffi_lowering(target_of(**params))(
                ctx,
                *operands,
                padding=np.int32(KERNEL_PADDING_MODES[padding_mode]),
                coordinates=np.int32(coordinates_code(align_corners)),
            )

        return rule

    def batched(primitive):
        """Fold a `vmap`ped axis into the batch, which the kernel takes."""

        def rule(operands, axes, **params):
            size = next(
                operand.shape[axis]
                for operand, axis in zip(operands, axes, strict=True)
                if axis is not None
            )
            folded = []
            for operand, axis in zip(operands, axes, strict=True):
                if axis is None:  # An operand that is not vmapped.
                    operand = jnp.broadcast_to(operand, (size, *operand.shape))
                else:
                    operand = jnp.moveaxis(operand, axis, 0)
                folded.append(jnp.reshape(operand, (-1, *operand.shape[2:])))
            results = primitive.bind(*folded, **params)
            if not primitive.multiple_results:
                return jnp.reshape(results, (size, -1, *results.shape[1:])), 0
            return [
                jnp.reshape(result, (size, -1, *result.shape[1:]))
                for result in results
            ], [0] * len(results)

        return rule

    def differentiated(primitive, generic_function):
        """The primitive's JVP: its own value, and the generic function's
        tangent, so that second derivatives (`jax.hessian`, a gradient of
        a gradient) pass through the kernel's operations."""

        def rule(primals, tangents, **params):
            tangents = tuple(map(ad.instantiate_zeros, tangents))
            _, tangents_out = jax.jvp(
                functools.partial(generic_function, **params),
                primals,
                tangents,
            )
            return primitive.bind(*primals, **params), tangents_out

        return rule

    @functools.cache
    def compiled(primitive, **params):
        """The primitive with these parameters under `jax.jit`, compiled
        once for its eager calls."""
        return jax.jit(functools.partial(primitive.bind, **params))

    sample = Primitive("keras_stn_bilinear_sample")
    tangent = Primitive("keras_stn_bilinear_tangent")
    gradients = Primitive("keras_stn_bilinear_gradients")
    gradients.multiple_results = True
    for primitive, shapes, generic_function, target_of in (
        (sample, sample_shape, _generic_sample, lambda: SAMPLE_TARGET),
        (tangent, sample_shape, generic_tangent, None),
        (
            gradients,
            gradient_shapes,
            generic_gradients,
            lambda wants: GRADIENT_TARGETS[wants],
        ),
    ):
        primitive.def_abstract_eval(shapes)
        primitive.def_impl(
            lambda *operands, primitive=primitive, **params: compiled(
                primitive, **params
            )(*operands)
        )
        generic_rule = mlir.lower_fun(
            generic_function, multiple_results=primitive.multiple_results
        )
        mlir.register_lowering(primitive, generic_rule)
        if target_of is not None:
            mlir.register_lowering(
                primitive, lowering(generic_rule, target_of), platform="cpu"
            )
        batching.primitive_batchers[primitive] = batched(primitive)
        ad.primitive_jvps[primitive] = differentiated(
            primitive, generic_function
        )
    ad.primitive_transposes[tangent] = functools.partial(transposed, gradients)
    return sample, tangent, gradients


def build_kernel() -> pathlib.Path | None:
    """Build JAX's kernel library (or find it built).

    Returns:
        Its path, or `None` where it could not be built.
    """
    import jax

    return compiled_library(
        "jax_bilinear_sampling.cc", (jax.ffi.include_dir(),)
    )


@functools.cache
def _registered_targets() -> bool:
    """Build the kernel and register its FFI targets; whether that worked."""
    import jax

    path = build_kernel()
    if path is None:
        return False
    library = ctypes.CDLL(path)
    for target in (SAMPLE_TARGET, *GRADIENT_TARGETS.values()):
        jax.ffi.register_ffi_target(
            target, jax.ffi.pycapsule(getattr(library, target)), platform="cpu"
        )
        # Each example is sampled on its own: under a sharded batch, each
        # device runs the kernel on its examples.
        jax.ffi.register_ffi_target_as_batch_partitionable(target)
    return True
