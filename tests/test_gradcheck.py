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
