"""Regularizers: Keras's penalties and their gradients, in layers and models."""

from __future__ import annotations

import math

import numpy as np
import pytest

import xpnet as xn
from helpers import assert_close, assert_like
from xpnet import _backend, layers, regularizers

rng = np.random.default_rng(7)
W = rng.normal(size=(5, 3))
X = rng.normal(size=(12, 4))
Y = rng.normal(size=(12, 2))


def assert_scalar_like(value, w):
    """`value` is 0-d, of `w`'s library, dtype and device (NumPy reductions
    give NumPy scalars, its 0-d arrays)."""
    assert tuple(value.shape) == () and value.dtype == w.dtype
    if not isinstance(value, np.generic):
        assert_like(value, w)


# ------------------------------------------------------------ the penalties


@pytest.mark.parametrize(
    ("reg", "penalty", "gradient"),
    [
        (regularizers.L1(0.3), 0.3 * np.abs(W).sum(), 0.3 * np.sign(W)),
        (regularizers.L2(0.2), 0.2 * (W**2).sum(), 0.4 * W),  # Keras: no 1/2
        (
            regularizers.L1L2(l1=0.1, l2=0.05),
            0.1 * np.abs(W).sum() + 0.05 * (W**2).sum(),
            0.1 * np.sign(W) + 0.1 * W,
        ),
        (regularizers.L1L2(), 0.0, 0.0 * W),
    ],
    ids=["l1", "l2", "l1_l2", "zero"],
)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_penalty_and_gradient_follow_the_formulas(reg, penalty, gradient, dtype, make):
    w = make(W, dtype)
    rtol = 1e-12 if dtype == "float64" else 1e-5
    value = reg(w)
    assert_scalar_like(value, w)
    assert_close(value, penalty, rtol=rtol, atol=1e-12)
    grad = reg.add_gradient(make(np.ones_like(W), dtype), w)
    assert_like(grad, w)
    assert_close(grad, 1.0 + gradient, rtol=rtol)
    assert_close(w, W, rtol=rtol)  # the weight itself is never written


def test_defaults_names_and_config():
    assert regularizers.L1().l1 == 0.01 and regularizers.L2().l2 == 0.01
    assert regularizers.L1L2().get_config() == {"l1": 0.0, "l2": 0.0}
    assert isinstance(regularizers.get("l1"), regularizers.L1)
    assert isinstance(regularizers.get("L2"), regularizers.L2)
    assert isinstance(regularizers.get("l1_l2"), regularizers.L1L2)
    assert isinstance(regularizers.get("l1l2"), regularizers.L1L2)
    assert regularizers.get(None) is None and regularizers.serialize(None) is None
    reg = regularizers.L1L2(l1=0.5, l2=0.25)
    assert regularizers.get(reg) is reg
    assert regularizers.serialize(reg) == {
        "class_name": "L1L2",
        "config": {"l1": 0.5, "l2": 0.25},
    }
    assert regularizers.get(regularizers.serialize(reg)) == reg
    assert repr(regularizers.L2(0.5)) == "L2(l2=0.5)"
    assert regularizers.L2(1) == regularizers.L2(1.0)


@pytest.mark.parametrize(
    "make_bad",
    [
        lambda: regularizers.L1(-0.1),
        lambda: regularizers.L2(math.nan),
        lambda: regularizers.L2(math.inf),
        lambda: regularizers.L1L2(l1="0.1"),
        lambda: regularizers.L1L2(l2=None),
        lambda: regularizers.L2(True),
        lambda: regularizers.get({"class_name": "L2", "config": {"l2": -1.0}}),
    ],
    ids=["negative", "nan", "inf", "string", "none", "bool", "config"],
)
def test_bad_factors_are_refused(make_bad):
    with pytest.raises(ValueError, match="must be a non-negative finite number"):
        make_bad()


def test_unknown_names_and_types():
    with pytest.raises(ValueError, match="Unknown regularizer 'l1_l3'. Did you mean 'l1_l2'"):
        regularizers.get("l1_l3")
    with pytest.raises(TypeError, match="regularizer must be a name"):
        layers.Dense(2, kernel_regularizer=0.01)
    with pytest.raises(ValueError, match="Unknown regularizer 'l22'"):
        layers.Dense(2, bias_regularizer="l22")


# ------------------------------------------------------------ in a model


def _model(placement, dtype="float64", **dense):
    model = xn.Sequential(
        [layers.Dense(3, activation="tanh", **dense), layers.Dense(2)],
        backend=placement.name, device=placement.device, dtype=dtype, seed=4,
    )  # fmt: skip
    model.compile(loss="mse", optimizer=xn.optimizers.SGD(0.1))
    return model


REGULARIZED = {
    "kernel_regularizer": regularizers.L1L2(l1=0.02, l2=0.03),
    "bias_regularizer": regularizers.L2(0.5),
}


