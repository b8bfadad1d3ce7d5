"""The bilinear sampler as a C++ kernel on TensorFlow's CPU, in training.

Where a gradient tape records the sampler (a training step), bilinear
(trilinear) sampling with `"zeros"` or `"border"` padding runs its forward pass
and its backward pass as TensorFlow ops of the C++ kernel of
`bilinear_sampling.h`, on TensorFlow's intra-op threads, with the generic
sampler's numbers (its rule for NaN and infinite points included) up to float
rounding. The backward pass computes only the gradients that the tape records:
a transformer at a model's input needs its grid's, not its input images'.
`grid_sample` hands the kernel its grid as it is, which converts the normalized
coordinates itself, and the layer and `warp_affine` their points one tensor per
axis, which it reads as they are.

Elsewhere the sampler takes its other paths: without a tape (inference, and
what `model.export` traces, so that an artifact holds only TensorFlow's own
ops), inside XLA compilation (`jit_compile=True`; the kernel is no XLA
op), where TensorFlow sees a GPU, and where no C++ compiler can build the
kernel (`keras_stn.ops.sampling.cpp_kernel.build`).
"""

import functools
import math
import pathlib

from keras_stn.ops.sampling import generic
from keras_stn.ops.sampling.cpp_kernel.build import KERNEL_PADDING_MODES
from keras_stn.ops.sampling.cpp_kernel.build import compiled_library
from keras_stn.ops.sampling.cpp_kernel.build import coordinates_code
from keras_stn.ops.sampling.cpp_kernel.build import kernel_convention
from keras_stn.ops.sampling.cpp_kernel.build import native_macros
from keras_stn.ops.sampling.cpp_kernel.private_api import private_function
from keras_stn.ops.sampling.options import SamplingOptions
from keras_stn.typing import Tensor

# The kernel's gradient ops: whether each computes the images' gradient and
# the points'.
GRADIENT_OPS = {
    "KerasStnBilinearGradImages": (True, False),
    "KerasStnBilinearGradPoints": (False, True),
    "KerasStnBilinearGradBoth": (True, True),
}
# The names of the functions that Keras traces for its steps
# (`keras/src/backend/tensorflow/trainer.py`).
KERAS_STEP_FUNCTIONS = (
    "one_step_on_data",
    "one_step_on_data_distributed",
    "multi_step_on_data",
    "multi_step_on_iterator",
)


def sample(
    images: Tensor, points: Tensor | list[Tensor], options: SamplingOptions
) -> Tensor:
    """Sample with the kernel's TensorFlow ops, which read points given
    per axis as they are (`generic.sample`'s arguments, bilinear)."""
    convention = kernel_convention(options)
    return _kernel_sample(images, points, options.padding_mode, convention)


def available() -> bool:
    """Whether the kernel's ops could be built and loaded here."""
    return _library() is not None


def _kernel_sample(images, points, padding_mode, align_corners):
    """Sample channels-last images bilinearly at points.

    The numbers of the generic sampler (for points in pixels or
    normalized ones) for bilinear
    sampling with `"zeros"` or `"border"` padding. The backward pass
    computes the gradients that a tape records: the images', the points',
    or both in one pass.

    Args:
        images: float tensor of shape `(batch, *spatial, channels)`.
        points: the points' coordinates in the order `x, y[, z]`: a float
            tensor of shape `(batch, *output_shape, rank)`, or a list of
            one of shape `(batch, *output_shape)` per axis, which the
            kernel reads as they are (no stacking, and gradients for each).
        padding_mode: `"zeros"` or `"border"`.
        align_corners: `None` for coordinates in pixels (pixel `i` has its
            centre at `i`); else normalized ones, with this convention.

    Returns:
        Tensor of shape `(batch, *output_shape, channels)`.
    """
    import tensorflow as tf

    library = _library()
    options = {
        "padding": KERNEL_PADDING_MODES[padding_mode],
        "coordinates": coordinates_code(align_corners),
    }
    arrays = list(points) if isinstance(points, (list, tuple)) else [points]
    per_axis = len(arrays) > 1
    # The sizes as numbers where the graph knows them (fewer ops around
    # the kernel), else as tensors.
    static = arrays[0].shape.is_fully_defined()
    shape = arrays[0].shape.as_list() if static else tf.shape(arrays[0])
    output_dims = shape if per_axis else shape[:-1]
    # No -1 in the shape: TensorFlow cannot infer it for an empty batch.
    flat_shape = [output_dims[0], _product(output_dims[1:], static)]
    if not per_axis:
        flat_shape.append(shape[-1])
    if not static:
        flat_shape = tf.stack(flat_shape)
    flat = [tf.reshape(array, flat_shape) for array in arrays]
    # Only the gradients that a tape records are computed (both where
    # TensorFlow cannot say).
    wants_images = tape_records(images, unknown=True)
    wants_points = tape_records(*arrays, unknown=True)
    if tf.executing_eagerly() and not (wants_images or wants_points):
        # Nothing can differentiate this call: the op alone, without
        # `tf.custom_gradient`, whose wrapping (built anew each call) takes
        # about 80 us of an eager call.
        outputs = library.keras_stn_bilinear_sample(images, flat, **options)
        return _unflattened(outputs, images, arrays[0], output_dims, per_axis)

    @tf.custom_gradient
    def kernel_gradients(images, upstream, *flat):
        """The wanted gradients, from the kernel; their own gradients (a
        second derivative) through the generic sampler."""
        arguments = (images, flat, upstream)
        if wants_images and wants_points:
            grad_images, grad_points = library.keras_stn_bilinear_grad_both(
                *arguments, **options
            )
            gradients = [grad_images, *grad_points]
        elif wants_images:
            gradients = [
                library.keras_stn_bilinear_grad_images(*arguments, **options)
            ]
        else:
            gradients = library.keras_stn_bilinear_grad_points(
                *arguments, **options
            )

        def second_derivatives(*cotangents):
            grad_images, grad_flat, grad_upstream = _second_derivatives(
                images,
                flat,
                upstream,
                cotangents,
                padding_mode,
                align_corners,
                (wants_images, wants_points),
            )
            return [grad_images, grad_upstream, *grad_flat]

        return gradients, second_derivatives

    @tf.custom_gradient
    def sample_op(images, *flat):
        outputs = library.keras_stn_bilinear_sample(images, flat, **options)

        def backward(upstream):
            gradients = iter(kernel_gradients(images, upstream, *flat))
            grad_images = next(gradients) if wants_images else None
            grad_points = (
                list(gradients) if wants_points else [None] * len(flat)
            )
            return [grad_images, *grad_points]

        return outputs, backward

    outputs = sample_op(images, *flat)
    return _unflattened(outputs, images, arrays[0], output_dims, per_axis)


