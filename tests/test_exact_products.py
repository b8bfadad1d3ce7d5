"""`exact_products.matmul` against NumPy, on both of its ways, every backend."""

import keras
import numpy as np
import pytest
import torch
from keras import ops

from keras_stn.ops import exact_products
from keras_stn.ops.exact_products import full_precision_matmul
from keras_stn.ops.exact_products import matmul
from keras_stn.ops.sampling.cpp_kernel import tensorflow_ops

from helpers import BACKEND
from helpers import assert_gradients_match_finite_differences
from helpers import float64_enabled

# (a's shape, b's shape): batches, and a batch of one that broadcasts, as
# the thin-plate spline's grid multiplies one basis by each example's
# targets.
SHAPES = [((3, 5, 4), (3, 4, 2)), ((1, 7, 16), (3, 16, 2)), ((6, 3), (3, 3))]


@pytest.fixture(params=["matrix product", "sum of products"])
def way(request, monkeypatch):
    """Each way of `matmul`: the one this CPU takes, and the one GPUs with
    TF32 take, forced."""
    if request.param == "sum of products":
        monkeypatch.setattr(
            exact_products, "full_precision_matmul", lambda like: False
        )
    return request.param


@pytest.mark.parametrize("shapes", SHAPES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_matches_numpy(way, shapes, dtype):
    rng = np.random.default_rng(0)
    a, b = (rng.normal(size=shape) for shape in shapes)
    with float64_enabled():
        out = matmul(a.astype(dtype), b.astype(dtype))
        assert keras.backend.standardize_dtype(out.dtype) == dtype
        tolerance = 1e-6 if dtype == "float32" else 1e-14
        np.testing.assert_allclose(
            ops.convert_to_numpy(out), a @ b, rtol=tolerance, atol=tolerance
        )


def test_gradients_match_finite_differences(way):
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(1, 7, 16)), rng.normal(size=(3, 16, 2))
    upstream = rng.normal(size=(3, 7, 2))

    def loss(a, b):
        return ops.sum(ops.multiply(matmul(a, b), upstream))

    assert_gradients_match_finite_differences(
        loss, [a, b], rng, step=1e-6, rtol=1e-8
    )


def test_a_cpu_takes_the_matrix_product():
    assert full_precision_matmul(ops.zeros((2, 2)))


def test_where_tf32_may_run_it_takes_the_sum_of_products(monkeypatch):
    if BACKEND == "torch":
        # The meta device stands for a GPU, where TF32 may be enabled.
        assert not full_precision_matmul(torch.zeros((2, 2), device="meta"))
    elif BACKEND == "tensorflow":
        import tensorflow as tf

        monkeypatch.setattr(tensorflow_ops, "has_gpus", lambda: True)
        for tf32 in (True, False):
            monkeypatch.setattr(
                tf.config.experimental,
                "tensor_float_32_execution_enabled",
                lambda tf32=tf32: tf32,
            )
            assert full_precision_matmul(tf.zeros((2, 2))) is not tf32
    else:
        # JAX asks every device for the highest precision instead.
        import jax

        a = np.ones((2, 2), "float32")
        assert "HIGHEST" in str(jax.make_jaxpr(matmul)(a, a))
