"""Time keras-stn's inference path against PyTorch's `grid_sample`.

Two measurements, side by side in one process on the current backend:

- sampling: for each size, channels-last images sampled (bilinear, zero
  padding) at a random grid over [-1.2, 1.2] of their own spatial size.
  The reference is `torch.nn.functional.grid_sample` under
  `torch.no_grad()`, channels first, as PyTorch users run it. keras-stn
  runs as a one-layer functional Keras model on the images and the grid,
  whose layer calls `keras_stn.ops.grid_sample`, through each way Keras
  predicts: `predict_on_batch`, `predict` of the whole batch, and a
  compiled call of the model, `model(x, training=False)` (`jit`: `jax.jit`
  of `stateless_call` on JAX; on TensorFlow, `predict_step`: Keras'
  compiled predict step, and `tf_function`: a `tf.function` of one's own,
  whose graph may be exported and so holds TensorFlow's own ops, timed but
  not bound by the goals; on torch, `eager`: the call under
  `torch.no_grad()`, and `torch_compile`: that call through
  `torch.compile`). A model of the
  same inputs whose layer only slices the images to the output's size,
  timed through the same calls, is Keras' own cost around any layer
  (`trivial`). Each row gives the raw ratio `model / torch` and
  keras-stn's share, `ours = (model - trivial) / torch`, which the goals
  bound: 1.0 on feature maps and 224x224 images, 1.5 at MNIST size. On
  torch, a third model whose layer calls PyTorch's `grid_sample` itself
  (`PyTorchGridSample`) gives the same share of PyTorch's own kernel,
  `floor = (pytorch_layer - trivial) / torch`: what Keras adds around a
  layer that samples, beyond a layer that slices, which no implementation
  of the sampler escapes.
- st_cnn: `model.predict` of a small ST-CNN on 224x224 RGB images (a
  `SpatialTransformer` with its default localization net, then the small
  CNN of `training_step.py`) against the same model whose transformer
  runs its localization net and regression but leaves the input as it is
  (`IdentityTransformer`): what the grid and the sampler add to a
  network's inference. Goal: at most 1.10.

Prints one JSON line per sampling call and size, and one for the ST-CNN.

    KERAS_BACKEND=jax python benchmarks/inference.py --sizes mnist st_cnn

`benchmarks/run.py --goals inference` runs it on every backend and prints
the ratios as tables.
"""

import keras
import numpy as np
import torch
from keras import ops

import keras_stn
from keras_stn.ops import grid_sample

from timing import BACKEND
from timing import benchmark_main
from timing import median_seconds
from timing import round_seconds
from training_step import ARCHITECTURES
from training_step import keras_cnn

# name: (batch, height, width, channels); the output is as large.
SIZES = {
    "mnist": (128, 28, 28, 1),
    "feature_map": (32, 64, 64, 32),
    "image_224": (8, 224, 224, 3),
}
# name: the ST-CNN's input batch.
ST_CNN_SIZES = {"st_cnn": (8, 224, 224, 3)}
# The most that `ours` (sampling) or `st_cnn / identity_cnn` may be.
GOALS = {"mnist": 1.5, "feature_map": 1.0, "image_224": 1.0, "st_cnn": 1.1}
GRID_RANGE = 1.2
# Calls whose graphs may be exported, so that they hold the backend's own
# operations by design (`docs/design/sampler-paths.md`): timed, but not
# bound by the goals. On TensorFlow, Keras' own predict step is the compiled
# call that the goals bound.
EXPORTABLE_CALLS = ("tf_function",)


class GridSample(keras.layers.Layer):
    """`keras_stn.ops.grid_sample` of channels-last images at a grid."""

    def call(self, images, grid):
        return grid_sample(images, grid, data_format="channels_last")

    def compute_output_shape(self, images_shape, grid_shape):
        return (*grid_shape[:-1], images_shape[-1])


def pytorch_grid_sample(images, grid):
    """PyTorch's `grid_sample` of channels-first torch tensors, with the
    benchmark's options (bilinear, zero padding)."""
    return torch.nn.functional.grid_sample(
        images, grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )


class PyTorchGridSample(keras.layers.Layer):
    """PyTorch's `grid_sample` of channels-last images, on torch only."""

    def call(self, images, grid):
        outputs = pytorch_grid_sample(torch.movedim(images, -1, 1), grid)
        return torch.movedim(outputs, 1, -1)

    def compute_output_shape(self, images_shape, grid_shape):
        return (*grid_shape[:-1], images_shape[-1])