def _generic_gradients(
    images, flat, upstream, padding_mode, align_corners, wants
):
    """The kernel's gradients, from the generic sampler's graph.

    Args:
        images: the kernel's images.
        flat: its points, a list of one tensor (of shape `(batch, points,
            rank)`) or of one per axis.
        upstream: the outputs' gradient.
        padding_mode: `"zeros"` or `"border"`.
        align_corners: `None` for points in pixels; else the convention of
            normalized points.
        wants: whether the images' gradient and the points' are wanted.

    Returns:
        The wanted gradients: the images', then one per points tensor.
    """
    import tensorflow as tf

    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch([images, *flat])
        points = flat if len(flat) > 1 else flat[0]
        outputs = generic.sample_bilinear(
            images,
            generic.pixel_points(
                images, points, bool(align_corners), align_corners is not None
            ),
            padding_mode,
        )
    gradients = tape.gradient(
        outputs,
        [images, *flat],
        upstream,
        unconnected_gradients=tf.UnconnectedGradients.ZERO,
    )
    return (gradients[:1] if wants[0] else []) + (
        gradients[1:] if wants[1] else []
    )


def _register_gradients():
    """Enter gradients of the kernel's ops in TensorFlow's registry.

    Tapes differentiate the kernel through `_kernel_sample`'s own gradient
    functions; forward accumulators (`tf.autodiff.ForwardAccumulator`:
    forward mode, and Hessian-vector products forward over a tape's
    gradient) look the ops up in the registry. Theirs come from the generic
    sampler's graph, which is differentiable to any order.
    """
    import tensorflow as tf

    def options(op):
        padding = op.get_attr("padding")
        coordinates = op.get_attr("coordinates")
        padding_mode = next(
            name
            for name, code in KERNEL_PADDING_MODES.items()
            if code == padding
        )
        return padding_mode, (None, False, True)[coordinates]

    @tf.RegisterGradient("KerasStnBilinearSample")
    def _sample_gradients(op, upstream):
        images, *flat = op.inputs
        return _generic_gradients(
            images, flat, upstream, *options(op), (True, True)
        )

    for name, wants in GRADIENT_OPS.items():

        def gradient_gradients(op, *cotangents, wants=wants):
            images, *flat, upstream = op.inputs
            grad_images, grad_flat, grad_upstream = _second_derivatives(
                images, flat, upstream, cotangents, *options(op), wants
            )
            return [grad_images, *grad_flat, grad_upstream]

        tf.RegisterGradient(name)(gradient_gradients)


def _second_derivatives(
    images, flat, upstream, cotangents, padding_mode, align_corners, wants
):
    """The gradients of `_generic_gradients` for the cotangents of its
    results (`None` for zero ones), through the generic sampler's graph.

    Returns:
        `(grad_images, grad_flat, grad_upstream)`, `grad_flat` a list of
        one per points tensor.
    """
    import tensorflow as tf

    inputs = [images, *flat, upstream]
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(inputs)
        first = _generic_gradients(
            images, flat, upstream, padding_mode, align_corners, wants
        )
    cotangents = [
        tf.zeros_like(gradient) if cotangent is None else cotangent
        for gradient, cotangent in zip(first, cotangents, strict=True)
    ]
    gradients = tape.gradient(
        first,
        inputs,
        cotangents,
        unconnected_gradients=tf.UnconnectedGradients.ZERO,
    )
    return gradients[0], gradients[1:-1], gradients[-1]


