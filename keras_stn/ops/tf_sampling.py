"""The bilinear sampler as a C++ kernel on TensorFlow's CPU, in training.

Where a gradient tape records the sampler (a training step), bilinear
(trilinear) sampling with `"zeros"` or `"border"` padding runs its forward
pass and each argument's gradient as TensorFlow ops of the C++ kernel of
`keras_stn/ops/kernels/bilinear_sampling.h`, on TensorFlow's intra-op
threads, with the generic sampler's numbers (its rule for NaN and infinite
points included) up to float rounding. The graph runs only the gradients it
uses: a transformer at a model's input needs its grid's, not its input
images'.

Elsewhere the sampler takes its other paths: without a tape (inference, and
what `model.export` traces, so that an artifact holds only TensorFlow's own
ops), inside XLA compilation (`jit_compile=True`; the kernel is no XLA
op), where TensorFlow sees a GPU, and where no C++ compiler can build the
kernel (`keras_stn.ops.compiled_kernels`).
"""

import functools

import keras

from keras_stn.ops.compiled_kernels import KERNEL_PADDING_MODES
from keras_stn.ops.compiled_kernels import compiled_library
from keras_stn.ops.compiled_kernels import kernel_samples
from keras_stn.typing import Tensor


def has_tf_kernel(
    images: Tensor, points: list[Tensor], mode: str, padding_mode: str
) -> bool:
    """Whether `tf_sample_pixels` applies to these arguments here.

    Args:
        images: the channels-last batch to sample.
        points: its pixel coordinates, one tensor per axis.
        mode: the sampling mode.
        padding_mode: the padding mode.

    Returns:
        `True` on the TensorFlow backend where the kernel computes this
        sampling (`keras_stn.ops.compiled_kernels.kernel_samples`), a
        gradient tape records it, outside XLA compilation, on a machine
        without GPUs, and where the kernel could be built.
    """
    if keras.backend.backend() != "tensorflow" or not kernel_samples(
        images, points, mode, padding_mode
    ):
        return False
    import tensorflow as tf
    from tensorflow.python.eager import record
    from tensorflow.python.ops import control_flow_util

    graph = tf.compat.v1.get_default_graph()
    return (
        record.should_record_backprop([images, *points])
        and not control_flow_util.GraphOrParentsInXlaContext(graph)
        and not _has_gpus()
        and _library() is not None
    )


def tf_sample_pixels(
    images: Tensor, points: list[Tensor], padding_mode: str
) -> Tensor:
    """Sample channels-last images bilinearly at pixel coordinates.

    The contract of `keras_stn.ops.grid_sample.sample_pixels` for bilinear
    sampling with `"zeros"` or `"border"` padding.

    Args:
        images: float tensor of shape `(batch, *spatial, channels)`.
        points: pixel coordinates, one tensor per spatial axis in the order
            `x, y[, z]`, each of shape `(batch, *output_shape)`.
        padding_mode: `"zeros"` or `"border"`.

    Returns:
        Tensor of shape `(batch, *output_shape, channels)`.
    """
    import tensorflow as tf

    library = _library()
    padding = KERNEL_PADDING_MODES[padding_mode]
    shape = tf.shape(points[0])
    stacked = tf.stack(
        [tf.reshape(point, (shape[0], -1)) for point in points], axis=-1
    )

    @tf.custom_gradient
    def sample(images, stacked):
        outputs = library.keras_stn_bilinear_sample(
            images, stacked, padding=padding
        )

        def backward(upstream):
            return [
                gradient(images, stacked, upstream, padding=padding)
                for gradient in (
                    library.keras_stn_bilinear_grad_images,
                    library.keras_stn_bilinear_grad_points,
                )
            ]

        return outputs, backward

    outputs = sample(images, stacked)
    output_shape = tf.concat([shape, tf.shape(images)[-1:]], axis=0)
    outputs = tf.reshape(outputs, output_shape)
    # The static shape, where the graph knows it.
    return tf.ensure_shape(outputs, [*points[0].shape, images.shape[-1]])


@functools.cache
def _has_gpus():
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))


@functools.cache
def _library():
    """The kernel's ops, loaded (built on first use), or `None`."""
    import tensorflow as tf

    compile_flags = tf.sysconfig.get_compile_flags()
    path = compiled_library(
        "tf_bilinear_sampling.cc",
        tuple(flag[2:] for flag in compile_flags if flag.startswith("-I")),
        tuple(flag for flag in compile_flags if not flag.startswith("-I"))
        + tuple(tf.sysconfig.get_link_flags()),
    )
    return None if path is None else tf.load_op_library(str(path))
