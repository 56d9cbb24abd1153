"""The planned step, the compiled step (``jit_compile``) and
``steps_per_execution``: the same numbers as the eager step, on every backend."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

import xpnet as xn
from helpers import assert_same_training
from xpnet import _backend
from xpnet.layers import BatchNormalization, Dense, Dropout

RNG = np.random.default_rng(7)
X = RNG.normal(size=(70, 5))  # 70 rows: batches of 16 leave a partial one
Y = RNG.integers(0, 3, size=70)
W = RNG.uniform(0.5, 2.0, size=70)


def build(placement, jit_compile="auto", steps_per_execution=1, optimizer=None, metrics=()):
    model = xn.Sequential(
        [
            Dense(8, activation="tanh", kernel_regularizer=xn.regularizers.L2(1e-3)),
            BatchNormalization(),
            Dense(3, activation="softmax"),
        ],
        backend=placement.name,
        device=placement.device,
        dtype="float64",
        seed=3,
    )
    schedule = xn.schedules.ExponentialDecay(0.05, decay_steps=3, decay_rate=0.9)
    model.compile(
        loss="sparse_categorical_crossentropy",
        optimizer=optimizer or xn.optimizers.Adam(schedule),
        metrics=list(metrics),
        jit_compile=jit_compile,
        steps_per_execution=steps_per_execution,
    )
    return model


def train(model, **kwargs):
    options = dict(epochs=3, batch_size=16, verbose=0, validation_data=(X[:20], Y[:20]))
    return model.fit(X, Y, **{**options, **kwargs}).history


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"steps_per_execution": 2},
        {"steps_per_execution": 32},
        {"jit_compile": True},
    ],
    ids=["auto", "spe2", "spe32", "jit"],
)
@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weighted"])
def test_same_losses_weights_and_metrics_as_the_eager_step(placement, options, weighted):
    if options.get("jit_compile") is True and placement.name != "jax":
        pytest.skip("jit_compile=True needs JAX")
    metrics = ["accuracy", "auc", "precision"]
    eager = build(placement, jit_compile=False, metrics=metrics)
    other = build(placement, metrics=metrics, **options)
    extra = {"sample_weight": W, "class_weight": {0: 2.0}} if weighted else {}
    expected, got = train(eager, **extra), train(other, **extra)
    assert_same_training(got, expected, other, eager)
    assert other.optimizer.iterations == eager.optimizer.iterations == 15
    # and training goes on from there as it would have
    for model in (eager, other):
        model.train_on_batch(X[:10], Y[:10])
    for a, b in zip(eager.get_weights(), other.get_weights(), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("opt", ["sgd_momentum", "rmsprop", "adagrad"])
def test_every_optimizer_compiles_to_the_same_step(placement, opt):
    make = {
        "sgd_momentum": lambda: xn.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
        "rmsprop": lambda: xn.optimizers.RMSprop(0.01, momentum=0.5, clipnorm=1.0),
        "adagrad": lambda: xn.optimizers.Adagrad(0.1, clipvalue=0.01),
    }[opt]
    eager = build(placement, jit_compile=False, optimizer=make())
    other = build(placement, steps_per_execution=3, optimizer=make())
    np.testing.assert_allclose(train(other)["loss"], train(eager)["loss"], rtol=1e-12)
    for a, b in zip(eager.get_weights(), other.get_weights(), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)


def jax_placement():
    pytest.importorskip("jax")
    return _backend.get_backend("jax")


def test_the_compiled_step_is_traced_once_per_batch_size_not_per_epoch():
    model = build(jax_placement(), steps_per_execution=2)
    train(model, epochs=1)
    traces = model._compiled.traces
    # full batches (scanned and single) and the last partial batch of 6 rows
    assert 0 < traces <= 3
    train(model, epochs=4)
    train(model, epochs=2, shuffle=False)
    assert model._compiled.traces == traces


def test_no_tracer_is_left_in_the_model_after_a_compiled_fit():
    import jax

    model = build(jax_placement())
    train(model)
    held = [*model.get_weights()]
    for layer in model.layers:
        held += [*layer.params.values(), *layer.buffers.values(), *layer.grads.values()]
    for slots in model.optimizer.state.values():
        held += list(slots.values())
    assert not any(isinstance(a, jax.core.Tracer) for a in held)
    model.predict(X)  # the weights are alive (not donated away)
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_batch_callbacks_run_once_per_execution(placement):
    seen = []

    class Record(xn.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append((batch, self.model.optimizer.iterations))

    model = build(placement, steps_per_execution=2)
    model.fit(X, Y, epochs=1, batch_size=16, verbose=0, callbacks=[Record()])
    # 5 batches: executions end after batches 1, 3 and 4 (the rest)
    assert seen == [(1, 2), (3, 4), (4, 5)]


def test_a_ctrl_c_during_a_compiled_fit_keeps_the_finished_batches():
    placement = jax_placement()

    class Interrupt(xn.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                os.kill(os.getpid(), signal.SIGINT)

    model, reference = build(placement), build(placement, jit_compile=False)
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, Y, epochs=2, batch_size=16, shuffle=False, verbose=0, callbacks=[Interrupt()])
    assert model.optimizer.iterations == 3
    for start in (0, 16, 32):
        reference.train_on_batch(X[start : start + 16], Y[start : start + 16])
    for a, b in zip(reference.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)
    train(model, epochs=1)  # resumable: the state went back to the model


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"jit_compile": "yes"}, "jit_compile must be 'auto', True or False"),
        ({"jit_compile": 1}, "jit_compile must be"),
        ({"steps_per_execution": 0}, "steps_per_execution must be an int >= 1"),
        ({"steps_per_execution": 2.0}, "steps_per_execution must be"),
        ({"steps_per_execution": True}, "steps_per_execution must be"),
    ],
)
def test_bad_compile_options_are_refused_and_change_nothing(kwargs, message):
    model = xn.Sequential([Dense(1)])
    model.compile(loss="mse", optimizer="sgd")
    loss, optimizer = model.loss, model.optimizer
    with pytest.raises(ValueError, match=message):
        model.compile(loss="mae", optimizer="adam", **kwargs)
    assert model.loss is loss and model.optimizer is optimizer
    assert model.jit_compile == "auto" and model.steps_per_execution == 1


def test_jit_compile_true_where_it_cannot_compile_is_an_error_that_changes_nothing(placement):
    if placement.name == "jax":
        model = xn.Sequential(
            [Dense(4), Dropout(0.5), Dense(3)],
            backend="jax",
            dtype="float64",
        )
        model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", jit_compile=True)
        message = "layer 'dropout' draws on the host"
    else:
        model = build(placement, jit_compile=True)
        message = f"the {placement.name} backend has no step compiler"
    model.build(5)
    before = model.get_weights()
    with pytest.raises(ValueError, match=message):
        train(model)
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert model.optimizer.iterations == 0


def test_auto_trains_dropout_models_eagerly_on_jax():
    model = xn.Sequential([Dense(4), Dropout(0.5), Dense(3)], backend="jax", dtype="float64")
    jax_placement()
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    model.fit(X, Y, epochs=1, verbose=0)
    assert "_compiled" not in vars(model)


def test_an_overridden_train_step_is_what_fit_runs(placement):
    calls = []

    class Counting(xn.Sequential):
        def train_step(self, x, y, sample_weight=None):
            calls.append(int(x.shape[0]))
            return super().train_step(x, y, sample_weight)

    model = Counting([Dense(3)], backend=placement.name, device=placement.device)
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    model.fit(X, Y, epochs=1, batch_size=16, verbose=0)
    assert calls == [16, 16, 16, 16, 6]


def test_compile_options_are_saved_with_the_model(tmp_path):
    model = xn.Sequential([Dense(2, input_dim=3)])
    model.compile(loss="mse", optimizer="sgd", jit_compile=False, steps_per_execution=4)
    model.save(tmp_path / "m.xpnet")
    loaded = xn.load_model(tmp_path / "m.xpnet")
    assert loaded.jit_compile is False and loaded.steps_per_execution == 4


def test_no_host_reads_per_batch_with_several_steps_per_execution(monkeypatch):
    strict = pytest.importorskip("array_api_strict")
    cls = type(strict.asarray(0.0))
    counts = {}
    placement = _backend.get_backend("array_api_strict", "device1")
    for batch_size in (64, 4):  # 2 batches per epoch vs 18
        model = build(placement, steps_per_execution=3, metrics=["accuracy"])
        x = _backend.asarray(X, placement, "float64")
        y = _backend.asarray(Y, placement, "int32")
        seen = []
        for name in ("__float__", "__bool__", "__int__", "__array__", "__dlpack__", "tolist"):
            original = getattr(cls, name, None)
            if original is not None:

                def counted(*args, _original=original, _seen=seen, **kwargs):
                    _seen.append(1)
                    return _original(*args, **kwargs)

                monkeypatch.setattr(cls, name, counted)
        model.fit(x, y, epochs=2, batch_size=batch_size, verbose=0)
        counts[batch_size] = len(seen)
        monkeypatch.undo()
    assert 0 < counts[4] == counts[64]


def test_train_on_batch_fast_path_equals_the_checked_path(placement):
    fast, slow = build(placement), build(placement)
    x = _backend.asarray(X[:16], placement, "float64")
    y = _backend.asarray(Y[:16], placement, "int32")
    for _ in range(3):
        a = fast.train_on_batch(x, y)  # already on the device: one fused check
        b = slow.train_on_batch(X[:16].tolist(), Y[:16].tolist())  # the full checks
        assert a == pytest.approx(b, rel=1e-12, abs=1e-12)
    for u, v in zip(fast.get_weights(), slow.get_weights(), strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("nan", "x contains NaN"),
        ("inf", "x contains NaN"),
        ("label", r"labels must be in \[0, 3\)"),
        ("negative", r"labels must be in \[0, 3\)"),
        ("negative64", r"labels must be in \[0, 3\)"),
        ("scalar", r"y must hold integer labels of shape \(n_samples,\), got \(\)"),
    ],
)
def test_train_on_batch_fast_path_still_refuses_bad_values(placement, bad, message):
    model = build(placement)
    model.train_on_batch(X[:16], Y[:16])
    before = model.get_weights()
    x, y = X[:16].copy(), Y[:16].copy()
    if bad == "label":
        y[3] = 3
    elif bad.startswith("negative"):
        y[3] = -1
    else:
        x[2, 1] = np.nan if bad == "nan" else np.inf
    if bad == "scalar":  # one row, its label given as a 0-d array
        x, y = x[:1], y[0]
    xd = _backend.asarray(x, placement, "float64")
    yd = _backend.asarray(y, placement, "int64" if bad == "negative64" else "int32")
    with pytest.raises(ValueError, match=message):
        model.train_on_batch(xd, yd)
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert model.optimizer.iterations == 1


def test_train_on_batch_takes_huge_finite_values_quietly(placement):
    # their sum overflows: the one-pass check raises a false alarm, and the
    # full checks then find nothing wrong (and NumPy says nothing of the overflow)
    fast, slow = build(placement), build(placement)
    x = X[:16].copy()
    x[0, 0] = 1e307
    y = _backend.asarray(Y[:16], placement, "int32")
    a = fast.train_on_batch(_backend.asarray(x, placement, "float64"), y)
    b = slow.train_on_batch(x.tolist(), Y[:16].tolist())
    assert a == pytest.approx(b, rel=1e-12) or (np.isnan(a) and np.isnan(b))
    assert fast.optimizer.iterations == 1


def test_train_on_batch_fast_path_for_regression_targets(placement):
    fast, slow = (
        xn.Sequential([Dense(2, input_dim=5)], backend=placement.name, device=placement.device,
                      dtype="float64", seed=1)
        for _ in range(2)
    )  # fmt: skip
    for model in (fast, slow):
        model.compile(loss="mse", optimizer="sgd")
    t = RNG.normal(size=(16, 2))
    x, y = (_backend.asarray(a, placement, "float64") for a in (X[:16], t))
    assert fast.train_on_batch(x, y) == pytest.approx(slow.train_on_batch(X[:16], t.tolist()))
    bad = t.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="y contains NaN"):
        fast.train_on_batch(x, _backend.asarray(bad, placement, "float64"))


# -- found in review ---------------------------------------------------------


def test_a_later_fit_with_another_batch_size_compiles_a_new_scan():
    placement = jax_placement()
    eager, other = build(placement, jit_compile=False), build(placement, steps_per_execution=4)
    for model in (eager, other):
        for batch_size in (16, 8):
            model.fit(X, Y, epochs=1, batch_size=batch_size, shuffle=False, verbose=0)
    for a, b in zip(eager.get_weights(), other.get_weights(), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)


def test_batch_callbacks_read_live_weights_and_the_running_loss(placement, monkeypatch):
    from xpnet import _progress

    monkeypatch.setattr(_progress, "interactive", lambda stream: True)
    monkeypatch.setattr(_progress, "REFRESH_SECONDS", 0.0)
    seen = []

    class Peek(xn.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append((logs.get("loss"), float(np.sum(self.model.get_weights()[0]))))

    model = build(placement)
    model.fit(X, Y, epochs=1, batch_size=16, verbose=1, callbacks=[Peek()])
    assert len(seen) == 5 and all(loss is not None and loss > 0.1 for loss, _ in seen)
    assert len({w for _, w in seen}) == 5  # the weights move batch by batch


@pytest.mark.parametrize("labels", ["int_min", "uint8"])
def test_train_on_batch_fast_path_leaves_odd_label_types_to_the_full_checks(placement, labels):
    model, twin = build(placement), build(placement)
    x = _backend.asarray(X[:16], placement, "float64")
    if labels == "int_min":
        y = Y[:16].astype(np.int32)
        y[0] = np.iinfo(np.int32).min
        with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
            model.train_on_batch(x, _backend.asarray(y, placement))
        return
    try:
        y = _backend.asarray(Y[:16].astype(np.uint8), placement)
    except (TypeError, ValueError):
        pytest.skip(f"{placement.name} has no uint8")
    assert model.train_on_batch(x, y) == pytest.approx(twin.train_on_batch(X[:16], Y[:16]))


def test_column_major_logits_give_the_same_gradient():
    def run(x):
        model = xn.Sequential([BatchNormalization(), xn.layers.Softmax()], dtype="float64")
        model.compile(loss="sparse_categorical_crossentropy", optimizer=xn.optimizers.SGD(0.5))
        return model.fit(x, Y[:64], epochs=3, batch_size=16, shuffle=False, verbose=0)

    x = X[:64, :3]
    np.testing.assert_allclose(
        run(np.asfortranarray(x)).history["loss"], run(np.ascontiguousarray(x)).history["loss"]
    )


def test_a_loss_or_forward_override_is_what_training_uses(placement):
    class Doubled(xn.losses.MeanSquaredError):
        def compute(self, y_true, y_pred, sample_weight=None, *, logits=False, reduction=None):
            loss, grad = super().compute(y_true, y_pred, sample_weight, logits=logits,
                                         reduction=reduction)  # fmt: skip
            return 2 * loss, 2 * grad

    class Blind(xn.Sequential):
        def forward(self, x, *, training=False, logits=False):
            return super().forward(x * 0.0, training=training, logits=logits)

    t = RNG.normal(size=(16, 1))
    fresh = xn.Sequential([Dense(1, input_dim=5)], backend=placement.name,
                          device=placement.device, dtype="float64")  # fmt: skip
    fresh.compile(loss=Doubled(), optimizer="sgd")
    before = fresh.evaluate(X[:16], t)["loss"]  # evaluate calls compute: doubled
    assert fresh.train_on_batch(X[:16], t) == pytest.approx(before, rel=1e-12)

    blind = Blind([Dense(1, input_dim=5)], backend=placement.name, device=placement.device,
                  dtype="float64")  # fmt: skip
    blind.compile(loss="mse", optimizer="sgd")
    kernel = blind.get_weights()[0].copy()
    blind.fit(X, RNG.normal(size=70), epochs=1, batch_size=16, verbose=0)
    np.testing.assert_array_equal(blind.get_weights()[0], kernel)  # only the bias learned


def test_train_on_batch_takes_ndarray_subclasses_and_stays_quiet_on_float16():
    model = xn.Sequential([Dense(3, input_dim=5)], dtype="float64")
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    with pytest.warns(PendingDeprecationWarning):  # NumPy's own note on np.matrix
        matrix = np.asmatrix(X[:16])
    assert np.isfinite(model.train_on_batch(matrix, Y[:16]))
    half = xn.Sequential([Dense(1, input_dim=256)], dtype="float16")
    half.compile(loss="mse", optimizer="sgd")
    big = np.full((64, 256), 8.0, dtype=np.float16)  # sums past float16's range
    half.train_on_batch(big, np.zeros((64, 1), np.float16))  # no overflow warning (errors here)


def test_jit_compile_true_refuses_before_any_callback_runs():
    jax_placement()
    began = []

    class Begin(xn.callbacks.Callback):
        def on_train_begin(self, logs=None):
            began.append(1)

    model = xn.Sequential([Dense(4), Dropout(0.5), Dense(3)], backend="jax", dtype="float64")
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", jit_compile=True)
    with pytest.raises(ValueError, match="draws on the host"):
        model.fit(X, Y, epochs=1, verbose=0, callbacks=[Begin()])
    assert began == []


# -- compiled evaluation ---------------------------------------------------


def trained_twins():
    """Two JAX models with the same weights: evaluation compiled, and not."""
    compiled = build(jax_placement(), metrics=["accuracy", "auc", "precision"])
    train(compiled, epochs=1)
    eager = build(jax_placement(), jit_compile=False, metrics=["accuracy", "auc", "precision"])
    eager.build(X.shape[1])
    eager.set_weights(compiled.get_weights())
    return compiled, eager


@pytest.mark.parametrize("batch_size", [1, 7, 70, None])
def test_compiled_evaluate_gives_the_eager_numbers_at_every_batch_size(batch_size):
    compiled, eager = trained_twins()
    before = compiled.get_weights()
    for kwargs in ({}, {"sample_weight": W}):
        got = compiled.evaluate(X, Y, batch_size=batch_size, **kwargs)
        expected = eager.evaluate(X, Y, batch_size=batch_size, **kwargs)
        assert got.keys() == expected.keys()
        for key in expected:
            np.testing.assert_allclose(got[key], expected[key], rtol=1e-12, atol=1e-12)
    assert not hasattr(eager, "_evaluation")  # jit_compile=False: op by op
    # evaluating reads the weights and buffers, it does not consume them
    for a, b in zip(before, compiled.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_compiled_evaluate_is_traced_once_per_data_and_chunk_size():
    compiled, _ = trained_twins()
    validation = compiled._evaluation.traces  # fit's val_ numbers: one chunk of 20
    assert validation == 1
    compiled.evaluate(X, Y, batch_size=16)  # chunks of 16 and a last one of 6
    traces = compiled._evaluation.traces
    assert traces == validation + 2
    compiled.evaluate(X, Y, batch_size=16)
    compiled.evaluate(2 * X, Y, batch_size=16, sample_weight=None)
    assert compiled._evaluation.traces == traces
    # the program cuts its chunk from the whole data: other data sizes trace again
    compiled.evaluate(X[:32], Y[:32], batch_size=16)
    assert compiled._evaluation.traces == traces + 1
    # a new compile() forgets the program: new metrics are honoured
    compiled.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", metrics=["recall"])
    logs = compiled.evaluate(X, Y)
    assert set(logs) == {"loss", "recall"}
    assert compiled._evaluation.traces == 1


def test_a_model_that_overrides_forward_evaluates_op_by_op():
    class Doubled(xn.Sequential):
        def forward(self, x, *, training=False, logits=False):
            out, backward = super().forward(x, training=training, logits=logits)
            return 2.0 * out, backward

    model = Doubled([Dense(3, activation="softmax")], backend="jax", dtype="float64", seed=0)
    pytest.importorskip("jax")
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    model.evaluate(X, Y)
    assert not hasattr(model, "_evaluation")
