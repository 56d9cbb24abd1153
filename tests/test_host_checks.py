"""Host data is checked on the host and moved once; what ``fit`` does around
its steps (fills, copies, the shuffle, reading the figures) compiles nothing
on JAX; the same results as before on every backend."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import xpnet as xn
from xpnet import _backend, _data
from xpnet.layers import Dense

RNG = np.random.default_rng(11)
X = RNG.normal(size=(60, 4))
Y = RNG.integers(0, 3, size=60)
W = RNG.uniform(0.5, 2.0, size=60)


def model_on(placement, **compile_options):
    model = xn.Sequential(
        [Dense(6, activation="relu"), Dense(3, activation="softmax")],
        backend=placement.name, device=placement.device, dtype="float64", seed=5,
    )  # fmt: skip
    model.compile(
        loss="sparse_categorical_crossentropy",
        optimizer=xn.optimizers.Adam(0.01),
        metrics=["accuracy"],
        **compile_options,
    )
    return model


def same_arrays(a, b):
    for wa, wb in zip(a, b, strict=True):
        np.testing.assert_allclose(wa, wb, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------- staged, placed


def test_host_data_stays_on_the_host_until_placed(placement):
    spec = _data.Spec(placement, _backend.float_dtype(placement.xp, "float64"), "sparse", 3)
    checks = _data.Checks()
    x = _data.features(X.tolist(), spec, checks)
    data = _data.labelled(x, Y, W, None, spec, checks)
    assert all(isinstance(a, np.ndarray) for a in (data.x, data.y, data.sample_weight))
    moved = _data.placed(data, placement)
    for host, there in zip((data.x, data.y, data.sample_weight),
                           (moved.x, moved.y, moved.sample_weight), strict=True):  # fmt: skip
        assert _backend.namespace(there) is placement.xp
        assert _backend.device_of(there) == placement.device
        np.testing.assert_array_equal(_backend.to_numpy(there), host)
    assert moved.y.dtype == placement.xp.int32


def test_device_data_is_checked_where_it_is(placement, make):
    spec = _data.Spec(placement, _backend.float_dtype(placement.xp, "float64"), "sparse", 3)
    checks = _data.Checks()
    x = _data.features(make(X), spec, checks)
    data = _data.labelled(x, make(Y, "int64"), make(W), None, spec, checks)
    assert _data.placed(data, placement) == data  # nothing left to move
    bad = make(np.where(np.arange(60)[:, None] == 7, np.nan, X))
    with pytest.raises(ValueError, match="x contains NaN"):
        checks = _data.Checks()
        _data.features(bad, spec, checks)
        checks.raise_first()


def test_checks_raise_the_first_failure_in_the_order_they_came(placement, make):
    for flags, first in [
        ((np.False_, make([True], "bool")[0], True), "b"),
        ((make([False], "bool")[0], np.True_, make([True], "bool")[0]), "b"),
        ((make([True], "bool")[0], np.True_, False), "a"),
        ((False, make([False], "bool")[0], np.bool_(True)), "c"),
    ]:
        checks = _data.Checks()
        for flag, name in zip(flags, "abc", strict=True):
            checks.fail_if(flag, name)
        with pytest.raises(ValueError, match=f"^{first}$"):
            checks.raise_first()
    checks = _data.Checks()
    checks.fail_if(np.False_, "a")
    checks.fail_if(make([False], "bool")[0], "b")
    checks.raise_first()  # all clear: nothing raised


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        (np.where(X > 2.5, np.inf, X), Y, "x contains NaN"),  # x first, though y is bad too
        (X, np.where(np.arange(60) == 3, 9, Y), r"y labels must be in \[0, 3\)"),
        (X, np.where(np.arange(60) == 3, 1.5, Y), "whole numbers"),
    ],
)
def test_bad_host_data_is_refused_and_changes_nothing(placement, x, y, message):
    model = model_on(placement)
    y = np.where(np.arange(60) == 0, -1, y) if message.startswith("x") else y
    with pytest.raises(ValueError, match=message):
        model.fit(x, y, epochs=1, validation_split=0.2, verbose=0)
    assert not model.built


# ---------------------------------------------------------------- the same numbers


@pytest.mark.parametrize("weights", ["none", "sample", "class", "both"])
def test_validation_split_cut_on_the_host_equals_explicit_validation_data(placement, weights):
    sw = W if weights in ("sample", "both") else None
    cw = {0: 2.0, 2: 0.5} if weights in ("class", "both") else None
    a, b = model_on(placement), model_on(placement)
    options = dict(epochs=2, batch_size=16, verbose=0, class_weight=cw)
    split = a.fit(X, Y, sample_weight=sw, validation_split=0.25, **options).history
    cut = 45
    val = (X[cut:], Y[cut:]) if sw is None and cw is None else None
    if val is None:  # the held-out rows keep their weights, class weights included
        full = (sw if sw is not None else np.ones(60)) * (
            np.ones(60) if cw is None else np.vectorize(lambda c: cw.get(c, 1.0))(Y)
        )
        val = (X[cut:], Y[cut:], full[cut:])
    explicit = b.fit(X[:cut], Y[:cut], sample_weight=None if sw is None else sw[:cut],
                     validation_data=val, **options).history  # fmt: skip
    assert split.keys() == explicit.keys()
    for key in split:
        np.testing.assert_allclose(split[key], explicit[key], rtol=1e-12)
    same_arrays(a.get_weights(), b.get_weights())


def test_host_sample_weights_with_device_labels_and_class_weights(placement, make):
    cw = {1: 3.0}
    a, b = model_on(placement), model_on(placement)
    ha = a.fit(X, Y, sample_weight=W, class_weight=cw, epochs=2, verbose=0).history
    hb = b.fit(make(X), make(Y, "int64"), sample_weight=W, class_weight=cw, epochs=2,
               verbose=0).history  # fmt: skip
    np.testing.assert_allclose(ha["loss"], hb["loss"], rtol=1e-12)
    same_arrays(a.get_weights(), b.get_weights())


# ---------------------------------------------------------------- bookkeeping


def test_bookkeeping_helpers_on_every_backend(placement, make):
    xp = placement.xp
    host = X[:5].copy()
    a = make(host.copy())
    ones = _backend.full_like(a, 1.0)
    assert ones.shape == a.shape and ones.dtype == a.dtype
    assert _backend.device_of(ones) == placement.device
    np.testing.assert_array_equal(_backend.to_numpy(ones), np.ones((5, 4)))
    filled = _backend.filled((2, 3), 0.5, a.dtype, placement)
    assert _backend.device_of(filled) == placement.device and filled.dtype == a.dtype
    np.testing.assert_array_equal(_backend.to_numpy(filled), np.full((2, 3), 0.5))
    copy = _backend.copy_array(a)
    np.testing.assert_array_equal(_backend.to_numpy(copy), host)
    if _backend.is_writeable(a):  # the copy is independent
        a[0, 0] = 99.0
        assert float(_backend.to_numpy(copy)[0, 0]) == host[0, 0]
    copies = _backend.copy_arrays([a, ones, filled])
    for original, copied in zip((a, ones, filled), copies, strict=True):
        assert copied is not original and _backend.device_of(copied) == placement.device
        np.testing.assert_array_equal(_backend.to_numpy(copied), _backend.to_numpy(original))
    assert _backend.copy_arrays([]) == []
    index = make([4, 0, 2], "int64")
    y = make(Y[:5], "int64")
    taken = _backend.take_rows([a, None, y], index)
    assert taken[1] is None
    np.testing.assert_array_equal(_backend.to_numpy(taken[2]), Y[:5][[4, 0, 2]])
    np.testing.assert_array_equal(_backend.to_numpy(taken[0]), _backend.to_numpy(a)[[4, 0, 2]])
    values = _backend.read_scalars([xp.sum(copy), xp.max(copy), copy[1, 1]])
    assert values == pytest.approx([host.sum(), host.max(), host[1, 1]], rel=1e-12)
    assert all(type(v) is float for v in values)


def test_jax_copies_are_new_buffers_and_fills_work_in_a_trace():
    jax = pytest.importorskip("jax")
    a = jax.numpy.arange(6.0).reshape(2, 3)
    copy = _backend.copy_array(a)
    assert copy.unsafe_buffer_pointer() != a.unsafe_buffer_pointer()
    (again,) = _backend.copy_arrays([a])
    assert again.unsafe_buffer_pointer() != a.unsafe_buffer_pointer()
    a.delete()  # a donated buffer: the copies must survive it
    np.testing.assert_array_equal(np.asarray(again), np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(np.asarray(copy), np.arange(6.0).reshape(2, 3))

    @jax.jit
    def traced(x):
        return _backend.full_like(x, 2.0) + _backend.copy_array(x)

    np.testing.assert_array_equal(np.asarray(traced(copy)), np.arange(6.0).reshape(2, 3) + 2)


def test_a_first_jax_fit_on_new_data_compiles_only_its_own_programs(caplog):
    """Zeros, fills, checks, the validation split and the figures compile
    nothing: only the step (full batches and the last, shorter one), the
    epoch's shuffle and the validation chunk do; a second fit adds the
    rollback's copy of the weights (none to copy before the first)."""
    jax = pytest.importorskip("jax")

    def model(hidden):
        net = xn.Sequential([Dense(hidden, activation="relu"), Dense(3, activation="softmax")],
                            backend="jax", seed=0)  # fmt: skip
        net.compile(loss="sparse_categorical_crossentropy", optimizer="adam",
                    metrics=["accuracy"])  # fmt: skip
        return net

    def fit(net, n, features):
        rng = np.random.default_rng(n)
        x, y = rng.normal(size=(n, features)), rng.integers(0, 3, size=n)
        return net.fit(x, y, epochs=2, batch_size=16, validation_split=0.2, verbose=0)

    def compiled_during(run):
        caplog.clear()
        with jax.log_compiles(True):
            run()
        return sorted(
            r.getMessage().split(" of ")[1].split(" in ")[0]
            for r in caplog.records
            if r.getMessage().startswith("Finished XLA compilation")
        )

    warm = model(5)
    fit(warm, 50, 3)  # the library's own first uses (namespaces, dtypes) out of the count
    fit(warm, 50, 3)
    caplog.set_level(logging.WARNING, logger="jax")
    net = model(11)  # every shape new: 66 training rows, 4 batches of 16 and one of 2
    first = compiled_during(lambda: fit(net, 83, 7))
    assert first == ["jit(_jax_take_rows)", "jit(chunk)", "jit(one)", "jit(one)"]
    assert compiled_during(lambda: fit(net, 83, 7)) == ["jit(_jax_copies)"]
    assert compiled_during(lambda: fit(net, 83, 7)) == []


