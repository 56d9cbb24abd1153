"""Layers: each forward returns its output and the backward that undoes it.

``y, backward = layer.forward(x, training=True)``; later
``dx = backward(dy)`` stores the parameter gradients in ``layer.grads`` and
returns the gradient w.r.t. the input. The closure keeps what the chain rule
needs (the input, the pre-activation), so layers hold no hidden caches and a
model just replays the closures in reverse.

Trainable parameters live in ``layer.params`` (an ordered dict of arrays on
the model's device); optimizers update them there. State that is not
trained (BatchNormalization's moving statistics) lives in ``layer.buffers``.

To save memory, a backward may overwrite the gradient array it is given
(the model always passes a fresh one), and ``layer.grads`` buffers are
reused from step to step and may be consumed by the optimizer.

The family is split by kind: :mod:`~xpnet.layers._base` (``Layer``,
``Input``), :mod:`~xpnet.layers.core` (``Dense``, activations, ``PReLU``,
``Dropout``) and :mod:`~xpnet.layers.normalization` (``BatchNormalization``).
"""

from __future__ import annotations

from typing import Any

from xpnet import _config
from xpnet.layers._base import Input, Layer
from xpnet.layers.core import (
    ELU,
    Activation,
    Dense,
    Dropout,
    LeakyReLU,
    PReLU,
    ReLU,
    Sigmoid,
    Softmax,
    Softplus,
    Tanh,
)
from xpnet.layers.normalization import BatchNormalization

__all__ = [
    "ELU",
    "Activation",
    "BatchNormalization",
    "Dense",
    "Dropout",
    "Input",
    "Layer",
    "LeakyReLU",
    "PReLU",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Tanh",
    "from_config",
    "get",
    "serialize",
]

_ACTIVATION_LAYERS = (ReLU, LeakyReLU, ELU, Sigmoid, Tanh, Softplus, Softmax)
# Input is not here: it is never one of a model's layers, nor in its files.
_LAYERS = (Dense, Activation, PReLU, Dropout, BatchNormalization, *_ACTIVATION_LAYERS)
_REGISTRY = _config.Registry("layer", Layer, {cls.__name__: cls for cls in _LAYERS})


def get(identifier: str | dict[str, Any] | Layer) -> Layer:
    """Return a layer for a class name (any case: ``"relu"``), a config dict
    ``{"class_name": "Dense", "config": {"units": 4}}``, or a :class:`Layer`.
    A name makes the layer with its defaults: ``get("Dense")`` is an error
    that asks for a config dict."""
    return _REGISTRY.get(identifier)


def from_config(class_name: str, config: dict[str, Any]) -> Layer:
    """Rebuild a layer from its class name and ``get_config()`` output."""
    return _REGISTRY.from_config(class_name, config)


def serialize(layer: Layer) -> dict[str, Any]:
    """``{"class_name": ..., "config": {...}}``, which :func:`get` turns back into `layer`."""
    return _config.serialize(layer)
