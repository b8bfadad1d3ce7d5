"""Matrix products in full float32 precision on every device.

GPUs may multiply float32 matrices in reduced precision: TensorFlow and JAX
use TF32 tensor cores on NVIDIA GPUs from Ampere on by default, whose
10-bit mantissa would move sampling points by up to about 1e-3 of the
image. Sums of elementwise products never do, so the grid generators write
their small products out; but a sum of products holds every product in
memory: on a CPU, where matrix products are always exact, the thin-plate
spline's grid made the MNIST addition's 2xST-FCN train at 33.5 ms a step
against 20.3 ms with matrix products (torch, one thread). `matmul` takes
the matrix product wherever it is exact, and the sum of products
elsewhere.
"""

import keras
from keras import ops

from keras_stn.ops.sampling.cpp_kernel import tensorflow_ops
from keras_stn.typing import Tensor


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """Batched matrix product `a @ b`, in full precision on every device.

    Args:
        a: float tensor of shape `(..., n, k)`.
        b: float tensor of shape `(..., k, m)`, of the dtype of `a`; the
            leading axes broadcast against those of `a`.

    Returns:
        Tensor of shape `(..., n, m)`: the matrix product where the device
        computes it in full precision (`full_precision_matmul`), else the
        same sums of products written out elementwise.

    Example:

    >>> import numpy as np
    >>> a = np.array([[1.0, 2.0], [3.0, 4.0]], "float32")
    >>> ops.convert_to_numpy(matmul(a, a)).tolist()
    [[7.0, 10.0], [15.0, 22.0]]
    """
    a, b = ops.convert_to_tensor(a), ops.convert_to_tensor(b)
    if not full_precision_matmul(a):
        return ops.sum(a[..., :, :, None] * b[..., None, :, :], axis=-2)
    # The backends' own products: Keras' `ops.matmul` computes float64 in
    # float32 on torch.
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.numpy.matmul(a, b, precision=jax.lax.Precision.HIGHEST)
    if backend == "torch":
        import torch

        return torch.matmul(a, b)
    import tensorflow as tf

    return tf.linalg.matmul(a, b)


def full_precision_matmul(like: Tensor) -> bool:
    """Whether matrix products of tensors like `like` are exact here.

    Args:
        like: a tensor of the backend, where the product will run.

    Returns:
        `True` on JAX (`matmul` asks for the highest precision), on torch
        for tensors on the CPU, and on TensorFlow where no GPU is visible
        or TF32 execution is disabled; `False` elsewhere (torch on a GPU
        may have TF32 enabled by the user, and other backends are not
        asked).
    """
    backend = keras.backend.backend()
    if backend == "jax":
        return True
    if backend == "torch":
        return like.device.type == "cpu"
    if backend == "tensorflow":
        import tensorflow as tf

        return not (
            tf.config.experimental.tensor_float_32_execution_enabled()
            and tensorflow_ops.has_gpus()
        )
    return False
