"""Activation functions by name: forward, backward and a Keras-style ``get``.

An activation here is a small object with ``forward(x) -> y`` and
``backward(dy, x, y) -> dx`` (the chain rule through the activation, see
:mod:`xpnet.functional`). Layers hold one and call both.

Examples
--------
>>> import numpy as np
>>> from xpnet import activations
>>> relu = activations.get("relu")
>>> x = np.array([-1.0, 2.0])
>>> y = relu.forward(x)
>>> relu.backward(np.ones(2), x, y)
array([0., 1.])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from xpnet import functional as F
from xpnet._typing import Array
from xpnet._validation import unknown_name_error

__all__ = ["ACTIVATIONS", "ActivationFunction", "get"]


@dataclass(frozen=True)
class ActivationFunction:
    """A named elementwise (or row-wise, for softmax) function and its derivative.

    Parameters
    ----------
    name : str
        The name ``get`` accepts and configs store.
    fn : callable
        ``fn(x, **params) -> y``.
    grad : callable
        ``grad(dy, x, y, **params) -> dx``.
    params : dict
        Fixed keyword arguments, e.g. ``{"alpha": 0.01}`` for leaky ReLU.
    """

    name: str
    fn: Callable[..., Array]
    grad: Callable[..., Array]
    params: dict[str, Any] = field(default_factory=dict)

    def forward(self, x: Array) -> Array:
        return self.fn(x, **self.params)

    def backward(self, dy: Array, x: Array, y: Array) -> Array:
        return self.grad(dy, x, y, **self.params)

    __call__ = forward

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, **self.params}

    def __repr__(self) -> str:
        args = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return f"ActivationFunction({self.name!r}{args})"


def _make(name: str, **params: Any) -> ActivationFunction:
    fn = getattr(F, name)
    grad = getattr(F, name + "_backward")
    return ActivationFunction(name, fn, grad, params)


ACTIVATIONS: dict[str, ActivationFunction] = {
    "linear": _make("linear"),
    "relu": _make("relu"),
    "leaky_relu": _make("leaky_relu", alpha=0.01),
    "elu": _make("elu", alpha=1.0),
    "sigmoid": _make("sigmoid"),
    "tanh": _make("tanh"),
    "softplus": _make("softplus"),
    "softmax": _make("softmax", axis=-1),
    "gelu": _make("gelu"),
    "silu": _make("silu"),
}
"""The activation names accepted everywhere (layers, ``activation=`` arguments)."""

_ALIASES = {"swish": "silu", "identity": "linear"}


def get(identifier: str | ActivationFunction | None, **params: Any) -> ActivationFunction:
    """Return the activation for a name, an :class:`ActivationFunction`, or None
    (linear). Keyword `params` override the defaults (``get("elu", alpha=0.5)``).

    Raises ValueError for an unknown name, suggesting the closest valid one.
    """
    if identifier is None:
        identifier = "linear"
    if isinstance(identifier, ActivationFunction):
        return identifier
    if not isinstance(identifier, str):
        raise TypeError(
            f"activation must be a name or an ActivationFunction, got {type(identifier).__name__}"
        )
    key = _ALIASES.get(identifier.lower(), identifier.lower())
    if key not in ACTIVATIONS:
        raise unknown_name_error("activation", identifier, ACTIVATIONS)
    base = ACTIVATIONS[key]
    if not params:
        return base
    unknown = set(params) - set(base.params)
    if unknown:
        raise TypeError(f"activation {key!r} takes no parameter(s) {sorted(unknown)}")
    return ActivationFunction(base.name, base.fn, base.grad, {**base.params, **params})
