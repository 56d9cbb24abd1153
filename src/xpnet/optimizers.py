"""Gradient-descent optimizers with Keras's names, defaults and update rules.

Each optimizer keeps its state (velocities, moment estimates) per parameter,
on the parameter's device, keyed by ``"layer/param"`` so that it can be saved
and moved with the model.

Updates happen in place where the array library allows it (NumPy, CuPy,
PyTorch, array-api-strict) and by rebinding on JAX; ``is_writeable`` decides,
in two places. :meth:`Optimizer.apply` takes ``_step_in_place`` when the
gradient may be consumed and both arrays are writable: no parameter-sized
temporary, the gradient is scaled in place by ``add_scaled_`` (fused on
PyTorch). Otherwise ``_step`` computes the new values and :func:`_write` /
:func:`_subtract` store them in place or return new arrays. Either way the
caller rebinds what ``apply`` returns.

Examples
--------
>>> import numpy as np
>>> from xpnet import optimizers
>>> opt = optimizers.SGD(learning_rate=0.1)
>>> w = np.array([1.0, 2.0])
>>> opt.update({"w": w}, {"w": np.array([1.0, -1.0])})["w"]
array([0.9, 2.1])
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from xpnet import _config
from xpnet import schedules as _schedules
from xpnet._backend import (
    Backend,
    add_scaled_,
    asarray,
    full_like,
    is_writeable,
    namespace,
    to_numpy,
)
from xpnet._typing import Array

__all__ = ["SGD", "Adagrad", "Adam", "Optimizer", "RMSprop", "get", "serialize"]


def _write(dest: Array, value: Array) -> Array:
    """Store `value` into `dest` in place when the backend allows it, and
    return the array that now holds it (rebind the result, always)."""
    if is_writeable(dest):
        dest[...] = value
        return dest
    return value


def _subtract(dest: Array, delta: Array) -> Array:
    """``dest - delta``, in place where the backend allows it."""
    if is_writeable(dest):
        dest -= delta
        return dest
    return dest - delta


class Optimizer(_config.Configurable):
    """Base class.

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule
        A schedule is called with the number of steps taken so far.
    clipnorm : float, optional
        Rescale each parameter's gradient so its L2 norm is at most this.
    clipvalue : float, optional
        Clip each gradient entry to ``[-clipvalue, clipvalue]``.
    """

    _slots: tuple[str, ...] = ()

    def __init__(
        self,
        learning_rate: float | _schedules.LearningRateSchedule = 0.01,
        *,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
    ) -> None:
        self.learning_rate = learning_rate
        if clipnorm is not None and not clipnorm > 0:
            raise ValueError(f"clipnorm must be positive, got {clipnorm!r}")
        if clipvalue is not None and not clipvalue > 0:
            raise ValueError(f"clipvalue must be positive, got {clipvalue!r}")
        self.clipnorm = clipnorm
        self.clipvalue = clipvalue
        self.iterations = 0
        self.state: dict[str, dict[str, Array]] = {}

    @property
    def learning_rate(self) -> float | _schedules.LearningRateSchedule:
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float | _schedules.LearningRateSchedule) -> None:
        if not isinstance(value, _schedules.LearningRateSchedule):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(
                    f"learning_rate must be a float or a schedule, got {type(value).__name__}"
                )
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"learning_rate must be positive and finite, got {value!r}")
            value = float(value)
        self._learning_rate = value

    def current_learning_rate(self) -> float:
        """The learning rate of the next step."""
        lr = self._learning_rate
        return lr(self.iterations) if callable(lr) else lr

    def plain_rate(self) -> float | None:
        """The next step's learning rate when that step is exactly ``param
        -= lr * grad``, else None (a training step may fold ``-lr`` in)."""
        return None

    def _clip(self, grad: Array) -> Array:
        if self.clipvalue is None and self.clipnorm is None:
            return grad
        xp = namespace(grad)
        if self.clipvalue is not None:
            grad = xp.clip(grad, -self.clipvalue, self.clipvalue)
        if self.clipnorm is not None:
            norm = xp.sqrt(xp.sum(grad * grad))
            # c / max(norm, c) is 1 below the threshold: no host-side branch
            grad = grad * (self.clipnorm / xp.maximum(norm, self.clipnorm))
        return grad

    def _slots_for(self, key: str, param: Array) -> dict[str, Array]:
        slots = self.state.get(key)
        if slots is None:
            slots = {name: full_like(param, self._initial(name)) for name in self._slots}
            self.state[key] = slots
        return slots

    def _initial(self, slot: str) -> float:
        return 0.0

    def update(
        self,
        params: Mapping[str, Array],
        grads: Mapping[str, Array],
        *,
        consume_gradients: bool = False,
    ) -> dict[str, Array]:
        """Take one step: return the new value of every parameter in `params`
        (the same arrays, updated in place, where the backend allows it).

        With ``consume_gradients=True`` the optimizer may overwrite the
        gradient arrays to avoid a parameter-sized temporary; the model's
        training step does this with gradients it owns.
        """
        keys = list(params)
        new = self.apply(
            [(key, params[key], grads[key]) for key in keys], consume_gradients=consume_gradients
        )
        return dict(zip(keys, new, strict=True))

    def apply(
        self, items: list[tuple[str, Array, Array]], *, consume_gradients: bool = False
    ) -> list[Array]:
        """:meth:`update` for a list of ``(key, param, grad)``; returns the new
        parameters in the same order (the model's hot path: no dicts built)."""
        lr = self.current_learning_rate()
        self.iterations += 1
        return self._update(items, self._hyper(lr, self.iterations), consume_gradients)

    def _hyper(self, lr: float, t: int) -> tuple[float, ...]:
        """The step's scalars, computed on the host from the learning rate
        and the step number `t` (1 for the first step). A compiled step takes
        them as arguments, so one trace serves every step."""
        return (lr,)

    def _update(
        self, items: list[tuple[str, Array, Array]], hyper: tuple[Any, ...], consume: bool
    ) -> list[Array]:
        """One step of every ``(key, param, grad)`` with the scalars `hyper`."""
        clip = self.clipnorm is not None or self.clipvalue is not None
        state = self.state
        out = []
        for key, param, grad in items:
            if clip:
                grad = self._clip(grad)
            slots = state.get(key)
            if slots is None:
                slots = self._slots_for(key, param)
            if consume and is_writeable(param) and is_writeable(grad):
                out.append(self._step_in_place(param, grad, slots, hyper))
            else:
                out.append(self._step(param, grad, slots, hyper))
        return out

    def _step_in_place(self, param: Array, grad: Array, slots: dict[str, Array], hyper):
        """The update for writable arrays when `grad` may be overwritten."""
        return self._step(param, grad, slots, hyper)

    def _step(self, param: Array, grad: Array, slots: dict[str, Array], hyper) -> Array:
        raise NotImplementedError

    # -- state ------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        lr = self._learning_rate
        config: dict[str, Any] = {
            "learning_rate": _schedules.serialize(lr) if callable(lr) else lr,
        }
        if self.clipnorm is not None:
            config["clipnorm"] = self.clipnorm
        if self.clipvalue is not None:
            config["clipvalue"] = self.clipvalue
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Optimizer:
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = _schedules.get(config["learning_rate"])
        return cls(**config)

    def get_state(self) -> dict[str, Any]:
        """Host copies of the state: ``{"iterations": n, "slots": {key: {slot: ndarray}}}``."""
        return {
            "iterations": self.iterations,
            "slots": {
                key: {name: to_numpy(a).copy() for name, a in slots.items()}
                for key, slots in self.state.items()
            },
        }

    def set_state(
        self, state: dict[str, Any], placement: Backend, dtype: str | None = None
    ) -> None:
        """Load :meth:`get_state` output onto `placement` (cast to `dtype`, the
        parameters' dtype, when given)."""
        self.iterations = int(state["iterations"])
        self.state = {
            key: {name: asarray(a, placement, dtype, copy=True) for name, a in slots.items()}
            for key, slots in state["slots"].items()
        }


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum.

    Keras's rule: ``v = momentum * v - lr * g``; then ``w += v``, or with
    Nesterov ``w += momentum * v - lr * g``. Without momentum, ``w -= lr * g``.
    """

    def __init__(
        self,
        learning_rate: float | _schedules.LearningRateSchedule = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        *,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
    ) -> None:
        super().__init__(learning_rate, clipnorm=clipnorm, clipvalue=clipvalue)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self._slots = ("velocity",) if self.momentum > 0 else ()

    def plain_rate(self):
        plain = type(self) is SGD and not self.momentum  # a subclass may change the rule
        if not plain or self.clipnorm is not None or self.clipvalue is not None:
            return None
        return self.current_learning_rate()

    def _step(self, param, grad, slots, hyper):
        (lr,) = hyper
        if self.momentum == 0.0:
            return _subtract(param, lr * grad)
        v = _write(slots["velocity"], self.momentum * slots["velocity"] - lr * grad)
        slots["velocity"] = v
        if self.nesterov:
            return _subtract(param, lr * grad - self.momentum * v)
        return _subtract(param, -v)

    def _step_in_place(self, param, grad, slots, hyper):
        # The same rule with no parameter-sized temporary: the gradient
        # buffer is scaled in place (it is consumed by the step).
        (lr,) = hyper
        if self.momentum == 0.0:
            return add_scaled_(param, -lr, grad)
        if self.nesterov:  # rare: the plain rule, with its temporaries
            return self._step(param, grad, slots, hyper)
        v = slots["velocity"]
        v *= self.momentum
        add_scaled_(v, -lr, grad)  # v = momentum * v - lr * g
        param += v
        return param

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam (Kingma & Ba) with Keras's placement of epsilon:
    ``w -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + epsilon)``."""

    _slots = ("m", "v")

    def __init__(
        self,
        learning_rate: float | _schedules.LearningRateSchedule = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        *,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
    ) -> None:
        super().__init__(learning_rate, clipnorm=clipnorm, clipvalue=clipvalue)
        for name, beta in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {beta!r}")
        if not epsilon >= 0:
            raise ValueError(f"epsilon must be non-negative, got {epsilon!r}")
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def _hyper(self, lr, t):
        return (lr * math.sqrt(1.0 - self.beta_2**t) / (1.0 - self.beta_1**t),)

    def _step(self, param, grad, slots, hyper):
        (alpha,) = hyper
        xp = namespace(param)
        b1, b2 = self.beta_1, self.beta_2
        m = slots["m"] = _write(slots["m"], b1 * slots["m"] + (1.0 - b1) * grad)
        v = slots["v"] = _write(slots["v"], b2 * slots["v"] + (1.0 - b2) * (grad * grad))
        return _subtract(param, alpha * m / (xp.sqrt(v) + self.epsilon))

    def get_config(self):
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
        }


