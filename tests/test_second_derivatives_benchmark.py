"""The second-derivative benchmark, `benchmarks/second_derivatives.py`: its
penalty steps on the default and the generic path compute the same
gradient, so that the ratio of their times compares one computation."""

import numpy as np
import pytest
from keras import ops

import second_derivatives


# One channel and three: on torch, one-channel images take PyTorch's own
# sampler on the default path, several channels keras-stn's C++ kernel.
@pytest.mark.parametrize("size", ((2, 6, 7, 1), (2, 6, 7, 3)))
def test_penalty_steps_agree_on_both_paths(size):
    inputs = second_derivatives.random_inputs(size)
    penalty, grad_theta = second_derivatives.penalty_step(*inputs)()
    generic_penalty, generic_grad_theta = second_derivatives.penalty_step(
        *inputs, "keras"
    )()
    generic_grad_theta = ops.convert_to_numpy(generic_grad_theta)
    assert generic_grad_theta.shape == (2, 2, 3)
    assert np.abs(generic_grad_theta).max() > 1e-6, "no second derivative"
    np.testing.assert_allclose(
        ops.convert_to_numpy(penalty),
        ops.convert_to_numpy(generic_penalty),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(grad_theta),
        generic_grad_theta,
        rtol=1e-4,
        atol=1e-5 * np.abs(generic_grad_theta).max(),
    )


def test_first_order_step_differentiates_the_loss():
    inputs = second_derivatives.random_inputs((2, 6, 7, 3))
    loss, (grad_images, grad_theta) = second_derivatives.first_order_step(
        *inputs
    )()
    assert ops.convert_to_numpy(grad_images).shape == (2, 6, 7, 3)
    assert ops.convert_to_numpy(grad_theta).shape == (2, 2, 3)
    assert np.abs(ops.convert_to_numpy(grad_theta)).max() > 0
    assert np.isfinite(ops.convert_to_numpy(loss))
