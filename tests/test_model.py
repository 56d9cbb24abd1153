"""Sequential: backend resolution, fusion, the fit loop's contract, bad input."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest

import xpnet as xn
from helpers import assert_close
from xpnet import _backend, layers

rng = np.random.default_rng(1)
X = rng.normal(size=(40, 4))
Y_CLASS = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 0.8)  # 3 classes
Y_BIN = (X[:, 0] > 0).astype(np.float64)
Y_REG = X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.1


def classifier(placement=None, dtype="float64", seed=0, **kw):
    where = {} if placement is None else {"backend": placement.name, "device": placement.device}
    model = xn.Sequential(
        [layers.Dense(8, activation="relu"), layers.Dense(3, activation="softmax")],
        dtype=dtype,
        seed=seed,
        **where,
    )
    model.compile(
        loss="sparse_categorical_crossentropy",
        optimizer=kw.pop("optimizer", xn.optimizers.SGD(0.1)),
        metrics=["accuracy"],
    )
    return model


# ------------------------------------------------------------ backend resolution


def test_backend_comes_from_the_argument_first(placement):
    model = classifier(placement)
    model.fit(X, Y_CLASS, epochs=1, verbose=0)  # host data goes to the model's device
    assert model.backend == placement.name and model.device == placement.device
    out = model.predict(X)
    assert _backend.namespace(out) is placement.xp and _backend.device_of(out) == placement.device


def test_backend_comes_from_the_global_default_second():
    pytest.importorskip("array_api_strict")
    with xn.backend("array_api_strict", device="device1"):
        model = classifier()
        model.fit(X, Y_CLASS, epochs=1, verbose=0)
    assert model.backend == "array_api_strict" and str(model.device).endswith("'device1')")


def test_backend_comes_from_the_data_last(placement):
    x = _backend.asarray(X, placement, "float64")
    y = _backend.asarray(Y_CLASS, placement)
    model = classifier()
    model.fit(x, y, epochs=1, verbose=0)
    assert model.backend == placement.name and model.device == placement.device


def test_host_data_defaults_to_numpy():
    model = classifier()
    model.fit(X, Y_CLASS, epochs=1, verbose=0)
    assert model.backend == "numpy"


# ------------------------------------------------------------ fusion


@pytest.mark.parametrize(
    ("stack", "loss", "fused"),
    [
        ([layers.Dense(1, activation="sigmoid")], xn.losses.BinaryCrossentropy(), True),
        ([layers.Dense(3), layers.Softmax()], xn.losses.CategoricalCrossentropy(), True),
        ([layers.Dense(3, activation="softmax")], "sparse_categorical_crossentropy", True),
        (
            [layers.Dense(3, activation="softmax")],
            xn.losses.SparseCategoricalCrossentropy(from_logits=True),
            False,
        ),
        ([layers.Dense(1, activation="sigmoid")], "mse", False),
        ([layers.Dense(3, activation="sigmoid")], "categorical_crossentropy", False),
    ],
)
def test_fusion_is_decided_by_output_and_loss(stack, loss, fused):
    model = xn.Sequential(stack)
    model.compile(loss=loss, optimizer="sgd")
    assert model.fused is fused


def test_fused_step_uses_p_minus_y_and_reports_the_true_loss(placement):
    model = xn.Sequential(
        [layers.Dense(3, activation="softmax", use_bias=False)],
        backend=placement.name, device=placement.device, dtype="float64",
    )  # fmt: skip
    model.compile(loss="sparse_categorical_crossentropy", optimizer=xn.optimizers.SGD(1.0))
    model.build(4)
    # Logits of size ~1e4: the probabilities saturate to exactly 0 and 1.
    kernel = np.array([[2500.0, 0.0, -2500.0]] * 4)
    model.set_weights([kernel])
    x = np.ones((2, 4))
    y = np.array([2, 0])
    loss = model.train_on_batch(x, y)
    # Sample 0 has logits (1e4, 0, -1e4) and label 2: loss 2e4; sample 1 is right: 0.
    assert loss == pytest.approx(1e4, rel=1e-12)
    # gradient (p - y)/N = ([1,0,-1] + [0,0,0]) / 2, so the kernel moves by -x.T @ grad
    expected = kernel - np.ones((4, 2)) @ np.array([[0.5, 0.0, -0.5], [0.0, 0.0, 0.0]])
    assert_close(model.get_weights()[0], expected, rtol=1e-12)


def test_fused_binary_loss_is_finite_at_extreme_logits(placement):
    model = xn.Sequential(
        [layers.Dense(1, activation="sigmoid")], backend=placement.name, device=placement.device
    )
    model.compile(loss="binary_crossentropy", optimizer="sgd")
    model.build(1)
    model.set_weights([np.array([[1e4]]), np.array([0.0])])
    result = model.evaluate(np.array([[1.0], [-1.0]]), np.array([0.0, 0.0]))
    assert result["loss"] == pytest.approx(5e3)  # (1e4 + 0) / 2, exact in float32


# ------------------------------------------------------------ the fit contract


def test_history_loss_is_the_size_weighted_mean_of_batch_losses():
    a, b = classifier(), classifier()
    history = a.fit(X[:10], Y_CLASS[:10], epochs=1, batch_size=4, shuffle=False, verbose=0)
    losses = [b.train_on_batch(X[s:e], Y_CLASS[s:e]) for s, e in ((0, 4), (4, 8), (8, 10))]
    expected = (4 * losses[0] + 4 * losses[1] + 2 * losses[2]) / 10
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-12)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)


def test_validation_split_holds_out_the_last_samples_and_val_loss_is_exact():
    model = classifier()
    history = model.fit(X, Y_CLASS, epochs=2, validation_split=0.25, verbose=0)
    exact = model.evaluate(X[30:], Y_CLASS[30:])
    assert history.history["val_loss"][-1] == pytest.approx(exact["loss"], rel=1e-12)
    assert history.history["val_accuracy"][-1] == pytest.approx(exact["accuracy"])
    other = classifier()
    other.fit(X[:30], Y_CLASS[:30], epochs=2, verbose=0)
    for wa, wb in zip(model.get_weights(), other.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)


def test_validation_data_matches_evaluate():
    model = classifier()
    history = model.fit(
        X[:30], Y_CLASS[:30], epochs=1, validation_data=(X[30:], Y_CLASS[30:]), verbose=0
    )
    assert history.history["val_loss"][0] == pytest.approx(
        model.evaluate(X[30:], Y_CLASS[30:])["loss"], rel=1e-12
    )


def test_sample_weight_and_class_weight_follow_keras():
    weights = {0: 1.0, 1: 3.0, 2: 0.5}
    a, b = classifier(), classifier()
    ha = a.fit(X, Y_CLASS, epochs=2, class_weight=weights, verbose=0, shuffle=False)
    per_sample = np.array([weights[int(c)] for c in Y_CLASS])
    hb = b.fit(X, Y_CLASS, epochs=2, sample_weight=per_sample, verbose=0, shuffle=False)
    assert ha.history["loss"] == pytest.approx(hb.history["loss"], rel=1e-12)
    # Keras: a batch's loss is sum(w * l) / batch size
    c = classifier()
    unweighted = c.evaluate(X, Y_CLASS, sample_weight=np.ones(40))["loss"]
    doubled = c.evaluate(X, Y_CLASS, sample_weight=2 * np.ones(40))["loss"]
    assert doubled == pytest.approx(2 * unweighted)


def test_same_seed_is_bit_identical_and_seeds_differ():
    runs = [classifier(seed=5).fit(X, Y_CLASS, epochs=3, verbose=0) for _ in range(2)]
    assert runs[0].history["loss"] == runs[1].history["loss"]
    other = classifier(seed=6).fit(X, Y_CLASS, epochs=3, verbose=0)
    assert other.history["loss"] != runs[0].history["loss"]


def test_initial_weights_identical_across_backends(placement):
    here = classifier(placement).build(4).get_weights()
    reference = classifier().build(4).get_weights()
    for a, b in zip(here, reference, strict=True):
        np.testing.assert_array_equal(a, b)


def test_loss_histories_agree_across_backends(placement):
    reference = classifier(optimizer=xn.optimizers.Adam(0.01)).fit(
        X, Y_CLASS, epochs=5, batch_size=8, shuffle=False, verbose=0
    )
    here = classifier(placement, optimizer=xn.optimizers.Adam(0.01)).fit(
        X, Y_CLASS, epochs=5, batch_size=8, shuffle=False, verbose=0
    )
    np.testing.assert_allclose(here.history["loss"], reference.history["loss"], rtol=1e-6)
    np.testing.assert_allclose(here.history["accuracy"], reference.history["accuracy"])


def test_shuffled_training_is_identical_across_backends(placement):
    reference = classifier().fit(X, Y_CLASS, epochs=3, batch_size=8, verbose=0)
    here = classifier(placement).fit(X, Y_CLASS, epochs=3, batch_size=8, verbose=0)
    np.testing.assert_allclose(here.history["loss"], reference.history["loss"], rtol=1e-6)


class _CountingArray:
    """Counts the ways an array_api_strict array can reach the host."""

    METHODS = (
        "__float__",
        "__int__",
        "__bool__",
        "__index__",
        "__array__",
        "__dlpack__",
        "to_device",
        "tolist",
    )

    def __init__(self, monkeypatch):
        import array_api_strict

        self.count = 0
        cls = type(array_api_strict.asarray(0.0))
        for name in self.METHODS:
            original = getattr(cls, name, None)
            if original is None:
                continue

            def counted(*args, _original=original, **kwargs):
                self.count += 1
                return _original(*args, **kwargs)

            monkeypatch.setattr(cls, name, counted)


def test_no_host_transfer_inside_the_batch_loop(monkeypatch):
    pytest.importorskip("array_api_strict")
    counts = {}
    for batch_size in (40, 2):  # 1 batch per epoch vs 20
        model = classifier(_backend.get_backend("array_api_strict", "device1"))
        model.build(4)
        x = _backend.asarray(X, model.placement, "float64")
        y = _backend.asarray(Y_CLASS, model.placement)
        counter = _CountingArray(monkeypatch)
        model.fit(x, y, epochs=3, batch_size=batch_size, verbose=0)
        counts[batch_size] = counter.count
        monkeypatch.undo()
    assert counts[2] == counts[40]  # independent of the number of batches
    assert counts[2] <= 3 * 3 + 2  # a few reads per epoch (loss and metrics together), plus checks


def test_a_fit_that_raises_leaves_weights_and_optimizer_state_untouched():
    model = classifier(optimizer=xn.optimizers.Adam(0.01))
    model.fit(X, Y_CLASS, epochs=1, verbose=0)
    before = model.get_weights()
    state = model.optimizer.get_state()

    class Boom(xn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        model.fit(X, Y_CLASS, epochs=3, callbacks=[Boom()], verbose=0)
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert model.optimizer.iterations == state["iterations"]
    for key, slots in state["slots"].items():
        for name, value in slots.items():
            np.testing.assert_array_equal(xn.to_numpy(model.optimizer.state[key][name]), value)


# ------------------------------------------------------------ bad input


def _fitted(placement):
    model = classifier(placement, optimizer=xn.optimizers.Adam(0.01))  # Adam: state to compare
    model.fit(X, Y_CLASS, epochs=1, verbose=0)
    return model


BAD_FITS = [
    ("wrong feature count", lambda m: m.fit(X[:, :3], Y_CLASS), ValueError,
     r"layer 'dense' expects 4 input features, got x of shape \(40, 3\)"),
    ("mismatched lengths", lambda m: m.fit(X, Y_CLASS[:30]), ValueError,
     "x has 40 samples but y has 30"),
    ("labels out of range", lambda m: m.fit(X, Y_CLASS + 1), ValueError,
     r"y labels must be in \[0, 3\)"),
    ("negative labels", lambda m: m.fit(X, Y_CLASS - 1), ValueError, r"y labels must be in \[0, 3\)"),
    ("fractional labels", lambda m: m.fit(X, Y_CLASS + 0.5), ValueError, "whole numbers"),
    ("nan in x", lambda m: m.fit(np.where(X > 2, np.nan, X), Y_CLASS), ValueError,
     "x contains NaN or infinite"),
    ("inf in x", lambda m: m.fit(np.where(X > 2, np.inf, X), Y_CLASS), ValueError,
     "x contains NaN or infinite"),
    ("empty x", lambda m: m.fit(X[:0], Y_CLASS[:0]), ValueError, "x is empty"),
    ("1-d x", lambda m: m.fit(X[:, 0], Y_CLASS), ValueError, r"x must have shape \(n_samples, n_features\)"),
    ("batch size 0", lambda m: m.fit(X, Y_CLASS, batch_size=0), ValueError, "batch_size must be an int >= 1"),
    ("bad split", lambda m: m.fit(X, Y_CLASS, validation_split=1.0), ValueError, "validation_split"),
    ("bad val data", lambda m: m.fit(X, Y_CLASS, validation_data=(X[:5, :2], Y_CLASS[:5])), ValueError,
     "x_val of shape"),
    ("bad sample weight", lambda m: m.fit(X, Y_CLASS, sample_weight=np.ones(3)), ValueError,
     r"sample_weight must have shape \(40,\)"),
    ("bad class weight", lambda m: m.fit(X, Y_CLASS, class_weight={7: 1.0}), ValueError,
     "class_weight key 7"),
    ("bad callback", lambda m: m.fit(X, Y_CLASS, callbacks=["stop"]), TypeError, "Callback instances"),
    # Inputs a cast would silently misread (scikit-learn refuses them too)
    ("complex x", lambda m: m.fit(X + 1j, Y_CLASS), TypeError, "x holds complex numbers"),
    ("complex y", lambda m: m.fit(X, Y_CLASS + 0j), TypeError, "y holds complex numbers"),
    ("numeric strings x", lambda m: m.fit(X.astype(str), Y_CLASS), TypeError, "x holds strings"),
    ("numeric strings y", lambda m: m.fit(X, Y_CLASS.astype(str)), TypeError, "y holds strings"),
    ("strings in object x", lambda m: m.fit(np.where(X > 0, X, "1").astype(object), Y_CLASS),
     TypeError, "x is an object array"),
    ("strings in a list", lambda m: m.fit(X.tolist(), ["0", "1"] * 20), TypeError, "y holds strings"),
    ("datetime x", lambda m: m.fit(np.zeros((40, 4), "datetime64[s]"), Y_CLASS), TypeError,
     "not numeric"),
    # Non-finite or huge float labels: a clear error, and no cast warning first
    ("nan labels", lambda m: m.fit(X, np.where(Y_CLASS == 2, np.nan, Y_CLASS)), ValueError,
     "y contains NaN or infinite"),
    ("inf labels", lambda m: m.fit(X, np.where(Y_CLASS == 2, np.inf, Y_CLASS)), ValueError,
     "y contains NaN or infinite"),
    ("huge float labels", lambda m: m.fit(X, np.where(Y_CLASS == 2, 1e300, Y_CLASS)), ValueError,
     r"y labels must be in \[0, 3\)"),
    ("huge int labels", lambda m: m.fit(X, np.where(Y_CLASS == 2, 2**40, Y_CLASS)), ValueError,
     r"y labels must be in \[0, 3\)"),
    ("nan val labels", lambda m: m.fit(X, Y_CLASS, validation_data=(X, Y_CLASS * np.nan)),
     ValueError, "y_val contains NaN"),
    ("nan labels in evaluate", lambda m: m.evaluate(X, Y_CLASS * np.nan), ValueError,
     "y contains NaN"),
    ("nan labels in train_on_batch", lambda m: m.train_on_batch(X, Y_CLASS + np.inf), ValueError,
     "y contains NaN"),
]  # fmt: skip


def training_state(model):
    """Host copies of the weights, optimizer step count and optimizer slots."""
    return model.get_weights(), model.optimizer.get_state()


def assert_state_unchanged(model, before):
    weights, state = before
    for a, b in zip(weights, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    now = model.optimizer.get_state()
    assert now["iterations"] == state["iterations"]
    assert now["slots"].keys() == state["slots"].keys()
    for key, slots in state["slots"].items():
        for name, value in slots.items():
            np.testing.assert_array_equal(now["slots"][key][name], value)


@pytest.mark.parametrize(
    ("case", "call", "error", "message"), BAD_FITS, ids=[c[0] for c in BAD_FITS]
)
def test_bad_fit_input_is_refused_and_changes_nothing(case, call, error, message, placement):
    model = _fitted(placement)
    before = training_state(model)
    with pytest.raises(error, match=message):
        call(model)
    assert_state_unchanged(model, before)


def test_data_of_another_library_is_refused(placement):
    if placement.name == "numpy":
        pytest.skip("needs a second library")
    model = classifier()  # numpy, from host data
    model.fit(X, Y_CLASS, epochs=1, verbose=0)
    before = model.get_weights()
    with pytest.raises(
        TypeError, match=f"x is a {placement.name} array but the model lives on numpy"
    ):
        model.fit(_backend.asarray(X, placement, "float64"), Y_CLASS)
    with pytest.raises(TypeError, match=f"is a {placement.name} array"):
        model.predict(_backend.asarray(X, placement, "float64"))
    np.testing.assert_array_equal(before[0], model.get_weights()[0])


def test_data_on_another_device_is_refused():
    pytest.importorskip("array_api_strict")
    model = classifier(_backend.get_backend("array_api_strict", "device1"))
    cpu = _backend.get_backend("array_api_strict")
    with pytest.raises(ValueError, match="is on device"):
        model.fit(_backend.asarray(X, cpu, "float64"), _backend.asarray(Y_CLASS, cpu))


def test_binary_targets_must_be_probabilities():
    model = xn.Sequential([layers.Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", optimizer="sgd")
    with pytest.raises(ValueError, match=r"must be in \[0, 1\]"):
        model.fit(X, Y_BIN * 2, verbose=0)


def test_one_hot_shape_is_checked():
    model = classifier()
    model.compile(loss="categorical_crossentropy", optimizer="sgd")
    with pytest.raises(ValueError, match="use SparseCategoricalCrossentropy for integer labels"):
        model.fit(X, Y_CLASS, verbose=0)


def test_fit_before_compile():
    model = xn.Sequential([layers.Dense(1)])
    with pytest.raises(RuntimeError, match=r"call compile\(loss=..., optimizer=...\) before fit"):
        model.fit(X, Y_REG)
    with pytest.raises(RuntimeError, match="before evaluate"):
        model.evaluate(X, Y_REG)


def test_unknown_names_suggest():
    model = xn.Sequential([layers.Dense(1)])
    with pytest.raises(
        ValueError, match="Unknown loss 'binary_crossentropyy'. Did you mean 'binary_crossentropy'"
    ):
        model.compile(loss="binary_crossentropyy", optimizer="sgd")
    with pytest.raises(ValueError, match="Unknown optimizer 'adma'. Did you mean 'adam'"):
        model.compile(loss="mse", optimizer="adma")
    with pytest.raises(ValueError, match="Unknown metric 'acuracy'. Did you mean 'accuracy'"):
        model.compile(loss="mse", optimizer="sgd", metrics=["acuracy"])
    with pytest.raises(ValueError, match="Unknown backend 'troch'. Did you mean 'torch'"):
        xn.Sequential([layers.Dense(1)], backend="troch")


def test_negative_learning_rate_and_bad_optimizer_arguments():
    with pytest.raises(ValueError, match="learning_rate must be positive"):
        xn.optimizers.SGD(learning_rate=-0.1)
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\)"):
        xn.optimizers.SGD(momentum=1.5)
    opt = xn.optimizers.Adam()
    with pytest.raises(ValueError, match="learning_rate must be positive"):
        opt.learning_rate = -1.0
    assert opt.learning_rate == 0.001


def test_set_weights_checks_everything_first():
    model = classifier()
    model.build(4)
    before = model.get_weights()
    bad = [w.copy() for w in before]
    bad[2] = np.zeros((9, 3))
    with pytest.raises(ValueError, match=r"weight dense_1/kernel has shape \(8, 3\), got \(9, 3\)"):
        model.set_weights(bad)
    with pytest.raises(ValueError, match="expected 4 weight arrays, got 1"):
        model.set_weights(before[:1])
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------ the rest of the API


def test_get_weights_order_and_round_trip(placement):
    model = classifier(placement).build(4)
    shapes = [w.shape for w in model.get_weights()]
    assert shapes == [(4, 8), (8,), (8, 3), (3,)]
    new = [np.full(s, 0.5) for s in shapes]
    model.set_weights(new)
    for a, b in zip(new, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_to_moves_parameters_and_optimizer_state(placement):
    model = classifier(optimizer=xn.optimizers.Adam(0.01))
    model.fit(X, Y_CLASS, epochs=2, verbose=0)
    before = xn.to_numpy(model.predict(X))
    model.to(placement.name, placement.device)
    assert model.backend == placement.name
    for slots in model.optimizer.state.values():
        for value in slots.values():
            assert _backend.device_of(value) == placement.device
    assert_close(model.predict(X), before, rtol=1e-12)
    model.fit(X, Y_CLASS, epochs=1, verbose=0)  # keeps training there


def test_summary_prints_layers_and_counts():
    model = classifier().build(4)
    out = io.StringIO()
    model.summary(print_fn=lambda s: out.write(s))
    text = out.getvalue()
    assert "dense (Dense)" in text and "(None, 8)" in text and "Total params: 67" in text
    with pytest.raises(ValueError, match="not built"):
        classifier().summary()


def test_train_on_batch_returns_a_float_and_learns():
    model = xn.Sequential([layers.Dense(1)], dtype="float64")
    model.compile(loss="mse", optimizer=xn.optimizers.SGD(0.1))
    first = model.train_on_batch(X, Y_REG)
    for _ in range(200):
        last = model.train_on_batch(X, Y_REG)
    assert isinstance(first, float) and last < 1e-3 * first


def test_metrics_mae_mse_and_binary_accuracy():
    model = xn.Sequential([layers.Dense(1, activation="sigmoid")], dtype="float64")
    model.compile(
        loss="binary_crossentropy",
        optimizer=xn.optimizers.SGD(0.5),
        metrics=["accuracy", "mae", "mse"],
    )
    model.fit(X, Y_BIN, epochs=20, verbose=0)
    result = model.evaluate(X, Y_BIN)
    p = xn.to_numpy(model.predict(X))[:, 0]
    assert result["accuracy"] == pytest.approx(((p > 0.5) == (Y_BIN > 0.5)).mean())
    assert result["mae"] == pytest.approx(np.abs(p - Y_BIN).mean(), rel=1e-12)
    assert result["mse"] == pytest.approx(((p - Y_BIN) ** 2).mean(), rel=1e-12)
    assert result["loss"] == pytest.approx(
        -np.mean(Y_BIN * np.log(p) + (1 - Y_BIN) * np.log(1 - p)), rel=1e-9
    )


def test_verbose_reports_each_epoch(capsys):
    classifier().fit(X, Y_CLASS, epochs=2, verbose=1)
    shown = capsys.readouterr()
    text = shown.out + shown.err  # a bar on a terminal, one line per epoch elsewhere
    assert "Epoch 1/2" in text and "Epoch 2/2" in text and "loss" in text and "accuracy" in text
    classifier().fit(X, Y_CLASS, epochs=1, verbose=0)
    assert capsys.readouterr() == ("", "")


def test_float32_by_default_and_integer_inputs_are_cast():
    model = xn.Sequential([layers.Dense(2)])
    model.compile(loss="mse", optimizer="sgd")
    model.fit(np.arange(12).reshape(6, 2), np.ones((6, 2)), verbose=0)
    assert model.predict(np.ones((1, 2), dtype=np.int64)).dtype == np.float32
    assert math.isfinite(model.evaluate(np.ones((2, 2)), np.ones((2, 2)))["loss"])


def test_bad_train_on_batch_input_changes_nothing(placement):
    model = _fitted(placement)
    before = model.get_weights()
    for x, y in [(X[:, :2], Y_CLASS), (X, Y_CLASS + 3), (np.full_like(X, np.nan), Y_CLASS)]:
        with pytest.raises(ValueError):
            model.train_on_batch(x, y)
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------ the public step


def test_compute_gradients_changes_nothing_and_matches_finite_differences(placement):
    model = classifier(placement)
    data = model.prepare(X, Y_CLASS)
    before = model.get_weights()
    step = model.compute_gradients(data.x, data.y, training=False)
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert model.optimizer.iterations == 0
    assert set(step.gradients) == {"dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias"}
    assert max(xn.gradcheck(model, X, Y_CLASS).values()) < 1e-6
    assert_close(step.loss, model.evaluate(X, Y_CLASS)["loss"], rtol=1e-12)


def test_train_step_is_compute_gradients_then_the_optimizer(placement):
    model, twin = classifier(placement), classifier(placement)
    data = model.prepare(X, Y_CLASS)
    twin.build(4)
    grads = {
        k: xn.to_numpy(g).copy()
        for k, g in twin.compute_gradients(data.x, data.y).gradients.items()
    }
    model.train_step(data.x, data.y)
    lr = 0.1  # classifier() compiles SGD(0.1)
    for (layer, name), w in zip(
        [(lay, n) for lay in twin.layers for n in lay.params], model.get_weights(), strict=True
    ):
        expected = xn.to_numpy(layer.params[name]) - lr * grads[f"{layer.name}/{name}"]
        np.testing.assert_allclose(w, expected, rtol=1e-12, atol=1e-15)
    assert model.optimizer.iterations == 1


def test_fit_and_train_on_batch_go_through_train_step():
    class Counting(xn.Sequential):
        calls = 0

        def train_step(self, x, y, sample_weight=None):
            Counting.calls += 1
            return super().train_step(x, y, sample_weight)

    model = Counting([layers.Dense(3)], dtype="float64")
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    model.fit(X, Y_CLASS, epochs=2, batch_size=10, verbose=0)
    assert Counting.calls == 8
    model.train_on_batch(X, Y_CLASS)
    assert Counting.calls == 9


def test_prepare_checks_data_and_needs_compile():
    model = xn.Sequential([layers.Dense(3)])
    with pytest.raises(RuntimeError, match="compile"):
        model.prepare(X, Y_CLASS)
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        model.prepare(X, Y_CLASS + 3)


# ------------------------------------------------------------ built at construction


def _declared(kind, **kw):
    """The same 4-8-3 classifier, its input size given three ways."""
    first = {
        "input_dim": [layers.Dense(8, activation="relu", input_dim=4)],
        "input_shape": [layers.Dense(8, activation="relu", input_shape=(4,))],
        "Input": [layers.Input(shape=(4,)), layers.Dense(8, activation="relu")],
    }[kind]
    model = xn.Sequential([*first, layers.Dense(3, activation="softmax")], seed=3, **kw)
    model.compile(loss="sparse_categorical_crossentropy", optimizer=xn.optimizers.Adam(0.01))
    return model


@pytest.mark.parametrize("kind", ["input_dim", "input_shape", "Input"])
def test_a_known_input_size_builds_on_the_host_at_construction(kind):
    model = _declared(kind)
    assert model.built and model.placement is None and model.backend is None
    out = io.StringIO()
    model.summary(print_fn=out.write)
    assert "Total params: 67" in out.getvalue() and "host" in out.getvalue()
    assert model.count_params() == 67 and repr(model).startswith("Sequential(2 layers, host")
    weights = model.get_weights()
    assert [w.dtype for w in weights] == [np.float32] * 4
    # The same draws as a model built by its first data, with the same seed.
    lazy = classifier(dtype="float32", seed=3).build(4)
    for a, b in zip(weights, lazy.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    model.set_weights([w + 1.0 for w in weights])
    np.testing.assert_array_equal(model.get_weights()[0], weights[0] + 1.0)
    assert model.placement is None


def test_add_builds_once_the_input_size_is_known():
    model = xn.Sequential(seed=3)
    model.add(layers.Input(shape=(4,)))
    assert not model.built
    model.add(layers.Dense(8, activation="relu"))
    assert model.built
    model.add(layers.Dense(3, activation="softmax"))
    assert model.built and model.count_params() == 67
    for a, b in zip(model.get_weights(), _declared("Input").get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    model.fit(X, Y_CLASS, epochs=1, verbose=0)
    trained = model.get_weights()
    model.add(layers.Dense(2))  # a built, trained model keeps its weights
    assert model.layers[-1].built and model.output_dim == 2
    for a, b in zip(trained, model.get_weights()[:4], strict=True):
        np.testing.assert_array_equal(a, b)
    added = model.get_weights()[4]
    model.fit(X, Y_CLASS % 2, epochs=1, verbose=0)  # the new layer trains too
    assert not np.array_equal(model.get_weights()[4], added)


@pytest.mark.parametrize("kind", ["input_dim", "Input"])
def test_a_host_built_model_trains_where_its_first_data_lives(kind, placement):
    model = _declared(kind, dtype="float64")
    initial = model.get_weights()
    x = _backend.asarray(X, placement, "float64")
    model.fit(x, _backend.asarray(Y_CLASS, placement), epochs=2, verbose=0)
    assert model.backend == placement.name and model.device == placement.device
    for value in model.layers[0].params.values():
        assert _backend.namespace(value) is placement.xp
    twin = classifier(placement, seed=3, optimizer=xn.optimizers.Adam(0.01))
    for a, b in zip(initial, twin.build(4).get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    twin.fit(X, Y_CLASS, epochs=2, verbose=0)
    for a, b in zip(model.get_weights(), twin.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_an_explicit_or_default_backend_builds_there(placement):
    model = _declared("Input", backend=placement.name, device=placement.device, dtype="float64")
    assert model.placement == placement
    kernel = model.layers[0].params["kernel"]
    assert _backend.namespace(kernel) is placement.xp
    assert _backend.device_of(kernel) == placement.device
    with xn.backend(placement.name, device=placement.device):
        model = _declared("input_dim", dtype="float64")
    assert model.placement == placement
    assert _backend.device_of(model.layers[1].params["bias"]) == placement.device


def test_a_failed_first_fit_leaves_a_host_built_model_as_it_was(placement):
    model, twin = _declared("Input", dtype="float64"), _declared("Input", dtype="float64")
    before = model.get_weights()
    x = _backend.asarray(X, placement, "float64")
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        model.fit(x, _backend.asarray(Y_CLASS + 5, placement), verbose=0)

    class Boom(xn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        model.fit(x, _backend.asarray(Y_CLASS, placement), callbacks=[Boom()], verbose=0)
    assert model.placement is None and model.optimizer.iterations == 0
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert all(isinstance(v, np.ndarray) for v in model.layers[0].params.values())
    # Still trains wherever its first successful data lives, as its twin.
    a = model.fit(X, Y_CLASS, epochs=2, verbose=0).history["loss"]
    assert a == twin.fit(X, Y_CLASS, epochs=2, verbose=0).history["loss"]
    assert model.backend == "numpy"


def test_unbuilt_models_say_how_to_build():
    model = xn.Sequential([layers.Dense(2)])
    with pytest.raises(ValueError, match=r"not built yet: give its input size \(Input"):
        model.summary()
    with pytest.raises(ValueError, match="not built yet"):
        model.set_weights([])
    assert model.get_weights() == [] and model.count_params() == 0
    with pytest.raises(ValueError, match="input_dim must be a positive int"):
        model.build(0)
    built = _declared("Input")
    built.build(4)  # building a built model only checks the size
    with pytest.raises(ValueError, match="takes inputs with 4 features, not 5"):
        built.build(5)


def test_config_keeps_the_input_size(placement):
    model = _declared("Input")
    config = model.get_config()
    assert config["input_dim"] == 4
    again = xn.Sequential.from_config(config)
    assert again.built and again.get_config() == config
    for a, b in zip(model.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # same seed, same draws
    unbuilt = classifier().get_config()
    assert unbuilt["input_dim"] is None and not xn.Sequential.from_config(unbuilt).built


def test_pickling_keeps_the_placement_or_its_absence(placement):
    import pickle

    host = pickle.loads(pickle.dumps(_declared("Input", dtype="float64")))
    assert host.built and host.placement is None
    host.fit(_backend.asarray(X, placement, "float64"), Y_CLASS, epochs=1, verbose=0)
    assert host.backend == placement.name
    copied = pickle.loads(pickle.dumps(host))
    assert copied.placement == placement
    assert_close(copied.predict(X), xn.to_numpy(host.predict(X)), rtol=1e-12)