class SliceToGrid(keras.layers.Layer):
    """Keras' cost around a layer: the images cut to the grid's size.

    On JAX the grid also enters, as a zero term that XLA fuses into the
    slice's copy: `jax.jit` drops the arguments a function does not use,
    and with them the grid's transfer from NumPy in `predict_on_batch` and
    `predict` (0.2 ms at 8x224x224x3), which Keras pays for any model of
    these inputs.
    """

    def call(self, images, grid):
        sliced = images[:, : grid.shape[1], : grid.shape[2]]
        if BACKEND == "jax":
            sliced = sliced + 0 * grid[:1, :1, :1, :1]
        return sliced

    def compute_output_shape(self, images_shape, grid_shape):
        return (*grid_shape[:-1], images_shape[-1])


class IdentityTransformer(keras_stn.SpatialTransformer):
    """A `SpatialTransformer` that regresses `theta` but does not warp.

    Its localization net and regression layer run as the transformer's do;
    `theta` then enters the output as `0 * sum(theta)`, so that no compiler
    prunes them, and the input passes through.
    """

    def warp(self, inputs, theta, training=None):
        return inputs + ops.cast(0 * ops.sum(theta), inputs.dtype)


def random_inputs(size, seed=0):
    """Random channels-last images and a grid over [-1.2, 1.2].

    Args:
        size: `(batch, height, width, channels)`.
        seed: seed of the draws.

    Returns:
        float32 `(images, grid)` as NumPy arrays, the grid of shape `(batch,
        height, width, 2)`.
    """
    rng = np.random.default_rng(seed)
    images = rng.standard_normal(size, "float32")
    grid = rng.uniform(-GRID_RANGE, GRID_RANGE, (*size[:-1], 2))
    return images, grid.astype("float32")


def sampling_model(size, layer):
    """A functional model of `(images, grid)` whose one layer is `layer`."""
    images = keras.Input(size[1:], name="images")
    grid = keras.Input((*size[1:-1], 2), name="grid")
    return keras.Model([images, grid], layer(images, grid))


def compiled_calls(model, inputs):
    """`model(inputs, training=False)`, compiled as the backend allows.

    Args:
        model: a Keras model.
        inputs: the model's inputs, a list of NumPy arrays.

    Returns:
        A dict from name to a function of no arguments: on JAX `jit`, the
        call through `jax.jit` of `model.stateless_call`; on TensorFlow
        `predict_step`, Keras' compiled predict step (`tf.function` without
        XLA on a CPU, what `predict_on_batch` runs, without its conversions
        to and from NumPy), and `tf_function`, the call through a
        `tf.function` of one's own (`EXPORTABLE_CALLS`); on torch `eager`,
        the call under `torch.no_grad()`, and `torch_compile`, the same
        through `torch.compile`. The inputs are backend tensors already.
    """
    tensors = [ops.convert_to_tensor(array) for array in inputs]
    if BACKEND == "jax":
        import jax

        @jax.jit
        def call(trainable, non_trainable, tensors):
            outputs, _ = model.stateless_call(
                trainable, non_trainable, tensors, training=False
            )
            return outputs

        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]
        return {"jit": lambda: call(trainable, non_trainable, tensors)}
    if BACKEND == "tensorflow":
        import tensorflow as tf

        model.make_predict_function()
        predict_step = model.predict_function
        call = tf.function(
            lambda tensors: model(tensors, training=False), jit_compile=False
        )
        return {
            "predict_step": lambda: predict_step([(tensors,)]),
            "tf_function": lambda: call(tensors),
        }

    compiled = torch.compile(lambda tensors: model(tensors, training=False))

    def eager():
        with torch.no_grad():
            return model(tensors, training=False)

    def torch_compiled():
        with torch.no_grad():
            return compiled(tensors)

    return {"eager": eager, "torch_compile": torch_compiled}


def keras_calls(model, inputs):
    """Every way Keras predicts, as functions of no arguments.

    Args:
        model: a Keras model.
        inputs: the model's inputs, a list of NumPy arrays.

    Returns:
        A dict from call name (`predict_on_batch`, `predict` and those of
        `compiled_calls`) to a function of no arguments that predicts on
        `inputs`.
    """
    batch = len(inputs[0])
    return {
        "predict_on_batch": lambda: model.predict_on_batch(inputs),
        "predict": lambda: model.predict(inputs, batch_size=batch, verbose=0),
        **compiled_calls(model, inputs),
    }


def torch_reference(images, grid):
    """`torch.nn.functional.grid_sample` under `torch.no_grad()`, on
    channels-first images, ready to call."""
    images = torch.tensor(np.moveaxis(images, -1, 1))
    grid = torch.tensor(grid)

    def call():
        with torch.no_grad():
            return pytorch_grid_sample(images, grid)

    return call


