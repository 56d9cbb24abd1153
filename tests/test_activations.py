"""The activation registry: names, parameters, errors."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import assert_close
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
    assert activations.get("ReLU") is relu
    assert activations.get("swish").name == "silu"


def test_parameters_override_defaults(make):
    act = activations.get("leaky_relu", alpha=0.2)
    assert act.params == {"alpha": 0.2}
    assert_close(act(make([-1.0, 1.0])), [-0.2, 1.0])
    assert act.get_config() == {"name": "leaky_relu", "alpha": 0.2}
    assert activations.get("leaky_relu").params == {"alpha": 0.01}  # the registry is untouched


def test_unknown_name_suggests_the_closest():
    with pytest.raises(ValueError, match="Unknown activation 'rleu'. Did you mean 'relu'"):
        activations.get("rleu")
    with pytest.raises(ValueError, match="Valid names: 'elu'"):
        activations.get("nothing_like_it")


def test_bad_types_and_parameters():
    with pytest.raises(TypeError, match="activation must be a name"):
        activations.get(42)
    with pytest.raises(TypeError, match="takes no parameter"):
        activations.get("relu", alpha=0.1)
