"""The sampler as XLA computations on the TensorFlow backend.

Where the C++ kernel's TensorFlow ops (`cpp_kernel.tensorflow_ops`) do not run
(other modes and padding modes, inference, XLA compilation, GPUs, no compiler),
the sampler runs as XLA clusters.

Keras compiles a TensorFlow model's training step into a graph but, on a CPU,
not with XLA (`jit_compile="auto"`), so each of the generic sampler's
dozens of small ops runs as its own kernel, with its own memory pass. Run
through `tf.function(jit_compile=True)`, the same ops become one XLA
cluster, which fuses the elementwise work around the gather: the same
computation, so the same numbers up to float rounding.

The backward pass is one more cluster per argument, each of which computes
that argument's gradient from the arguments alone (recomputing what it needs
of the forward pass). The graph runs only the clusters whose gradients are
used: a transformer in front of a network needs the gradient for its grid,
not the one for its input images, a scatter-add that is the costliest part
on feature maps. Against one cluster for the whole backward pass (which
computes both gradients, from the forward pass's saved corner values),
`benchmarks/run.py` measured, for both gradients, 1.56x against 2.56x
PyTorch's time on 64x64x32 feature maps, 1.38x against 2.08x on volumes and
5.39x against 3.63x at MNIST size (three small clusters cost more than two
there); an ST-CNN's training step 1.12x against 1.19x the CNN's; and peak
memory 5.2-6.0x against 12.7x PyTorch's at 8x224x224x3 (docs/benchmarks.md).
The clusters compile once per input shape and are inlined where the caller
already compiles with XLA.
"""

import functools

from keras_stn.ops.sampling import generic
from keras_stn.ops.sampling.options import SamplingOptions
from keras_stn.typing import Tensor


def sample(
    images: Tensor, points: Tensor | list[Tensor], options: SamplingOptions
) -> Tensor:
    """The generic sampler as XLA clusters: the arguments of
    `keras_stn.ops.sampling.generic.sample`; points made pixels outside."""
    mode, padding_mode, align_corners, normalized = options
    points = generic.pixel_points(images, points, align_corners, normalized)
    return xla_compiled(
        generic.sample_finite_pixels,
        images,
        points,
        mode=mode,
        padding_mode=padding_mode,
        align_corners=align_corners,
    )


def xla_compiled(function, *tensors: Tensor, **options) -> Tensor:
    """Call `function(*tensors, **options)` compiled by TensorFlow's XLA.

    Args:
        function: a function of tensors (possibly lists of tensors) and of
            hashable options that select what it computes, returning one
            tensor.
        *tensors: its tensor arguments, each differentiable.
        **options: its other arguments, fixed at compile time.

    Returns:
        What `function` returns, with a gradient for each argument computed
        by a cluster of its own.
    """
    return _compiled(function, tuple(sorted(options.items())))(*tensors)


@functools.cache
def _compiled(function, options):
    """Compile `function`: its forward pass and one gradient per argument."""
    import tensorflow as tf

    function = functools.partial(function, **dict(options))
    forward = tf.function(function, jit_compile=True)

    @functools.cache
    def gradient_of_argument(index):
        def gradient(tensors, upstream):
            with tf.GradientTape() as tape:
                tape.watch(tensors[index])
                outputs = function(*tensors)
            return tape.gradient(
                outputs,
                tensors[index],
                upstream,
                unconnected_gradients=tf.UnconnectedGradients.ZERO,
            )

        return tf.function(gradient, jit_compile=True)

    def call(*tensors):
        gradients = [gradient_of_argument(i) for i in range(len(tensors))]

        @tf.custom_gradient
        def compiled(*flat_tensors):
            arguments = tf.nest.pack_sequence_as(tensors, flat_tensors)

            def backward(upstream):
                return tf.nest.flatten(
                    [gradient(arguments, upstream) for gradient in gradients]
                )

            return forward(*arguments), backward

        return compiled(*tf.nest.flatten(tensors))

    return call