def _product(sizes, static):
    """The product of sizes: numbers where `static`, else a tensor's."""
    import tensorflow as tf

    return math.prod(sizes) if static else tf.reduce_prod(sizes)


def _unflattened(outputs, images, points, output_dims, per_axis):
    """The kernel's outputs, `(batch, points, channels)`, in the points'
    output shape, with the static shape where the graph knows it."""
    import tensorflow as tf

    channels = images.shape[-1]
    if isinstance(output_dims, list) and channels is not None:
        return tf.reshape(outputs, [*output_dims, channels])
    output_shape = tf.concat([output_dims, tf.shape(images)[-1:]], axis=0)
    outputs = tf.reshape(outputs, output_shape)
    static_dims = points.shape if per_axis else points.shape[:-1]
    return tf.ensure_shape(outputs, [*static_dims, channels])


def tape_records(*tensors: Tensor, unknown: bool = False) -> bool:
    """Whether a gradient tape records operations on any of `tensors`.

    TensorFlow answers this with a private function only; where it is gone
    or fails, the answer is `unknown`: `False` where the sampler picks its
    path (it takes its other paths, the same numbers, slower), `True` where
    the kernel picks the gradients to compute (all of them).
    """
    should_record = private_function(
        "tensorflow.python.eager.record", "should_record_backprop"
    )
    if should_record is None:
        return unknown
    try:
        return bool(should_record(tensors))
    except Exception:  # A private API that fails means "don't know".
        return unknown


def runs_in_this_process() -> bool:
    """Whether what samples now runs in this process only, never exported.

    Eager calls do, and the graphs of Keras' own steps (`fit`, `evaluate`,
    `predict`), which Keras traces as functions of known names. Any other
    graph may be saved and converted (`model.export`, SavedModel, ONNX,
    LiteRT, a user's `tf.function`), so it must hold TensorFlow's own ops.
    Where a Keras release renames its steps, the answer is `False`: the
    sampler takes the plain ops (the same numbers, slower).
    """
    import tensorflow as tf

    if tf.executing_eagerly():
        return True
    graph = tf.compat.v1.get_default_graph()
    while graph is not None:
        if getattr(graph, "name", None) in KERAS_STEP_FUNCTIONS:
            return True
        graph = getattr(graph, "outer_graph", None)
    return False


def in_xla_compilation() -> bool:
    """Whether the current graph is compiled by XLA (`jit_compile=True`).

    TensorFlow answers this with a private function only; where it is gone
    or fails, the answer is `True`, and the sampler takes its other paths.
    """
    import tensorflow as tf

    in_xla_context = private_function(
        "tensorflow.python.ops.control_flow_util", "GraphOrParentsInXlaContext"
    )
    try:
        graph = tf.compat.v1.get_default_graph()
        return in_xla_context is None or bool(in_xla_context(graph))
    except Exception:  # A private API that fails means "don't know".
        return True


@functools.cache
def has_gpus() -> bool:
    """Whether TensorFlow sees a GPU, where the kernel does not run."""
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))


def build_kernel() -> pathlib.Path | None:
    """Build TensorFlow's kernel library (or find it built).

    Returns:
        Its path, or `None` where it could not be built.
    """
    import tensorflow as tf

    compile_flags = tf.sysconfig.get_compile_flags()
    return compiled_library(
        "tf_bilinear_sampling.cc",
        tuple(flag[2:] for flag in compile_flags if flag.startswith("-I")),
        tuple(flag for flag in compile_flags if not flag.startswith("-I"))
        + header_safe_flags(native_macros())
        + tuple(tf.sysconfig.get_link_flags()),
    )


def header_safe_flags(macros: frozenset[str]) -> tuple[str, ...]:
    """Flags that keep `-march=native` off what TensorFlow's headers break on.

    The Eigen of TensorFlow 2.21 does not compile with AVX512-FP16
    (`PacketMathFP16.h`: "expected initializer before '<'"), which
    `-march=native` enables on Intel's Sapphire Rapids and later; the kernel
    computes in float32 and float64, so it loses nothing without it.

    Args:
        macros: what the compiler defines for this processor
            (`build.native_macros`).

    Returns:
        The flags to add to the kernel's build.

    Example:

    >>> header_safe_flags(frozenset({"__AVX512F__", "__AVX512FP16__"}))
    ('-mno-avx512fp16',)
    """
    return ("-mno-avx512fp16",) if "__AVX512FP16__" in macros else ()


@functools.cache
def _library():
    """The kernel's ops, loaded (built on first use), or `None`."""
    import tensorflow as tf

    path = build_kernel()
    if path is None:
        return None
    library = tf.load_op_library(str(path))
    _register_gradients()
    return library
