"""Data-parallel training of a spatial transformer model, one engine per run.

Run as a script by `test_distribution.py`:

    XLA_FLAGS=--xla_force_host_platform_device_count=2 \
        python distribution_worker.py RESULTS_FOLDER

(the flag, which JAX reads when it is imported, matters on JAX only) trains
the same small ST-CNN for a few SGD steps from the same initial weights
(drawn with NumPy, so the same on every backend) on the same global batches,
once on one device and once data-parallel over two CPU devices or
processes, with the engine of `KERAS_BACKEND`:

- jax: `keras.distribution.DataParallel` over two virtual CPU devices,
  with `fit`;
- tensorflow: `tf.distribute.MirroredStrategy` over two logical CPU devices,
  with `fit`;
- torch: `torch.nn.parallel.DistributedDataParallel` in two processes over
  gloo, with a plain PyTorch training loop around the Keras model (a
  `torch.nn.Module` on this backend); the one-device run uses the same loop.

It writes to `RESULTS_FOLDER`: `initial.npz`, `single.npz` and
`parallel.npz` (the weights by `weight_key`, and the transformer's theta and
outputs on the training images: before training, after training on one
device, after data-parallel training), and `replicas.json`, what the
data-parallel run saw of its replicas; on torch also each process's
`parallel_rank<r>.npz`.
"""

import contextlib
import json
import re
import sys
from pathlib import Path

import keras
import numpy as np

from keras_stn import SpatialTransformer

BACKEND = keras.backend.backend()
REPLICAS = 2
INPUT_SHAPE = (16, 16, 1)
OUTPUT_SIZE = (12, 12)
CLASSES = 3
GLOBAL_BATCH = 8
STEPS = 4
LEARNING_RATE = 0.5


def training_data():
    """The training images and labels: `STEPS` global batches, in order.

    Returns:
        `(images, labels)`: float32 `(STEPS * GLOBAL_BATCH, *INPUT_SHAPE)`,
        a bright square at a random place on a dim noisy background, and
        int32 labels, the square's size class.
    """
    rng = np.random.default_rng(0)
    count = STEPS * GLOBAL_BATCH
    images = 0.1 * rng.random((count, *INPUT_SHAPE), dtype=np.float32)
    labels = rng.integers(0, CLASSES, count).astype("int32")
    for image, label in zip(images, labels, strict=True):
        size = 3 + 2 * label
        row, column = rng.integers(0, INPUT_SHAPE[0] - size, 2)
        image[row : row + size, column : column + size] = 1.0
    return images, labels


def build_model():
    """The ST-CNN, its weights set from NumPy (not from a backend's seed).

    The theta regressor gets a small random kernel and a bias near the
    identity, so that theta depends on the image from the first step.

    Returns:
        An uncompiled `keras.Sequential` that returns logits.
    """
    model = keras.Sequential(
        [
            keras.Input(INPUT_SHAPE),
            SpatialTransformer(output_size=OUTPUT_SIZE, name="transformer"),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(CLASSES),
        ]
    )
    rng = np.random.default_rng(1)
    weights = []
    for variable in model.weights:
        shape = tuple(variable.shape)
        if len(shape) == 1:
            value = rng.normal(0.0, 0.01, shape)
        else:
            value = rng.normal(0.0, 1.0 / np.sqrt(np.prod(shape[:-1])), shape)
        if "theta_regressor" in variable.path:
            if len(shape) == 1:
                value = np.array([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]) + value
            else:
                value = 0.05 * value
        weights.append(value.astype("float32"))
    model.set_weights(weights)
    return model


def weight_key(index, variable):
    """A name for a model's variable, the same in two copies of the model.

    Keras numbers the layers of a second copy (`conv2d_1`), so the name is
    the index, then the path without the model's name and layer numbers.
    """
    path = variable.path.split("/", 1)[1]
    return f"weight/{index:02d}/{re.sub(r'_[0-9]+(?=/)', '', path)}"


def results(model, images):
    """The model's weights, and the transformer's theta and outputs.

    Args:
        model: a model from `build_model`.
        images: the images on which to evaluate the transformer.

    Returns:
        A dict of NumPy arrays: each variable under its `weight_key`,
        `theta` and `outputs`.
    """
    layer = model.get_layer("transformer")
    values = {
        weight_key(index, variable): keras.ops.convert_to_numpy(variable.value)
        for index, variable in enumerate(model.weights)
    }
    values["theta"] = keras.ops.convert_to_numpy(layer.compute_theta(images))
    values["outputs"] = keras.ops.convert_to_numpy(layer(images))
    return values


def compile_for_sgd(model):
    """Compile `model` for plain SGD on the mean cross-entropy."""
    model.compile(
        optimizer=keras.optimizers.SGD(LEARNING_RATE),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )


def fit(model, images, labels):
    """Train a compiled `model` on the global batches in order: one epoch."""
    model.fit(images, labels, batch_size=GLOBAL_BATCH, shuffle=False, verbose=0)


def fit_with_sgd(model, images, labels):
    """Compile `model` for SGD and train it with `fit`."""
    compile_for_sgd(model)
    fit(model, images, labels)


def train_on_one_device(folder, train):
    """Train a fresh model with `train(model, images, labels)`.

    Writes `initial.npz` and `single.npz` to `folder`.
    """
    images, labels = training_data()
    model = build_model()
    np.savez(folder / "initial.npz", **results(model, images))
    train(model, images, labels)
    np.savez(folder / "single.npz", **results(model, images))


@contextlib.contextmanager
def probed(layer, probe):
    """Call `probe(inputs)` whenever `layer` is called (or traced)."""
    call = layer.call

    def probed_call(inputs, *args, **kwargs):
        """The layer's own call, after the probe."""
        probe(inputs)
        return call(inputs, *args, **kwargs)

    layer.call = probed_call
    try:
        yield
    finally:
        layer.call = call