def test_the_penalty_joins_the_step_loss_and_gradients(placement):
    plain, reg = _model(placement), _model(placement, **REGULARIZED)
    assert plain.regularization_loss() is None
    reg.build(4)
    plain.build(4)
    kernel, bias = reg.get_weights()[:2]
    bias = bias + 0.25  # a non-zero bias, so its penalty counts too
    reg.set_weights([kernel, bias, *reg.get_weights()[2:]])
    plain.set_weights(reg.get_weights())
    penalty = 0.02 * np.abs(kernel).sum() + 0.03 * (kernel**2).sum() + 0.5 * (bias**2).sum()
    value = reg.regularization_loss()
    assert_scalar_like(value, reg.layers[0].params["kernel"])
    assert_close(value, penalty, rtol=1e-12)
    data = reg.prepare(X, Y)
    a = plain.compute_gradients(data.x, data.y)
    b = reg.compute_gradients(data.x, data.y)
    assert_close(b.loss, xn.to_numpy(a.loss) + penalty, rtol=1e-12)
    expected = xn.to_numpy(a.gradients["dense/kernel"]) + 0.02 * np.sign(kernel) + 0.06 * kernel
    assert_close(b.gradients["dense/kernel"], expected, rtol=1e-12)
    assert_close(b.gradients["dense/bias"], xn.to_numpy(a.gradients["dense/bias"]) + bias)
    assert_close(b.gradients["dense_1/kernel"], a.gradients["dense_1/kernel"])


def test_gradients_with_penalties_match_finite_differences(placement):
    model = xn.Sequential(
        [
            layers.Dense(5, kernel_regularizer="l1", bias_regularizer="l2"),
            layers.PReLU(
                alpha_initializer=xn.initializers.Constant(0.2),
                alpha_regularizer=regularizers.L1L2(0.1, 0.2),
            ),
            layers.BatchNormalization(gamma_regularizer="l2", beta_regularizer="l1"),
            layers.Dense(2, kernel_regularizer=regularizers.L2(0.3)),
        ],
        backend=placement.name, device=placement.device, dtype="float64", seed=2,
    )  # fmt: skip
    model.compile(loss="mse", optimizer="sgd")
    for training in (False, True):
        errors = xn.gradcheck(model, X, Y, training=training)
        assert len(errors) == 7
        assert max(errors.values()) < 1e-6, errors


def test_fit_and_train_on_batch_report_the_penalised_loss(placement):
    reg = _model(placement, kernel_regularizer=regularizers.L2(0.1))
    plain = _model(placement)
    reg.build(4)
    plain.build(4)
    penalty = float(xn.to_numpy(reg.regularization_loss()))
    assert reg.train_on_batch(X, Y) == pytest.approx(plain.train_on_batch(X, Y) + penalty)
    # One full batch per epoch: the epoch's loss is that batch's, penalty included.
    reg, plain = _model(placement, kernel_regularizer=regularizers.L2(0.1)), _model(placement)
    reg.build(4)
    penalty = float(xn.to_numpy(reg.regularization_loss()))
    history = reg.fit(X, Y, epochs=1, batch_size=None, verbose=0).history
    base = plain.fit(X, Y, epochs=1, batch_size=None, verbose=0).history
    assert history["loss"][0] == pytest.approx(base["loss"][0] + penalty, rel=1e-10)


def test_regularization_shrinks_weights_in_float32(placement):
    norms = []
    for reg in (None, regularizers.L2(0.05)):
        model = _model(placement, "float32", kernel_regularizer=reg)
        model.fit(X, Y, epochs=20, batch_size=4, verbose=0)
        kernel = model.get_weights()[0]
        assert kernel.dtype == np.float32 and np.isfinite(kernel).all()
        norms.append(np.linalg.norm(kernel))
    assert norms[1] < norms[0]


def test_regularizers_are_saved_and_loaded(tmp_path, placement):
    model = _model(_backend.get_backend("numpy"), **REGULARIZED)
    model.fit(X, Y, epochs=1, verbose=0)
    config = model.layers[0].get_config()
    assert config["kernel_regularizer"] == regularizers.serialize(REGULARIZED["kernel_regularizer"])
    assert "kernel_regularizer" not in model.layers[1].get_config()  # unset: not written
    model.save(tmp_path / "m.xpnet")
    loaded = xn.load_model(tmp_path / "m.xpnet", backend=placement.name, device=placement.device)
    assert loaded.layers[0].kernel_regularizer == REGULARIZED["kernel_regularizer"]
    assert loaded.layers[0].bias_regularizer == REGULARIZED["bias_regularizer"]
    assert_close(loaded.regularization_loss(), xn.to_numpy(model.regularization_loss()))
    again = layers.from_config("Dense", config)
    assert again.get_config() == config
