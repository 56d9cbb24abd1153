"""Weight regularizers with Keras semantics: a penalty added to the loss.

A regularizer turns a weight array ``W`` into a number that the model adds
to every batch loss, and its gradient joins the weight's gradient:

===========  ==================================  =====================================
regularizer  penalty                             gradient
===========  ==================================  =====================================
``L1``       ``l1 * sum(|W|)``                   ``l1 * sign(W)``
``L2``       ``l2 * sum(W**2)`` (no 1/2, Keras)  ``2 * l2 * W``
``L1L2``     both                                both
===========  ==================================  =====================================

The penalty does not depend on the batch, so it is added once to each batch
loss (the mean over its samples), as Keras does. ``sign(0) = 0``: at a zero
weight the L1 penalty has a kink, and the subgradient 0 is the one the
finite-difference check sees from both sides.

Examples
--------
>>> import numpy as np
>>> from xpnet import regularizers
>>> reg = regularizers.get("l2")
>>> reg
L2(l2=0.01)
>>> float(reg(np.array([1.0, -2.0])))  # 0.01 * (1 + 4)
0.05
"""

from __future__ import annotations

import math
from typing import Any

from xpnet import _config
from xpnet._backend import add_scaled_, device_of, namespace
from xpnet._typing import Array

__all__ = ["L1", "L1L2", "L2", "Regularizer", "get", "serialize"]


def _factor(name: str, value: Any) -> float:
    """`value` as a non-negative finite float, or a ValueError naming `name`."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or math.isnan(value) or math.isinf(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative finite number, got {value!r}")
    return float(value)


class Regularizer(_config.ConfigValue):
    """Base class: ``reg(W)`` is the penalty, a 0-d array on `W`'s device.

    Subclasses define :meth:`__call__` and :meth:`add_gradient`.
    """

    def __call__(self, w: Array) -> Array:
        raise NotImplementedError

    def add_gradient(self, grad: Array, w: Array) -> Array:
        """``grad + d penalty / dW``. `grad` may be overwritten (it is the
        layer's fresh gradient buffer); always use the result."""
        raise NotImplementedError


class L1L2(Regularizer):
    """``l1 * sum(|W|) + l2 * sum(W**2)``.

    Parameters
    ----------
    l1, l2 : float
        Non-negative factors.
    """

    def __init__(self, l1: float = 0.0, l2: float = 0.0) -> None:
        self.l1 = _factor("l1", l1)
        self.l2 = _factor("l2", l2)

    def __call__(self, w: Array) -> Array:
        xp = namespace(w)
        terms = []
        if self.l1:
            terms.append(self.l1 * xp.sum(xp.abs(w)))
        if self.l2:
            terms.append(self.l2 * xp.sum(w * w))
        if not terms:
            return xp.zeros((), dtype=w.dtype, device=device_of(w))
        return terms[0] if len(terms) == 1 else terms[0] + terms[1]

    def add_gradient(self, grad: Array, w: Array) -> Array:
        # add_scaled_ may overwrite its last argument: hand it temporaries, never w.
        if self.l1:
            grad = add_scaled_(grad, self.l1, namespace(w).sign(w))
        if self.l2:
            grad = add_scaled_(grad, 1.0, w * (2.0 * self.l2))
        return grad

    def get_config(self) -> dict[str, Any]:
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    """``l1 * sum(|W|)``; its gradient is ``l1 * sign(W)``."""

    def __init__(self, l1: float = 0.01) -> None:
        super().__init__(l1=l1)

    def get_config(self) -> dict[str, Any]:
        return {"l1": self.l1}


class L2(L1L2):
    """``l2 * sum(W**2)`` (Keras's form, without a factor 1/2); its gradient
    is ``2 * l2 * W``."""

    def __init__(self, l2: float = 0.01) -> None:
        super().__init__(l2=l2)

    def get_config(self) -> dict[str, Any]:
        return {"l2": self.l2}


_REGISTRY = _config.Registry(
    "regularizer", Regularizer, {"l1": L1, "l2": L2, "l1_l2": L1L2}, {"l1l2": "l1_l2"}
)


def get(identifier: str | dict[str, Any] | Regularizer | None) -> Regularizer | None:
    """Return a regularizer for a name (``"l1"``, ``"l2"``, ``"l1_l2"``, any
    case), a config dict ``{"class_name": "L2", "config": {"l2": 0.1}}``, a
    :class:`Regularizer`, or None (no regularizer), as Keras's ``get``."""
    return None if identifier is None else _REGISTRY.get(identifier)


def serialize(regularizer: Regularizer | None) -> dict[str, Any] | None:
    """``{"class_name": ..., "config": {...}}`` (None for None), which
    :func:`get` turns back into `regularizer`."""
    return None if regularizer is None else _config.serialize(regularizer)
