"""The transformer compiles once per input shape with each backend's compiler.

Counted, not timed: how many graphs `torch.compile` builds (a counting
compiler backend; `fullgraph=True` turns any graph break into an error),
how many times `tf.function` traces, how many times `jax.jit` traces. A
graph break inside the layer splits Keras' calls into separate frames that
dynamo recompiles for every new shape until it gives up, which made a model
saved with `jit_compile=True` predict for minutes on torch.
"""

import keras
import numpy as np
import pytest

from keras_stn import SpatialTransformer

from helpers import BACKEND

FAMILIES = ["affine", "attention", "similarity", "projective", "tps"]


def transformer_model(transform, input_shape):
    model = keras.Sequential(
        [
            keras.Input(input_shape),
            SpatialTransformer(transform=transform),
            keras.layers.Flatten(),
            keras.layers.Dense(3),
        ]
    )
    rng = np.random.default_rng(0)
    regressor = model.layers[0].theta_regressor
    kernel, bias = regressor.get_weights()
    regressor.set_weights([rng.normal(0.0, 0.01, kernel.shape), bias])
    return model


def counted_compilation(model):
    """`model` compiled by the backend, and a function counting its graphs."""
    if BACKEND == "torch":
        import torch

        # Earlier tests' compilations of Keras' shared frames (marked to
        # run eagerly once at their recompile limit) would hide this one's.
        torch.compiler.reset()
        graphs = []

        def counting_compiler(graph_module, example_inputs):
            graphs.append(graph_module)
            return graph_module.forward

        compiled = torch.compile(
            model, backend=counting_compiler, fullgraph=True
        )
        return compiled, lambda: len(graphs)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        compiled = tf.function(model)
        return compiled, compiled.experimental_get_tracing_count
    import jax

    traces = []

    def call(variables, x):
        traces.append(x.shape)
        trainable, non_trainable = variables
        return model.stateless_call(trainable, non_trainable, x)[0]

    jitted = jax.jit(call)
    variables = (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
    )
    return lambda x: jitted(variables, x), lambda: len(traces)


@pytest.mark.parametrize(
    "transform,input_shape",
    [(family, (12, 10, 2)) for family in FAMILIES] + [("affine", (4, 6, 5, 1))],
)
def test_compiles_once_per_input_shape(transform, input_shape):
    model = transformer_model(transform, input_shape)
    compiled, count = counted_compilation(model)
    rng = np.random.default_rng(1)

    def batch(size):
        return keras.ops.convert_to_tensor(
            rng.random((size, *input_shape), "float32")
        )

    for images in [batch(4) for _ in range(3)]:
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(compiled(images)),
            keras.ops.convert_to_numpy(model(images)),
            rtol=1e-5,
            atol=1e-5,
        )
    assert count() == 1
    # Smaller batches (as `predict` ends with): one graph per new shape at
    # most (torch makes the batch size dynamic at the first: 2 in all).
    compiled(batch(3))
    compiled(batch(2))
    assert count() <= 3