class RMSprop(Optimizer):
    """RMSprop: ``v = rho v + (1 - rho) g^2``, ``w -= lr g / (sqrt(v) + eps)``;
    with `momentum`, the step is accumulated in a velocity first."""

    def __init__(
        self,
        learning_rate: float | _schedules.LearningRateSchedule = 0.001,
        rho: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-7,
        *,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
    ) -> None:
        super().__init__(learning_rate, clipnorm=clipnorm, clipvalue=clipvalue)
        if not 0.0 <= rho < 1.0:
            raise ValueError(f"rho must be in [0, 1), got {rho!r}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        self.rho, self.momentum, self.epsilon = float(rho), float(momentum), float(epsilon)
        self._slots = ("v", "velocity") if self.momentum > 0 else ("v",)

    def _step(self, param, grad, slots, hyper):
        (lr,) = hyper
        xp = namespace(param)
        v = slots["v"] = _write(slots["v"], self.rho * slots["v"] + (1.0 - self.rho) * grad * grad)
        step = lr * grad / (xp.sqrt(v) + self.epsilon)
        if self.momentum > 0:
            step = slots["velocity"] = _write(
                slots["velocity"], self.momentum * slots["velocity"] + step
            )
        return _subtract(param, step)

    def get_config(self):
        return {
            **super().get_config(),
            "rho": self.rho,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
        }


class Adagrad(Optimizer):
    """Adagrad: ``a += g^2``, ``w -= lr g / (sqrt(a) + eps)``, with ``a``
    starting at `initial_accumulator_value` (Keras: 0.1)."""

    _slots = ("accumulator",)

    def __init__(
        self,
        learning_rate: float | _schedules.LearningRateSchedule = 0.001,
        initial_accumulator_value: float = 0.1,
        epsilon: float = 1e-7,
        *,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
    ) -> None:
        super().__init__(learning_rate, clipnorm=clipnorm, clipvalue=clipvalue)
        if not initial_accumulator_value >= 0:
            raise ValueError(
                f"initial_accumulator_value must be non-negative, got {initial_accumulator_value!r}"
            )
        self.initial_accumulator_value = float(initial_accumulator_value)
        self.epsilon = float(epsilon)

    def _initial(self, slot):
        return self.initial_accumulator_value

    def _step(self, param, grad, slots, hyper):
        (lr,) = hyper
        xp = namespace(param)
        a = slots["accumulator"] = _write(slots["accumulator"], slots["accumulator"] + grad * grad)
        return _subtract(param, lr * grad / (xp.sqrt(a) + self.epsilon))

    def get_config(self):
        return {
            **super().get_config(),
            "initial_accumulator_value": self.initial_accumulator_value,
            "epsilon": self.epsilon,
        }


_REGISTRY = _config.Registry(
    "optimizer", Optimizer, {"sgd": SGD, "adam": Adam, "rmsprop": RMSprop, "adagrad": Adagrad}
)


def get(identifier: str | Optimizer | dict[str, Any]) -> Optimizer:
    """Return an optimizer for a name (``"adam"``), a config dict, or an
    :class:`Optimizer`; unknown names get a suggestion."""
    return _REGISTRY.get(identifier)


def serialize(optimizer: Optimizer) -> dict[str, Any]:
    """``{"class_name": ..., "config": {...}}``, which :func:`get` turns back into `optimizer`."""
    return _config.serialize(optimizer)
