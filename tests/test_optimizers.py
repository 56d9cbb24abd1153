"""Optimizers and schedules against the update rules written out in NumPy."""

from __future__ import annotations

import math

import numpy as np
import pytest

import xpnet as xn
from helpers import assert_close
from xpnet import _backend, optimizers, schedules

GRADS = [np.random.default_rng(s).normal(size=(3, 2)) for s in range(5)]
W0 = np.random.default_rng(9).normal(size=(3, 2))


def _reference(kind, lr, **kw):
    """The Keras update rules, step by step, in float64 NumPy."""
    w = W0.copy()
    a = np.zeros_like(w)
    b = np.zeros_like(w) + (kw.get("initial_accumulator_value", 0.1) if kind == "adagrad" else 0)
    for t, g in enumerate(GRADS, start=1):
        if kind == "sgd":
            m = kw.get("momentum", 0.0)
            if m == 0:
                w = w - lr * g
            else:
                a = m * a - lr * g
                w = w + (m * a - lr * g if kw.get("nesterov") else a)
        elif kind == "adam":
            b1, b2, eps = 0.9, 0.999, 1e-7
            a = b1 * a + (1 - b1) * g
            b = b2 * b + (1 - b2) * g * g
            w = w - lr * math.sqrt(1 - b2**t) / (1 - b1**t) * a / (np.sqrt(b) + eps)
        elif kind == "rmsprop":
            rho, eps, m = 0.9, 1e-7, kw.get("momentum", 0.0)
            b = rho * b + (1 - rho) * g * g
            step = lr * g / (np.sqrt(b) + eps)
            if m:
                a = m * a + step
                step = a
            w = w - step
        elif kind == "adagrad":
            b = b + g * g
            w = w - lr * g / (np.sqrt(b) + 1e-7)
    return w


CASES = [
    ("sgd", optimizers.SGD, {}),
    ("sgd", optimizers.SGD, {"momentum": 0.9}),
    ("sgd", optimizers.SGD, {"momentum": 0.9, "nesterov": True}),
    ("adam", optimizers.Adam, {}),
    ("rmsprop", optimizers.RMSprop, {}),
    ("rmsprop", optimizers.RMSprop, {"momentum": 0.5}),
    ("adagrad", optimizers.Adagrad, {}),
]


@pytest.mark.parametrize("consume", [False, True])
@pytest.mark.parametrize(("kind", "cls", "kw"), CASES, ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_update_rules_match_the_formulas(kind, cls, kw, consume, make, placement):
    opt = cls(0.05, **kw)
    w = make(W0.copy())  # numpy shares memory with host data; keep W0 pristine
    original = w
    for g in GRADS:
        grad = make(g.copy())
        w = opt.update({"w": w}, {"w": grad}, consume_gradients=consume)["w"]
        if not consume:
            assert_close(grad, g, rtol=0)  # the caller's gradient is left alone
    assert_close(w, _reference(kind, 0.05, **kw), rtol=1e-12)
    assert _backend.device_of(w) == placement.device
    # In place where the library allows it, rebound on JAX.
    assert (w is original) == (placement.name != "jax")
    for slot in opt.state["w"].values():
        assert _backend.device_of(slot) == placement.device


def test_clipvalue_and_clipnorm(make):
    g = make([[3.0, -4.0]])  # norm 5
    opt = optimizers.SGD(1.0, clipvalue=2.0)
    assert_close(opt.update({"w": make([[0.0, 0.0]])}, {"w": g})["w"], [[-2.0, 2.0]])
    opt = optimizers.SGD(1.0, clipnorm=1.0)
    assert_close(opt.update({"w": make([[0.0, 0.0]])}, {"w": g})["w"], [[-0.6, 0.8]], rtol=1e-12)
    opt = optimizers.SGD(1.0, clipnorm=10.0)  # below the threshold: untouched
    assert_close(opt.update({"w": make([[0.0, 0.0]])}, {"w": g})["w"], [[-3.0, 4.0]])


def test_schedules():
    e = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    assert e(0) == 0.1 and e(10) == pytest.approx(0.05) and e(5) == pytest.approx(0.1 * 0.5**0.5)
    assert schedules.ExponentialDecay(0.1, 10, 0.5, staircase=True)(15) == pytest.approx(0.05)
    s = schedules.StepDecay(1.0, step_size=3, gamma=0.1)
    assert [s(i) for i in (0, 2, 3, 6)] == pytest.approx([1.0, 1.0, 0.1, 0.01])
    c = schedules.CosineDecay(1.0, decay_steps=10, alpha=0.1)
    assert c(0) == 1.0 and c(5) == pytest.approx(0.55) and c(10) == pytest.approx(0.1)
    assert c(50) == pytest.approx(0.1)


def test_schedule_drives_the_step_size(make):
    opt = optimizers.SGD(schedules.StepDecay(1.0, step_size=1, gamma=0.5))
    w = make([0.0])
    for _ in range(3):
        w = opt.update({"w": w}, {"w": make([1.0])})["w"]
    assert_close(w, [-(1.0 + 0.5 + 0.25)])
    assert opt.current_learning_rate() == 0.125


def test_bad_arguments():
    with pytest.raises(ValueError, match="learning_rate must be positive and finite"):
        optimizers.Adam(learning_rate=-1e-3)
    with pytest.raises(ValueError, match="learning_rate must be positive and finite"):
        optimizers.SGD(learning_rate=float("nan"))
    with pytest.raises(TypeError, match="learning_rate must be a float or a schedule"):
        optimizers.SGD(learning_rate="fast")
    with pytest.raises(ValueError, match="clipnorm must be positive"):
        optimizers.SGD(clipnorm=0.0)
    with pytest.raises(ValueError, match=r"beta_1 must be in \[0, 1\)"):
        optimizers.Adam(beta_1=1.0)
    with pytest.raises(ValueError, match="decay_steps must be positive"):
        schedules.ExponentialDecay(0.1, 0, 0.5)
    with pytest.raises(ValueError, match="Unknown optimizer 'sgdd'. Did you mean 'sgd'"):
        optimizers.get("sgdd")


@pytest.mark.parametrize("name", ["sgd", "adam", "rmsprop", "adagrad"])
def test_config_round_trip(name):
    opt = optimizers.get(name)
    again = optimizers.get(optimizers.serialize(opt))
    assert type(again) is type(opt) and again.get_config() == opt.get_config()
    with_schedule = type(opt)(schedules.CosineDecay(0.1, 100))
    again = optimizers.get(optimizers.serialize(with_schedule))
    assert again.get_config() == with_schedule.get_config()


def test_keras_defaults():
    assert optimizers.SGD().get_config()["learning_rate"] == 0.01
    adam = optimizers.Adam()
    assert (adam.learning_rate, adam.beta_1, adam.beta_2, adam.epsilon) == (0.001, 0.9, 0.999, 1e-7)
    assert optimizers.RMSprop().rho == 0.9
    assert optimizers.Adagrad().initial_accumulator_value == 0.1
    assert xn.optimizers.get("adam").learning_rate == 0.001
