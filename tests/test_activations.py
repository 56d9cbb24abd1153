"""The activation registry: names, parameters, errors."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import assert_close
from xpnet import activations
from xpnet import functional as F

SPEC_NAMES = [
    "linear",
    "relu",
    "leaky_relu",
    "elu",
    "sigmoid",
    "tanh",
    "softplus",
    "softmax",
    "gelu",
    "silu",
]


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_every_spec_name_resolves_and_runs(name, make):
    act = activations.get(name)
    x = make([[-1.5, 0.5, 2.0]])
    y = act.forward(x)
    assert_close(y, F.__dict__[name](x))
    assert tuple(act.backward(make(np.ones((1, 3))), x, y).shape) == (1, 3)


def test_none_is_linear_and_objects_pass_through():
    assert activations.get(None).name == "linear"
    relu = activations.get("relu")
    assert activations.get(relu) is relu
    assert activations.get("ReLU") == relu and isinstance(relu, activations.ReLU)
    assert activations.get("swish").name == "silu"


def test_parameters_override_defaults(make):
    act = activations.get("leaky_relu", alpha=0.2)
    assert act.params == {"alpha": 0.2}
    assert_close(act(make([-1.0, 1.0])), [-0.2, 1.0])
    assert act.get_config() == {"alpha": 0.2}
    assert act == activations.LeakyReLU(alpha=0.2) != activations.LeakyReLU()
    assert activations.get("leaky_relu").params == {"alpha": 0.01}  # the defaults are untouched
    assert activations.get(act, alpha=0.3).params == {"alpha": 0.3}
    assert act.params == {"alpha": 0.2}


def test_files_saved_before_class_names_still_load():
    # layer configs used to store an activation as {"name": ..., **params}
    assert activations.get({"name": "elu", "alpha": 0.5}) == activations.ELU(0.5)
    assert activations.get({"name": "ReLU"}) == activations.ReLU()
    with pytest.raises(ValueError, match="Unknown activation 'rleu'. Did you mean 'relu'"):
        activations.get({"name": "rleu"})


def test_unknown_name_suggests_the_closest():
    with pytest.raises(ValueError, match="Unknown activation 'rleu'. Did you mean 'relu'"):
        activations.get("rleu")
    with pytest.raises(ValueError, match="Valid names: 'elu'"):
        activations.get("nothing_like_it")


def test_bad_types_and_parameters():
    with pytest.raises(TypeError, match="activation must be a name"):
        activations.get(42)
    with pytest.raises(TypeError, match="takes no arguments"):
        activations.get("relu", alpha=0.1)
    with pytest.raises(TypeError, match="unexpected keyword argument 'beta'"):
        activations.get("elu", beta=0.1)


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_in_place_variants_compute_the_same(name, make, xp):
    act = activations.get(name)
    x_host = np.array([[-1.5, 0.5, 2.0], [0.25, -3.0, 1.0]])
    dy_host = np.array([[1.0, -2.0, 3.0], [0.5, 0.5, -1.0]])
    x = make(x_host)
    y = act.forward(x)
    dx = act.backward(make(dy_host), x, y)
    y_ = act.forward_(make(x_host))
    assert_close(y_, y)
    assert_close(act.backward_(make(dy_host), x, y_), dx)


def test_relu_writes_over_what_it_is_given(placement, xp, make):
    relu = activations.ReLU()
    z = make([[-1.0, 2.0]])
    a = relu.forward_(z)
    assert_close(a, [[0.0, 2.0]])
    dy = make([[5.0, 7.0]])
    dz = relu.backward_(dy, None, a)
    assert_close(dz, [[0.0, 7.0]])
    if placement.name in ("numpy", "torch", "cupy"):  # the libraries with an in-place kernel
        assert a is z and dz is dy
    # the plain forward and backward leave their arguments alone
    x, dy = make([[-1.0, 2.0]]), make([[5.0, 7.0]])
    relu.backward(dy, x, relu.forward(x))
    assert_close(x, [[-1.0, 2.0]])
    assert_close(dy, [[5.0, 7.0]])
