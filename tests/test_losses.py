"""The registration losses against NumPy re-implementations."""

import keras
import numpy as np
import pytest
from keras import ops
from numpy.lib.stride_tricks import sliding_window_view

from keras_stn.losses import DisplacementSmoothness
from keras_stn.losses import LocalNormalizedCrossCorrelation

CL = "channels_last"


def numpy_smoothness(field, penalty):
    """Per example: the mean over axes of the mean penalized differences."""
    rank = field.ndim - 2
    per_axis = []
    for axis in range(1, rank + 1):
        difference = np.diff(field, axis=axis)
        values = difference**2 if penalty == "l2" else np.abs(difference)
        per_axis.append(values.reshape(len(field), -1).mean(axis=1))
    return np.mean(per_axis, axis=0)


def numpy_ncc(fixed, moved, window, epsilon=1e-5):
    """Per example, by explicit windows over zero-padded images."""
    rank = fixed.ndim - 2
    pad = [(0, 0)] + [((w - 1) // 2, w // 2) for w in window] + [(0, 0)]
    results = []
    for a, b in zip(fixed, moved, strict=True):
        a = np.pad(a, pad[1:]).astype("float64")
        b = np.pad(b, pad[1:]).astype("float64")
        shape = (*window, a.shape[-1])
        # (*spatial, 1, *window, channels): every window, whole channels.
        wa = np.squeeze(sliding_window_view(a, shape), axis=rank)
        wb = np.squeeze(sliding_window_view(b, shape), axis=rank)
        axes = tuple(range(-rank - 1, 0))
        ca = wa - wa.mean(axis=axes, keepdims=True)
        cb = wb - wb.mean(axis=axes, keepdims=True)
        cross = (ca * cb).sum(axis=axes)
        var_a = (ca * ca).sum(axis=axes)
        var_b = (cb * cb).sum(axis=axes)
        results.append(-np.mean(cross**2 / (var_a * var_b + epsilon)))
    return np.array(results)


@pytest.mark.parametrize("penalty", ("l2", "l1"))
@pytest.mark.parametrize("shape", ((2, 7, 6, 2), (2, 4, 5, 6, 3)))
def test_smoothness_matches_numpy(shape, penalty):
    field = np.random.default_rng(0).normal(size=shape).astype("float32")
    loss = DisplacementSmoothness(penalty, data_format=CL, reduction=None)
    out = loss(np.zeros_like(field), field)
    np.testing.assert_allclose(
        ops.convert_to_numpy(out), numpy_smoothness(field, penalty), rtol=1e-5
    )
    channels_first = DisplacementSmoothness(
        penalty, data_format="channels_first"
    )
    np.testing.assert_allclose(
        float(channels_first(0.0 * field, np.moveaxis(field, -1, 1))),
        numpy_smoothness(field, penalty).mean(),
        rtol=1e-5,
    )


@pytest.mark.parametrize(
    "shape,window",
    [((2, 12, 10, 1), 9), ((1, 9, 8, 2), (3, 4)), ((2, 6, 7, 5, 1), 3)],
)
def test_local_ncc_matches_numpy(shape, window):
    rng = np.random.default_rng(1)
    fixed = rng.random(shape).astype("float32")
    moved = (fixed + 0.5 * rng.random(shape)).astype("float32")
    moved[:, :3] = 0.0  # flat windows, where epsilon keeps the ratio finite
    rank = len(shape) - 2
    windows = (window,) * rank if isinstance(window, int) else window
    loss = LocalNormalizedCrossCorrelation(
        window, data_format=CL, reduction=None
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(loss(fixed, moved)),
        numpy_ncc(fixed, moved, windows),
        rtol=2e-4,
        atol=1e-5,
    )


def test_losses_round_trip_and_train():
    for loss in (
        DisplacementSmoothness("l1", data_format=CL),
        LocalNormalizedCrossCorrelation((5, 3), epsilon=1e-3, data_format=CL),
    ):
        restored = keras.losses.deserialize(keras.losses.serialize(loss))
        assert type(restored) is type(loss)
        assert restored.get_config() == loss.get_config()
    rng = np.random.default_rng(2)
    x = rng.random((4, 8, 8, 1)).astype("float32")
    model = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Conv2D(1, 3, padding="same")]
    )
    model.compile("sgd", LocalNormalizedCrossCorrelation(3, data_format=CL))
    history = model.fit(x, x, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_losses_reject_bad_arguments():
    with pytest.raises(ValueError, match="`penalty`"):
        DisplacementSmoothness("l3")
    with pytest.raises(ValueError, match="`window`"):
        LocalNormalizedCrossCorrelation(0)
    with pytest.raises(ValueError, match="`window`"):
        LocalNormalizedCrossCorrelation((3, 3, 3), data_format=CL)(
            np.zeros((1, 4, 4, 1)), np.zeros((1, 4, 4, 1))
        )
    with pytest.raises(ValueError, match="`y_pred`"):
        DisplacementSmoothness()(np.zeros((4, 4)), np.zeros((4, 4)))