def run_jax(folder):
    """Train on one device, then with `DataParallel` over two devices."""
    import jax

    devices = jax.devices()
    assert len(devices) == REPLICAS, (
        f"Expected {REPLICAS} devices, found {devices}: set XLA_FLAGS="
        f"--xla_force_host_platform_device_count={REPLICAS}"
    )
    train_on_one_device(folder, fit_with_sgd)

    distribution = keras.distribution.DataParallel(devices=devices)
    keras.distribution.set_distribution(distribution)
    model = build_model()
    compile_for_sgd(model)
    images, labels = training_data()
    layer = model.get_layer("transformer")
    shardings = []

    def probe(inputs):
        """Record how the layer's input is split when `fit` compiles."""
        jax.debug.inspect_array_sharding(inputs, callback=shardings.append)

    with probed(layer, probe):
        fit(model, images, labels)
    np.savez(folder / "parallel.npz", **results(model, images))
    kernel = layer.theta_regressor.kernel.value
    return {
        "mesh_devices": int(distribution.device_mesh.devices.size),
        "kernel_devices": len(kernel.sharding.device_set),
        "input_devices": [len(s.device_set) for s in shardings],
        "per_replica_batch": [
            s.shard_shape((GLOBAL_BATCH, *INPUT_SHAPE))[0] for s in shardings
        ],
    }


def run_tensorflow(folder):
    """Train on one device, then with `MirroredStrategy` over two."""
    import tensorflow as tf

    # Before TensorFlow initializes its devices, which the first op does.
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0],
        [tf.config.LogicalDeviceConfiguration()] * REPLICAS,
    )
    devices = [device.name for device in tf.config.list_logical_devices("CPU")]
    assert len(devices) == REPLICAS, devices
    train_on_one_device(folder, fit_with_sgd)

    strategy = tf.distribute.MirroredStrategy(devices)
    with strategy.scope():
        model = build_model()
        compile_for_sgd(model)
    images, labels = training_data()
    layer = model.get_layer("transformer")
    traces = []

    def probe(inputs):
        """Record each replica's batch and device when `fit` traces."""
        context = tf.distribute.get_replica_context()
        if context is not None:  # None in the cross-replica context.
            traces.append(
                [
                    context.num_replicas_in_sync,
                    inputs.shape[0],
                    context.replica_id_in_sync_group.device,
                ]
            )

    with probed(layer, probe):
        fit(model, images, labels)
    np.savez(folder / "parallel.npz", **results(model, images))
    kernel = layer.theta_regressor.kernel.value
    return {
        "replicas_in_sync": strategy.num_replicas_in_sync,
        # A MirroredVariable has a copy on each replica's device.
        "kernel_devices": [
            value.device for value in getattr(kernel, "values", [kernel])
        ],
        "replica_traces": traces,
    }


def torch_training_loop(model, images, labels, rank=0, world_size=1):
    """Train a Keras model (a `torch.nn.Module`) with a PyTorch loop.

    Plain SGD on the mean cross-entropy, one step per global batch.

    Args:
        model: a model from `build_model`, or it wrapped in
            `DistributedDataParallel`.
        images: the global batches' images, in order.
        labels: their labels.
        rank: this process's rank, whose share of each global batch
            it trains on.
        world_size: the number of processes sharing each global batch.

    Returns:
        The sizes of the batches this process trained on.
    """
    import torch

    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    local = GLOBAL_BATCH // world_size
    sizes = []
    for step in range(STEPS):
        start = step * GLOBAL_BATCH + rank * local
        x = torch.from_numpy(images[start : start + local])
        y = torch.from_numpy(labels[start : start + local])
        sizes.append(len(x))
        optimizer.zero_grad()
        loss = loss_fn(y, model(x, training=True))
        loss.backward()
        optimizer.step()
    return sizes


def run_torch_process(rank, folder):
    """One process of the `DistributedDataParallel` run over gloo.

    Writes `parallel_rank<rank>.npz` and `rank<rank>.json` to `folder`.
    """
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)  # Two processes share the machine's cores.
    dist.init_process_group(
        "gloo",
        init_method=f"file://{folder / 'rendezvous'}",
        rank=rank,
        world_size=REPLICAS,
    )
    try:
        images, labels = training_data()
        model = build_model()
        parallel_model = torch.nn.parallel.DistributedDataParallel(model)
        world_size = dist.get_world_size()
        sizes = torch_training_loop(
            parallel_model, images, labels, rank, world_size
        )
        np.savez(folder / f"parallel_rank{rank}.npz", **results(model, images))
        info = {"rank": rank, "world_size": world_size, "batch_sizes": sizes}
        (folder / f"rank{rank}.json").write_text(json.dumps(info))
    finally:
        dist.destroy_process_group()


def run_torch(folder):
    """Train in this process, then with DDP in two processes over gloo."""
    import torch

    train_on_one_device(folder, torch_training_loop)
    torch.multiprocessing.spawn(
        run_torch_process, args=(folder,), nprocs=REPLICAS
    )
    (folder / "parallel.npz").write_bytes(
        (folder / "parallel_rank0.npz").read_bytes()
    )
    return {
        "processes": [
            json.loads((folder / f"rank{rank}.json").read_text())
            for rank in range(REPLICAS)
        ]
    }


ENGINES = {"jax": run_jax, "tensorflow": run_tensorflow, "torch": run_torch}


if __name__ == "__main__":
    results_folder = Path(sys.argv[1])
    replicas = ENGINES[BACKEND](results_folder)
    (results_folder / "replicas.json").write_text(json.dumps(replicas))
