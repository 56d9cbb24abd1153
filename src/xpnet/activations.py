"""Activation functions by name: forward, backward and a Keras-style ``get``.

An activation here is a small object with ``forward(x) -> y`` and
``backward(dy, x, y) -> dx`` (the chain rule through the activation, see
:mod:`xpnet.functional`). Layers hold one and call both, or their in-place
variants ``forward_`` / ``backward_`` when they own the array: ReLU writes
over it there, so every layer that uses ReLU runs that one fast path.

Examples
--------
>>> import numpy as np
>>> from xpnet import activations
>>> relu = activations.get("relu")
>>> x = np.array([-1.0, 2.0])
>>> y = relu.forward(x)
>>> relu.backward(np.ones(2), x, y)
array([0., 1.])
>>> activations.get("leaky_relu", alpha=0.2)
LeakyReLU(alpha=0.2)
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

from xpnet import _config
from xpnet import functional as F
from xpnet._backend import relu_, relu_backward_
from xpnet._typing import Array

__all__ = [
    "ACTIVATIONS",
    "ELU",
    "GELU",
    "ActivationFunction",
    "LeakyReLU",
    "Linear",
    "ReLU",
    "SiLU",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Tanh",
    "get",
    "serialize",
]


class ActivationFunction(_config.ConfigValue):
    """An elementwise (or row-wise, for softmax) function and its derivative:
    the kernels ``name`` and ``name_backward`` of :mod:`xpnet.functional`,
    called with :attr:`params`.

    ``forward_(x)`` and ``backward_(dy, x, y)`` are the same functions free
    to write over `x` and `dy` (a layer calls them with arrays it owns); if
    ``forward_`` writes over `x`, ``backward_`` must not need it.
    """

    #: The name :func:`get` accepts and layers report (``"relu"``).
    name: ClassVar[str]
    #: Keyword arguments of the kernels, e.g. ``{"alpha": 0.01}``.
    params: Mapping[str, Any] = MappingProxyType({})
    _fn: Any
    _grad: Any

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._fn = staticmethod(getattr(F, cls.name))
        cls._grad = staticmethod(getattr(F, cls.name + "_backward"))

    def forward(self, x: Array) -> Array:
        return self._fn(x, **self.params)

    def backward(self, dy: Array, x: Array, y: Array) -> Array:
        return self._grad(dy, x, y, **self.params)

    __call__ = forward

    def forward_(self, x: Array) -> Array:
        return self._fn(x, **self.params)

    def backward_(self, dy: Array, x: Array, y: Array) -> Array:
        return self._grad(dy, x, y, **self.params)

    def get_config(self) -> dict[str, Any]:
        return dict(self.params)


class Linear(ActivationFunction):
    """The identity."""

    name = "linear"


class ReLU(ActivationFunction):
    """``max(x, 0)``. In place, it saves an activation-sized array per layer:
    the backward needs only the output, so the input may be overwritten."""

    name = "relu"

    def forward_(self, x: Array) -> Array:
        return relu_(x)

    def backward_(self, dy: Array, x: Array, y: Array) -> Array:
        return relu_backward_(dy, y)


class LeakyReLU(ActivationFunction):
    """``x`` for ``x > 0``, ``alpha * x`` otherwise."""

    name = "leaky_relu"

    def __init__(self, alpha: float = 0.01) -> None:
        self.params = {"alpha": alpha}


class ELU(ActivationFunction):
    """``x`` for ``x > 0``, ``alpha * (exp(x) - 1)`` otherwise."""

    name = "elu"

    def __init__(self, alpha: float = 1.0) -> None:
        self.params = {"alpha": alpha}


class Sigmoid(ActivationFunction):
    """The logistic function ``1 / (1 + exp(-x))``."""

    name = "sigmoid"


class Tanh(ActivationFunction):
    """Hyperbolic tangent."""

    name = "tanh"


class Softplus(ActivationFunction):
    """``log(1 + exp(x))``."""

    name = "softplus"


class Softmax(ActivationFunction):
    """Softmax over `axis`."""

    name = "softmax"

    def __init__(self, axis: int = -1) -> None:
        self.params = {"axis": axis}


class GELU(ActivationFunction):
    """Gaussian error linear unit (tanh approximation)."""

    name = "gelu"


class SiLU(ActivationFunction):
    """``x * sigmoid(x)`` (swish)."""

    name = "silu"


ACTIVATIONS: dict[str, type[ActivationFunction]] = {
    cls.name: cls
    for cls in (Linear, ReLU, LeakyReLU, ELU, Sigmoid, Tanh, Softplus, Softmax, GELU, SiLU)
}
"""The activation names accepted everywhere (layers, ``activation=`` arguments)."""

_REGISTRY = _config.Registry(
    "activation", ActivationFunction, ACTIVATIONS, {"swish": "silu", "identity": "linear"}
)


def get(identifier: Any = None, **params: Any) -> ActivationFunction:
    """Return the activation for a name (any case), a config dict, an
    :class:`ActivationFunction`, or None (linear). Keyword `params` override
    the defaults (``get("elu", alpha=0.5)``).

    Raises ValueError for an unknown name, suggesting the closest valid one.
    """
    if identifier is None:
        identifier = "linear"
    elif isinstance(identifier, dict) and "name" in identifier:
        # the shape of files saved before activations had class names
        params = {**identifier, **params}
        identifier = params.pop("name")
    act = _REGISTRY.get(identifier)
    return type(act)(**{**act.get_config(), **params}) if params else act


def serialize(activation: ActivationFunction) -> dict[str, Any]:
    """``{"class_name": ..., "config": {...}}``, which :func:`get` turns back into `activation`."""
    return _config.serialize(activation)
