"""Learning-rate schedules: functions of the optimizer's step count.

A schedule is evaluated on the host from a Python integer, so it costs no
device work and no synchronization.

Examples
--------
>>> from xpnet import schedules
>>> s = schedules.StepDecay(0.1, step_size=10, gamma=0.5)
>>> s(0), s(10), s(25)
(0.1, 0.05, 0.025)
"""

from __future__ import annotations

import math
from typing import Any

from xpnet import _config

__all__ = [
    "CosineDecay",
    "ExponentialDecay",
    "LearningRateSchedule",
    "StepDecay",
    "get",
    "serialize",
]


def _positive(name: str, value: float) -> float:
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return value


class LearningRateSchedule(_config.Configurable):
    """Base class: ``schedule(step) -> learning rate``."""

    def __call__(self, step: int) -> float:
        raise NotImplementedError


class ExponentialDecay(LearningRateSchedule):
    """``lr0 * decay_rate ** (step / decay_steps)``; with ``staircase`` the
    exponent is floored, so the rate drops in steps."""

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        decay_rate: float,
        staircase: bool = False,
    ) -> None:
        self.initial_learning_rate = _positive("initial_learning_rate", initial_learning_rate)
        self.decay_steps = _positive("decay_steps", decay_steps)
        self.decay_rate = _positive("decay_rate", decay_rate)
        self.staircase = bool(staircase)

    def __call__(self, step):
        p = step / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate * self.decay_rate**p

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
        }


class StepDecay(LearningRateSchedule):
    """``lr0 * gamma ** (step // step_size)``: multiply by `gamma` every
    `step_size` steps (PyTorch's ``StepLR``)."""

    def __init__(self, initial_learning_rate: float, step_size: int, gamma: float = 0.1) -> None:
        self.initial_learning_rate = _positive("initial_learning_rate", initial_learning_rate)
        self.step_size = int(_positive("step_size", step_size))
        self.gamma = _positive("gamma", gamma)

    def __call__(self, step):
        return self.initial_learning_rate * self.gamma ** (step // self.step_size)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "step_size": self.step_size,
            "gamma": self.gamma,
        }


class CosineDecay(LearningRateSchedule):
    """Half a cosine from ``lr0`` down to ``alpha * lr0`` over `decay_steps`,
    then constant: ``lr0 * ((1 - alpha) * (1 + cos(pi * t)) / 2 + alpha)``
    with ``t = min(step, decay_steps) / decay_steps``."""

    def __init__(self, initial_learning_rate: float, decay_steps: int, alpha: float = 0.0) -> None:
        self.initial_learning_rate = _positive("initial_learning_rate", initial_learning_rate)
        self.decay_steps = int(_positive("decay_steps", decay_steps))
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
        self.alpha = float(alpha)

    def __call__(self, step):
        t = min(step, self.decay_steps) / self.decay_steps
        cosine = 0.5 * (1.0 + math.cos(math.pi * t))
        return self.initial_learning_rate * ((1.0 - self.alpha) * cosine + self.alpha)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "alpha": self.alpha,
        }


_REGISTRY = _config.Registry(
    "schedule",
    LearningRateSchedule,
    {"exponential_decay": ExponentialDecay, "step_decay": StepDecay, "cosine_decay": CosineDecay},
)


def get(identifier: str | dict[str, Any] | LearningRateSchedule) -> LearningRateSchedule:
    """Return a schedule for a config dict or a :class:`LearningRateSchedule`
    (a name alone is an error: every schedule needs its initial rate)."""
    return _REGISTRY.get(identifier)


def serialize(schedule: LearningRateSchedule) -> dict[str, Any]:
    """``{"class_name": ..., "config": {...}}``, which :func:`get` turns back into `schedule`."""
    return _config.serialize(schedule)


deserialize = get  # the name optimizers' configs used before get
