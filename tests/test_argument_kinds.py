"""Every public function takes every kind of argument a user passes.

NumPy arrays, nested lists, the backend's tensors and variables
(`tf.Variable`, a `torch.nn.Parameter`) and Keras variables give the
numbers of NumPy arguments, and gradients reach the backend's tensors and
variables under the backend's autodiff (a tape that watches a
`tf.Variable`, as registration by gradient descent does).
"""

import keras
import numpy as np
import pytest
import torch
from keras import ops

from keras_stn import SpatialTransformer
from keras_stn import ops as stn_ops
from keras_stn import transforms
from keras_stn.ops import affine_grid
from keras_stn.ops import grid_sample
from keras_stn.ops import projective_grid
from keras_stn.ops import tps_grid
from keras_stn.ops import warp_affine

from helpers import BACKEND

RNG = np.random.default_rng(0)
IMAGES = RNG.random((2, 6, 7, 3)).astype("float32")
GRID = RNG.uniform(-1.1, 1.1, (2, 4, 5, 2)).astype("float32")
THETA = np.array(
    [[[0.9, 0.1, 0.1], [-0.2, 1.1, 0.0]], [[1.1, 0.0, -0.1], [0.1, 0.8, 0.2]]],
    "float32",
)
HOMOGRAPHY = np.concatenate(
    [THETA, np.array([[[0.05, -0.02, 1.0]]] * 2, "float32")], axis=1
)
CONTROL_POINTS = [[-1, -1], [1, -1], [-1, 1], [1, 1], [0, 0]]
TARGETS = (np.array([CONTROL_POINTS] * 2) * 0.8 + 0.05).astype("float32")
FIELD = RNG.uniform(-1.5, 1.5, (2, 6, 7, 2)).astype("float32")
QUAD = np.array([[[0, 0], [6, 0], [6, 5], [0, 5]]] * 2, "float32")
LAYER = SpatialTransformer(
    keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(4)])
)
LAYER.build(IMAGES.shape)

# Each public function, with the NumPy arguments it is called with.
FUNCTIONS = {
    "grid_sample": (
        lambda images, grid: grid_sample(
            images, grid, data_format="channels_last"
        ),
        (IMAGES, GRID),
    ),
    "warp_affine": (
        lambda images, theta: warp_affine(
            images, theta, data_format="channels_last"
        ),
        (IMAGES, THETA),
    ),
    "affine_grid": (lambda theta: affine_grid(theta, (4, 5)), (THETA,)),
    "projective_grid": (
        lambda homography: projective_grid(homography, (4, 5)),
        (HOMOGRAPHY,),
    ),
    "tps_grid": (
        lambda targets: tps_grid(targets, (4, 5), CONTROL_POINTS),
        (TARGETS,),
    ),
    "Similarity.grid": (
        lambda parameters: transforms.Similarity().grid(parameters, (4, 5)),
        (np.array([[1.0, 0.1, 0.0, 0.1]] * 2, "float32"),),
    ),
    "SpatialTransformer.warp": (LAYER.warp, (IMAGES, THETA)),
    "warp": (
        lambda images, field: stn_ops.warp(
            images, field, data_format="channels_last"
        ),
        (IMAGES, FIELD),
    ),
    "integrate_velocity": (
        lambda field: stn_ops.integrate_velocity(
            field, steps=3, data_format="channels_last"
        ),
        (FIELD * 0.3,),
    ),
    "compose_displacements": (
        lambda first, second: stn_ops.compose_displacements(
            first, second, data_format="channels_last"
        ),
        (FIELD, FIELD[::-1].copy()),
    ),
    "jacobian_determinant": (
        lambda field: stn_ops.jacobian_determinant(
            field, data_format="channels_last"
        ),
        (FIELD,),
    ),
    "invert_affine": (stn_ops.invert_affine, (THETA,)),
    "compose_affine": (stn_ops.compose_affine, (THETA, THETA[::-1].copy())),
    "theta_to_pixel_matrix": (
        lambda theta: stn_ops.theta_to_pixel_matrix(theta, (6, 7), (4, 5)),
        (THETA,),
    ),
    "get_perspective_transform": (
        stn_ops.get_perspective_transform,
        (QUAD, QUAD * 1.1 + 0.3),
    ),
    "Affine.map_points": (
        transforms.Affine().map_points,
        (THETA, GRID.reshape(2, -1, 2)),
    ),
    "SpatialTransformer": (LAYER, (IMAGES,)),
}