def measure_sampling(name, size, goal, repeats):
    """Time sampling one batch through each call, against PyTorch.

    Args:
        name: the size's name, for the rows.
        size: `(batch, height, width, channels)`.
        goal: the most that `ours` may be.
        repeats: timed rounds.

    Returns:
        One dict per call: size name and shape, backend, call, goal, the
        median seconds of PyTorch (`torch`), of the sampling model
        (`model`) and of the trivial model (`trivial`), and the ratios
        `raw_ratio = model / torch` and `ours = (model - trivial) / torch`,
        and `ours_best`, the same of each call's fastest round: on a shared
        machine, whose load slows some rounds by up to 2x, the least
        disturbed measure of what the calls themselves cost. On torch also
        `floor`, the share of the model whose layer is `PyTorchGridSample`
        (`None` on the other backends).
    """
    inputs = list(random_inputs(size))
    models = {
        "model": sampling_model(size, GridSample()),
        "trivial": sampling_model(size, SliceToGrid()),
    }
    if BACKEND == "torch":
        models["pytorch_layer"] = sampling_model(size, PyTorchGridSample())
    functions = {"torch": torch_reference(*inputs)}
    for prefix, keras_model in models.items():
        for call, function in keras_calls(keras_model, inputs).items():
            functions[f"{prefix}/{call}"] = function
    times = round_seconds(functions, repeats)
    seconds = {name: float(np.median(values)) for name, values in times.items()}
    best = {name: min(values) for name, values in times.items()}
    rows = []
    for key in functions:
        if not key.startswith("model/"):
            continue
        call = key.removeprefix("model/")
        model_seconds = seconds[key]
        trivial_seconds = seconds[f"trivial/{call}"]
        pytorch_layer_seconds = seconds.get(f"pytorch_layer/{call}")
        rows.append(
            {
                "kind": "sampling",
                "size": name,
                "shape": size,
                "backend": BACKEND,
                "call": call,
                "goal": None if call in EXPORTABLE_CALLS else goal,
                "torch": seconds["torch"],
                "model": model_seconds,
                "trivial": trivial_seconds,
                "raw_ratio": model_seconds / seconds["torch"],
                "ours": (model_seconds - trivial_seconds) / seconds["torch"],
                "ours_best": (best[key] - best[f"trivial/{call}"])
                / best["torch"],
                "floor": None
                if pytorch_layer_seconds is None
                else (pytorch_layer_seconds - trivial_seconds)
                / seconds["torch"],
            }
        )
    return rows


def st_cnn(size, transformer):
    """The small CNN of `training_step.py` behind `transformer`."""
    architecture = ARCHITECTURES["small"]
    return keras.Sequential(
        [keras.Input(size[1:]), transformer, *keras_cnn(architecture)]
    )


def measure_st_cnn(name, size, goal, repeats):
    """Time `predict` of the ST-CNN against the one that does not warp.

    Args:
        name: the size's name, for the row.
        size: `(batch, height, width, channels)`.
        goal: the most that the ratio may be.
        repeats: timed rounds.

    Returns:
        A dict: size name and shape, backend, goal, the median seconds of
        `predict` of the ST-CNN (`st_cnn`) and of the same network with an
        `IdentityTransformer` (`identity_cnn`, the same weights), and
        their ratio.
    """
    keras.utils.set_random_seed(0)
    images, _ = random_inputs(size)
    model = st_cnn(size, keras_stn.SpatialTransformer())
    identity = st_cnn(size, IdentityTransformer())
    identity.set_weights(model.get_weights())
    seconds = median_seconds(
        {
            "st_cnn": lambda: model.predict(
                images, batch_size=len(images), verbose=0
            ),
            "identity_cnn": lambda: identity.predict(
                images, batch_size=len(images), verbose=0
            ),
        },
        repeats,
    )
    return {
        "kind": "st_cnn",
        "size": name,
        "shape": size,
        "backend": BACKEND,
        "goal": goal,
        **seconds,
        "ratio": seconds["st_cnn"] / seconds["identity_cnn"],
    }


def measure(name, repeats):
    """Time one named size of `SIZES` or `ST_CNN_SIZES`.

    Args:
        name: a key of `SIZES` (sampling) or `ST_CNN_SIZES` (the ST-CNN).
        repeats: timed rounds.

    Returns:
        The rows of `measure_sampling`, or the row of `measure_st_cnn`.
    """
    if name in ST_CNN_SIZES:
        return measure_st_cnn(name, ST_CNN_SIZES[name], GOALS[name], repeats)
    return measure_sampling(name, SIZES[name], GOALS[name], repeats)


if __name__ == "__main__":
    benchmark_main(__doc__, measure, [*SIZES, *ST_CNN_SIZES])