def test_a_jaxlib_that_refuses_the_cpu_options_compiles_without_them(monkeypatch):
    pytest.importorskip("jax")
    from xpnet._backend import compiler

    monkeypatch.setattr(compiler, "CPU_OPTIONS", {"xla_no_such_option_here": ""})
    monkeypatch.setattr(compiler.JaxCompiler, "options_refused", False)
    placement = _backend.get_backend("jax")
    jit = compiler.compiler_for(placement).jit
    assert compiler.compiler_for(placement).cpu
    double = jit(lambda a: a * 2.0, donate=(0,))
    out = double(_backend.asarray(np.arange(3.0), placement))
    np.testing.assert_array_equal(np.asarray(out), [0.0, 2.0, 4.0])
    assert compiler.JaxCompiler.options_refused
    model = model_on(placement)  # and a whole fit, compiled without them
    eager = model_on(placement, jit_compile=False)
    h1 = model.fit(X, Y, epochs=2, batch_size=16, verbose=0).history
    h2 = eager.fit(X, Y, epochs=2, batch_size=16, verbose=0).history
    np.testing.assert_allclose(h1["loss"], h2["loss"], rtol=1e-12)


def test_other_errors_of_a_compiled_call_are_not_swallowed(monkeypatch):
    jax = pytest.importorskip("jax")
    from xpnet._backend import compiler

    monkeypatch.setattr(compiler.JaxCompiler, "options_refused", False)
    jit = compiler.compiler_for(_backend.get_backend("jax")).jit

    def broken(a):
        raise RuntimeError("a bug in the step")

    with pytest.raises(RuntimeError, match="a bug in the step"):
        jit(broken)(jax.numpy.arange(3.0))
    assert not compiler.JaxCompiler.options_refused