def as_kind(array, kind):
    """`array` as a user may pass it."""
    if kind == "numpy":
        return array
    if kind == "list":
        return array.tolist()
    if kind == "keras_variable":
        return keras.Variable(array)
    if kind == "backend_variable" and BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.Variable(array)
    if kind == "backend_variable" and BACKEND == "torch":
        return torch.nn.Parameter(torch.tensor(array))
    # JAX has no variables: its arrays are what a user passes.
    return ops.convert_to_tensor(array)


def differentiable(argument):
    """What the backend differentiates for an argument, or `None`: the
    backend variable behind a Keras variable, tensors and variables."""
    if isinstance(argument, keras.Variable):
        return argument.value
    if isinstance(argument, (list, np.ndarray)):
        return None
    return argument


def call_with_gradients(function, arguments):
    """Call `function` under the backend's autodiff; the value, and whether
    each tensor or variable argument gets a gradient of the sum of squares
    of the value."""
    targets = [differentiable(a) for a in arguments]
    targets = [t for t in targets if t is not None]
    if BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(targets)
            value = function(*arguments)
            loss = tf.reduce_sum(value**2)
        grads = tape.gradient(loss, targets)
    elif BACKEND == "torch":
        for target in targets:
            target.requires_grad_(True)
        value = function(*arguments)
        grads = []
        if targets:
            grads = torch.autograd.grad(
                (value**2).sum(), targets, allow_unused=True
            )
    else:
        import jax

        indices = [
            i for i, a in enumerate(arguments) if isinstance(a, jax.Array)
        ]

        def loss(*chosen):
            full = list(arguments)
            for index, argument in zip(indices, chosen, strict=True):
                full[index] = argument
            return jax.numpy.sum(function(*full) ** 2)

        value = function(*arguments)
        grads = (
            jax.grad(loss, argnums=tuple(range(len(indices))))(
                *(arguments[i] for i in indices)
            )
            if indices
            else []
        )
    return ops.convert_to_numpy(value), [g is not None for g in grads]


KINDS = ("list", "backend_tensor", "backend_variable", "keras_variable")


@pytest.mark.parametrize(
    "name,kind",
    [
        (name, kind)
        for name in FUNCTIONS
        for kind in KINDS
        # Keras layers take a list as several inputs.
        if (name, kind) != ("SpatialTransformer", "list")
    ],
)
def test_every_argument_kind_gives_the_numbers_of_numpy(name, kind):
    function, arrays = FUNCTIONS[name]
    expected = ops.convert_to_numpy(function(*arrays))
    arguments = [as_kind(array, kind) for array in arrays]
    value, has_gradients = call_with_gradients(function, arguments)
    np.testing.assert_allclose(value, expected, rtol=1e-6, atol=1e-6)
    assert all(has_gradients), has_gradients
    assert has_gradients or kind == "list" or BACKEND == "jax"


def test_keras_variables_are_optimized_by_a_keras_optimizer():
    """An image optimized directly, as registration by gradient descent
    does: the sampler's gradient moves a `keras.Variable`."""
    target = warp_affine(IMAGES, THETA, data_format="channels_last")
    image = keras.Variable(np.zeros_like(IMAGES))
    optimizer = keras.optimizers.SGD(0.2)

    def loss_of(image):
        warped = warp_affine(image, THETA, data_format="channels_last")
        return ops.sum((warped - target) ** 2)

    start = float(ops.convert_to_numpy(loss_of(image)))
    for _ in range(3):
        if BACKEND == "tensorflow":
            import tensorflow as tf

            with tf.GradientTape() as tape:
                loss = loss_of(image)
            grads = tape.gradient(loss, [image.value])
        elif BACKEND == "torch":
            grads = torch.autograd.grad(loss_of(image), [image.value])
        else:
            import jax

            grads = [jax.grad(loss_of)(image.value)]
        optimizer.apply(grads, [image])
    assert float(ops.convert_to_numpy(loss_of(image))) < 0.5 * start
