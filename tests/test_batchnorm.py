"""BatchNormalization: Keras 3's formulas, gradients, moving statistics, and
its weights through every path a model has (fit, predict, files, pickle, to)."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest

import xpnet as xn
from helpers import assert_close, assert_like
from xpnet import _backend, layers

rng = np.random.default_rng(11)
X = rng.normal(loc=2.0, scale=3.0, size=(16, 4))
Y = rng.normal(size=(16, 2))
GAMMA = rng.uniform(0.5, 1.5, size=4)
BETA = rng.normal(size=4)
EPS = 1e-3


def built_layer(placement, dtype="float64", **kwargs):
    layer = layers.BatchNormalization(**kwargs)
    layer.build((None, 4), placement=placement, dtype=getattr(placement.xp, dtype), rng=0)
    return layer


def set_affine(layer, make, dtype="float64"):
    layer.params = {"gamma": make(GAMMA, dtype), "beta": make(BETA, dtype)}


def batch_formula(x, gamma=GAMMA, beta=BETA):
    mean, var = x.mean(axis=0), x.var(axis=0)  # biased, as keras.ops.moments
    return gamma * (x - mean) / np.sqrt(var + EPS) + beta


# ------------------------------------------------------------ the formulas


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_training_forward_and_moving_statistics_follow_keras(make, placement, dtype):
    layer = built_layer(placement, dtype, momentum=0.9)
    set_affine(layer, make, dtype)
    x = make(X, dtype)
    rtol = 1e-12 if dtype == "float64" else 2e-5
    y, _ = layer.forward(x, training=True)
    assert_like(y, x)
    assert_close(y, batch_formula(X), rtol=rtol, atol=rtol)
    # m <- m * momentum + batch_stat * (1 - momentum), the biased variance too
    moving = layer.buffers
    assert_like(moving["moving_mean"], x[0, ...])
    assert_close(moving["moving_mean"], 0.1 * X.mean(axis=0), rtol=rtol)
    assert_close(moving["moving_variance"], 0.9 + 0.1 * X.var(axis=0), rtol=rtol)
    layer.forward(x, training=True)
    assert_close(layer.buffers["moving_mean"], 0.19 * X.mean(axis=0), rtol=rtol)


def test_inference_uses_the_moving_statistics(make, placement):
    layer = built_layer(placement)
    set_affine(layer, make)
    mean, var = rng.normal(size=4), rng.uniform(0.5, 2.0, size=4)
    layer.buffers = {"moving_mean": make(mean), "moving_variance": make(var)}
    before = dict(layer.buffers)
    y, _ = layer.forward(make(X))
    assert_close(y, GAMMA * (X - mean) / np.sqrt(var + EPS) + BETA, rtol=1e-12)
    assert layer.buffers == before  # inference leaves them alone


def gradient_fn(layer, make, training):
    """``(x, gamma, beta) -> (sum(y * r), (dx, dgamma, dbeta))`` for gradcheck."""
    r = rng.normal(size=X.shape)

    def fn(x, gamma, beta):
        layer.params = {"gamma": gamma, "beta": beta}
        y, backward = layer.forward(x, training=training)
        weights = make(r)
        dx = backward(make(r))  # a fresh array: a backward may write over it
        return _backend.namespace(y).sum(y * weights), (
            dx,
            layer.grads["gamma"],
            layer.grads["beta"],
        )

    return fn


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
def test_gradients_match_finite_differences(make, placement, training):
    layer = built_layer(placement, momentum=0.5)
    layer.buffers = {"moving_mean": make(BETA), "moving_variance": make(GAMMA)}
    fn = gradient_fn(layer, make, training)
    errors = xn.gradcheck(fn, make(X), make(GAMMA), make(BETA), wrt=(0, 1, 2))
    assert max(errors.values()) < 1e-7, errors


def test_without_center_and_scale(make, placement):
    layer = built_layer(placement, center=False, scale=False)
    assert layer.params == {} and layer.weight_names == ("moving_mean", "moving_variance")
    y, _ = layer.forward(make(X), training=True)
    assert_close(y, batch_formula(X, 1.0, 0.0), rtol=1e-12)
    assert layer.count_params() == 8 and layer.count_params(trainable=True) == 0
    model = xn.Sequential(
        [layers.Dense(3, input_dim=4), layers.BatchNormalization(center=False, scale=False)],
        backend=placement.name, device=placement.device, dtype="float64",
    )  # fmt: skip
    model.compile(loss="mse", optimizer="sgd")
    assert len(model.get_weights()) == 4
    y3 = Y[:, :1] @ np.ones((1, 3))
    assert max(xn.gradcheck(model, X, y3, training=True).values()) < 1e-6


def test_a_batch_of_one_stays_finite(make, placement):
    layer = built_layer(placement)
    y, backward = layer.forward(make(X[:1]), training=True)
    assert np.isfinite(xn.to_numpy(y)).all()
    assert np.isfinite(xn.to_numpy(backward(make(np.ones((1, 4)))))).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"axis": 0}, "axis must be -1 or 1"),
        ({"axis": 2}, "axis must be -1 or 1"),
        ({"axis": True}, "axis must be -1 or 1"),
        ({"momentum": -0.1}, r"momentum must be in \[0, 1\]"),
        ({"momentum": 1.5}, r"momentum must be in \[0, 1\]"),
        ({"momentum": float("nan")}, r"momentum must be in \[0, 1\]"),
        ({"momentum": "0.9"}, r"momentum must be in \[0, 1\]"),
        ({"epsilon": 0.0}, "epsilon must be a positive number"),
        ({"epsilon": -1e-3}, "epsilon must be a positive number"),
        ({"epsilon": float("inf")}, "epsilon must be a positive number"),
        ({"gamma_initializer": "onez"}, "Unknown initializer 'onez'"),
        ({"input_shape": (4, 2)}, "input_shape must be a 1-tuple"),
    ],
)
def test_bad_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        layers.BatchNormalization(**kwargs)


def test_only_2d_inputs_build(placement):
    with pytest.raises(ValueError, match=r"2-D inputs .* got shape \(None, 2, 4\)"):
        layers.BatchNormalization().build(
            (None, 2, 4), placement=placement, dtype=placement.xp.float64, rng=0
        )


# ------------------------------------------------------------ in a model


def bn_model(placement=None, dtype="float64", optimizer="adam", **bn):
    where = {} if placement is None else {"backend": placement.name, "device": placement.device}
    model = xn.Sequential(
        [
            layers.Dense(6, input_dim=4, activation="relu"),
            layers.BatchNormalization(momentum=0.8, **bn),
            layers.Dense(2),
        ],
        dtype=dtype, seed=5, **where,
    )  # fmt: skip
    model.compile(loss="mse", optimizer=optimizer)
    return model


def test_weights_follow_keras_order_and_only_gamma_beta_train(placement):
    model = bn_model(placement)
    shapes = [w.shape for w in model.get_weights()]
    assert shapes == [(4, 6), (6,), (6,), (6,), (6,), (6,), (6, 2), (2,)]
    bn = model.layers[1]
    assert list(bn.params) == ["gamma", "beta"]
    assert list(bn.buffers) == ["moving_mean", "moving_variance"]
    np.testing.assert_array_equal(model.get_weights()[2], np.ones(6))  # gamma
    np.testing.assert_array_equal(model.get_weights()[5], np.ones(6))  # moving_variance
    assert model.count_params() == 4 * 6 + 6 + 4 * 6 + 6 * 2 + 2
    out = io.StringIO()
    model.summary(print_fn=out.write)
    assert "Trainable params: 56" in out.getvalue()
    assert "Non-trainable params: 12" in out.getvalue()
    model.fit(X, Y, epochs=2, batch_size=4, verbose=0)
    assert all("moving" not in key for key in model.optimizer.state)
    data = model.prepare(X, Y)
    assert set(model.compute_gradients(data.x, data.y).gradients) == {
        "dense/kernel", "dense/bias", "batch_normalization/gamma",
        "batch_normalization/beta", "dense_1/kernel", "dense_1/bias",
    }  # fmt: skip


def test_fit_moves_the_statistics_and_predict_uses_them(placement):
    model = bn_model(placement)
    model.fit(X, Y, epochs=3, batch_size=8, shuffle=False, verbose=0)
    w = model.get_weights()
    assert not np.allclose(w[4], 0.0) and not np.allclose(w[5], 1.0)
    hidden = np.maximum(X @ w[0] + w[1], 0.0)
    normed = w[2] * (hidden - w[4]) / np.sqrt(w[5] + EPS) + w[3]
    expected = normed @ w[6] + w[7]
    assert_close(model.predict(X), expected, rtol=1e-10)
    assert model.evaluate(X, Y)["loss"] == pytest.approx(((expected - Y) ** 2).mean(), rel=1e-10)
    assert model.layers[1].buffers["moving_mean"] is not None
    assert_like(model.layers[1].buffers["moving_mean"], model.layers[1].params["gamma"])


def test_model_gradients_in_training_and_inference(placement):
    model = bn_model(placement)
    model.fit(X, Y, epochs=1, verbose=0)  # moving statistics away from 0 and 1
    before = model.get_weights()
    for training in (True, False):
        assert max(xn.gradcheck(model, X, Y, training=training).values()) < 1e-6
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # gradcheck restored the moving statistics


def test_float32_training_agrees_with_float64(placement):
    runs = []
    for dtype in ("float64", "float32"):
        model = bn_model(placement, dtype, optimizer=xn.optimizers.SGD(0.05))
        model.fit(X, Y, epochs=3, batch_size=4, shuffle=False, verbose=0)
        runs.append(xn.to_numpy(model.predict(X)))
    assert runs[1].dtype == np.float32
    np.testing.assert_allclose(runs[1], runs[0], rtol=1e-4, atol=1e-4)


def test_a_failed_fit_restores_the_moving_statistics(placement):
    model = bn_model(placement)
    model.fit(X, Y, epochs=1, verbose=0)
    before = model.get_weights()

    class Boom(xn.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        model.fit(X, Y, epochs=1, batch_size=4, callbacks=[Boom()], verbose=0)
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_saved_loaded_pickled_and_moved(tmp_path, placement):
    model = bn_model()
    model.fit(X, Y, epochs=2, batch_size=4, verbose=0)
    expected = xn.to_numpy(model.predict(X))
    model.save(tmp_path / "m.xpnet")
    loaded = xn.load_model(tmp_path / "m.xpnet", backend=placement.name, device=placement.device)
    assert_close(loaded.predict(X), expected, rtol=1e-12)
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert loaded.layers[1].get_config() == model.layers[1].get_config()
    copied = pickle.loads(pickle.dumps(loaded))
    assert copied.backend == loaded.backend
    assert_close(copied.predict(X), expected, rtol=1e-12)
    model.to(placement.name, placement.device)
    bn = model.layers[1]
    for value in (*bn.params.values(), *bn.buffers.values()):
        assert _backend.device_of(value) == placement.device
    assert_close(model.predict(X), expected, rtol=1e-12)
    model.fit(X, Y, epochs=1, verbose=0)  # trains on there


def test_a_forged_moving_statistic_is_refused(tmp_path):
    import json
    import zipfile

    model = bn_model()
    model.fit(X, Y, epochs=1, verbose=0)
    path = tmp_path / "m.xpnet"
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    config = json.loads(members["config.json"])
    index = config["arrays"].index("params/batch_normalization/moving_variance")
    buffer = io.BytesIO()
    np.save(buffer, np.ones(7))
    members[f"arrays/{index}.npy"] = buffer.getvalue()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(
        ValueError, match=r"batch_normalization/moving_variance has shape \(7,\), but the config"
    ):
        xn.load_model(path)


def test_no_host_reads_per_batch_on_a_gpu_like_device(monkeypatch):
    strict = pytest.importorskip("array_api_strict")
    cls = type(strict.asarray(0.0))
    counts = {}
    for batch_size in (16, 2):  # 1 batch per epoch vs 8
        model = bn_model(_backend.get_backend("array_api_strict", "device1"))
        x = _backend.asarray(X, model.placement, "float64")
        y = _backend.asarray(Y, model.placement, "float64")
        seen = []
        for name in ("__float__", "__bool__", "__array__", "__dlpack__", "to_device", "tolist"):
            original = getattr(cls, name, None)
            if original is not None:

                def counted(*args, _original=original, _seen=seen, **kwargs):
                    _seen.append(1)
                    return _original(*args, **kwargs)

                monkeypatch.setattr(cls, name, counted)
        model.fit(x, y, epochs=2, batch_size=batch_size, verbose=0)
        model.predict(x)
        counts[batch_size] = len(seen)
        monkeypatch.undo()
    assert 0 < counts[2] == counts[16]  # reads per epoch, none per batch