# ---------------------------------------------------------------- checks every time


def test_device_arrays_are_checked_by_every_fit(placement, make, monkeypatch):
    """No check is remembered between calls: on the CPU a JAX array may share
    its memory with a NumPy array that the user can still write to."""
    calls = []
    real = _data.any_nonfinite
    monkeypatch.setattr(_data, "any_nonfinite", lambda a: calls.append(a) or real(a))
    model = model_on(placement)
    x, y = make(X), make(Y, "int32")
    for _ in range(3):
        model.fit(x, y, epochs=1, verbose=0)
    assert len(calls) == 3


@pytest.mark.parametrize("target", ["x", "y"])
def test_one_nan_in_large_device_data_is_refused_and_changes_nothing(placement, make, target):
    """4096 rows: large enough that a reduction runs vectorised."""
    rng = np.random.default_rng(2)
    host_x, host_y = rng.normal(size=(4096, 4)), rng.normal(size=(4096, 1))
    (host_x if target == "x" else host_y)[1234, 0] = np.nan
    model = xn.Sequential([Dense(3, activation="relu"), Dense(1)], backend=placement.name,
                          device=placement.device, dtype="float64", seed=5)  # fmt: skip
    model.compile(loss="mse", optimizer=xn.optimizers.Adam(0.01))
    model.build(4)
    before = model.get_weights()
    x, y = make(host_x), make(host_y)
    message = f"{target} contains NaN or infinite values"
    calls = [lambda: model.fit(x, y, epochs=1, verbose=0),
             lambda: model.train_on_batch(x, y),
             lambda: model.evaluate(x, y)]  # fmt: skip
    if target == "x":
        calls.append(lambda: model.predict(x))
    for call in calls:
        with pytest.raises(ValueError, match=message):
            call()
        same_arrays(model.get_weights(), before)


