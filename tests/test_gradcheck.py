"""gradcheck itself: it must pass right gradients and catch wrong ones."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet as xn
from xpnet import functional as F


def test_catches_a_wrong_gradient(make):
    y = make(np.zeros((3, 2)))

    def doubled(z):
        loss, grad = F.mean_squared_error(z, y)
        return loss, 2.0 * grad

    error = xn.gradcheck(doubled, make(np.arange(6.0).reshape(3, 2) + 0.5))[0]
    assert error == pytest.approx(0.5, rel=1e-6)


def test_passes_a_right_gradient_and_casts_to_float64(make):
    z = make(np.linspace(-2, 2, 8).reshape(4, 2), "float32")
    y = make(np.ones((4, 2)), "float32")
    assert xn.gradcheck(F.mean_squared_error, z, y)[0] < 1e-9


def test_several_inputs(make):
    a, b = make([[1.0, 2.0]]), make([[3.0], [4.0]])

    def product(a, b):  # d(sum(a @ b))/da = b.T, /db = a.T for these shapes
        return a @ b, (b.T, a.T)

    errors = xn.gradcheck(product, a, b, wrt=(0, 1))
    assert errors == {0: pytest.approx(0.0, abs=1e-9), 1: pytest.approx(0.0, abs=1e-9)}


def test_zero_gradients_give_zero_error(make):
    assert (
        xn.gradcheck(lambda x: (F.step(x), F.step_backward(x, x, x)), make([0.5, -0.5]))[0] == 0.0
    )


def test_bad_arguments(make):
    z = make([1.0])
    with pytest.raises(ValueError, match="wrt must name at least one input"):
        xn.gradcheck(F.mean_squared_error, z, z, wrt=())
    with pytest.raises(ValueError, match="wrt position 2 is out of range"):
        xn.gradcheck(F.mean_squared_error, z, z, wrt=(2,))
    with pytest.raises(ValueError, match=r"returned 1 gradient\(s\) for 2 inputs"):
        xn.gradcheck(F.mean_squared_error, z, z, wrt=(0, 1))


def _regularized(placement):
    model = xn.Sequential(
        [
            xn.layers.Dense(3, input_dim=2, kernel_regularizer=xn.regularizers.L2(5.0)),
            xn.layers.BatchNormalization(momentum=0.5),
            xn.layers.Dense(1),
        ],
        backend=placement.name, device=placement.device, dtype="float64", seed=1,
    )  # fmt: skip
    model.compile(loss="mse", optimizer="sgd")
    return model


def test_a_model_check_includes_the_penalty(placement, monkeypatch):
    x, y = np.arange(12.0).reshape(6, 2) / 6, np.linspace(-1, 1, 6)
    model = _regularized(placement)
    assert max(xn.gradcheck(model, x, y).values()) < 1e-6
    # Without the penalty's gradient the kernel's check fails: the checked
    # loss does include the penalty.
    monkeypatch.setattr(xn.layers.Layer, "add_regularization_gradients", lambda self: None)
    assert xn.gradcheck(model, x, y)["dense/kernel"] > 0.1


def test_training_mode_restores_the_moving_statistics(placement):
    x, y = np.arange(12.0).reshape(6, 2) / 6, np.linspace(-1, 1, 6)
    model = _regularized(placement)
    before = model.get_weights()
    errors = xn.gradcheck(model, x, y, training=True)
    assert max(errors.values()) < 1e-6, errors
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