def test_a_jax_array_over_host_memory_written_after_a_fit_is_refused():
    jax = pytest.importorskip("jax")
    rng = np.random.default_rng(0)
    for _ in range(50):  # device_put shares an aligned host buffer on the CPU
        host = rng.normal(size=(64, 4))
        x = jax.device_put(host)
        if x.unsafe_buffer_pointer() == host.ctypes.data:
            break
    else:
        pytest.skip("this jaxlib copies host buffers")
    y = jax.device_put(np.arange(64, dtype=np.int32) % 3)
    model = model_on(_backend.get_backend("jax"))
    model.fit(x, y, epochs=1, verbose=0)
    before = model.get_weights()
    host[5, 0] = np.nan
    with pytest.raises(ValueError, match="x contains NaN"):
        model.fit(x, y, epochs=1, verbose=0)
    same_arrays(model.get_weights(), before)


@pytest.mark.parametrize("on_device", [False, True])
def test_labels_out_of_range_with_class_weights_get_the_clear_error(placement, make, on_device):
    model = model_on(placement)
    y = np.where(np.arange(60) == 4, 3, Y)
    with pytest.raises(ValueError, match=r"y labels must be in \[0, 3\)"):
        model.fit(X, make(y, "int64") if on_device else y, class_weight={0: 2.0}, epochs=1,
                  verbose=0)  # fmt: skip
    assert not model.built


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_bfloat16_models_take_host_labels_with_class_weights(backend):
    pytest.importorskip(backend)
    model = xn.Sequential([Dense(3, activation="softmax")], backend=backend, dtype="bfloat16",
                          seed=0)  # fmt: skip
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    history = model.fit(X, Y, class_weight={1: 2.0}, sample_weight=W, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_read_scalars_takes_one_element_arrays(placement, make):
    values = _backend.read_scalars([make([1.5]), make(2.0)])
    assert values == [1.5, 2.0]
