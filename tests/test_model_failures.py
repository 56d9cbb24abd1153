"""When fit goes wrong: rollback, KeyboardInterrupt, device inputs a cast
would misread, negative strides, and the memory a shuffled fit holds."""

from __future__ import annotations

import os
import signal
import tracemalloc

import numpy as np
import pytest

import xpnet as xn
from test_model import Y_CLASS, X, assert_state_unchanged, training_state
from xpnet import _backend, layers


def model_with_dropout(placement, seed=0):
    model = xn.Sequential(
        [layers.Dense(8, activation="relu"), layers.Dropout(0.3), layers.Dense(3)],
        backend=placement.name,
        device=placement.device,
        dtype="float64",
        seed=seed,
    )
    model.compile(
        loss=xn.losses.SparseCategoricalCrossentropy(from_logits=True),
        optimizer=xn.optimizers.Adam(0.01),
    )
    return model


class FailAt(xn.callbacks.Callback):
    """Raises in the middle of the given epoch, after some batches trained."""

    def __init__(self, epoch, batch=1):
        self.epoch, self.batch, self.current = epoch, batch, None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch == self.batch:
            raise RuntimeError("failed part-way")


def test_a_failed_fit_on_an_unbuilt_model_leaves_it_unbuilt(placement):
    model = model_with_dropout(placement)
    twin = model_with_dropout(placement)
    with pytest.raises(RuntimeError, match="failed part-way"):
        model.fit(X, Y_CLASS, epochs=3, batch_size=8, callbacks=[FailAt(1)], verbose=0)
    assert not model.built and not any(layer.params for layer in model.layers)
    assert model.optimizer.iterations == 0 and model.optimizer.state == {}
    # An unbuilt model may still take data with another feature count, as its twin does.
    model.fit(X[:, :3], Y_CLASS, epochs=1, verbose=0)
    twin.fit(X[:, :3], Y_CLASS, epochs=1, verbose=0)
    for a, b in zip(model.get_weights(), twin.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_failed_fit_on_an_unbuilt_model_keeps_its_backend_open():
    model = xn.Sequential([layers.Dense(3)])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    with pytest.raises(ValueError, match="labels must be in"):
        model.fit(X, Y_CLASS + 5, verbose=0)
    assert model.placement is None and not model.built


@pytest.mark.parametrize("built", [False, True], ids=["unbuilt", "built"])
def test_after_a_rollback_the_next_fit_equals_an_untouched_twin(built, placement):
    """Shuffle and dropout streams are put back with the weights."""
    model, twin = model_with_dropout(placement), model_with_dropout(placement)
    if built:
        for m in (model, twin):
            m.fit(X, Y_CLASS, epochs=1, batch_size=8, verbose=0)
    before = training_state(model) if built else None
    with pytest.raises(RuntimeError, match="failed part-way"):
        model.fit(X, Y_CLASS, epochs=3, batch_size=8, callbacks=[FailAt(2)], verbose=0)
    if built:
        assert_state_unchanged(model, before)
    h1 = model.fit(X, Y_CLASS, epochs=3, batch_size=8, verbose=0)
    h2 = twin.fit(X, Y_CLASS, epochs=3, batch_size=8, verbose=0)
    assert h1.history == h2.history
    for a, b in zip(model.get_weights(), twin.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert model.optimizer.iterations == twin.optimizer.iterations


class InterruptAt(xn.layers.Layer):
    """An identity layer that sends this process a SIGINT (Ctrl-C) during
    the forward pass of training call number `at`, i.e. in the middle of a step."""

    def __init__(self, at):
        super().__init__()
        self.at, self.calls = at, 0

    def forward(self, x, *, training=False, logits=False):
        if training:
            self.calls += 1
            if self.calls == self.at:
                os.kill(os.getpid(), signal.SIGINT)
        return x, lambda dy, need_dx=True: dy


def test_keyboard_interrupt_stops_at_a_batch_boundary_and_keeps_the_progress(placement):
    def build(extra):
        model = xn.Sequential(
            [layers.Dense(5, activation="tanh"), *extra, layers.Dense(3)],
            backend=placement.name,
            device=placement.device,
            dtype="float64",
        )
        model.compile(
            loss=xn.losses.SparseCategoricalCrossentropy(from_logits=True),
            optimizer=xn.optimizers.Adam(0.01),
            jit_compile=False,  # InterruptAt counts its calls: a traced step calls it once
        )
        return model

    model, reference = build([InterruptAt(3)]), build([])
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, Y_CLASS, epochs=2, batch_size=8, shuffle=False, verbose=0)
    # The third step, during which Ctrl-C came, was finished; nothing after it.
    assert model.optimizer.iterations == 3
    for start in (0, 8, 16):
        reference.train_on_batch(X[start : start + 8], Y_CLASS[start : start + 8])
    for a, b in zip(model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    model.fit(X, Y_CLASS, epochs=1, batch_size=8, shuffle=False, verbose=0)  # resumable
    assert model.optimizer.iterations == 8


@pytest.mark.parametrize("kind", ["complex", "bool"])
def test_device_arrays_of_a_non_real_dtype(kind, placement):
    model = xn.Sequential(
        [layers.Dense(1)], backend=placement.name, device=placement.device, dtype="float64"
    )
    model.compile(loss="mse", optimizer="sgd")
    if kind == "complex":
        try:
            x = _backend.asarray(X.astype(np.complex128), placement)
        except (TypeError, ValueError):
            pytest.skip(f"{placement.name} has no complex arrays")
        with pytest.raises(TypeError, match="real numbers"):
            model.fit(x, Y_CLASS, verbose=0)
        assert not model.built
    else:  # booleans are numbers 0 and 1, as in NumPy and scikit-learn
        x = _backend.asarray(X > 0, placement)
        model.fit(x, Y_CLASS, verbose=0)
        assert model.built


def test_negative_stride_views_are_accepted(placement):
    """x[::-1] is a view with a negative stride, which torch cannot wrap."""
    model = xn.Sequential(
        [layers.Dense(3)], backend=placement.name, device=placement.device, dtype="float32"
    )
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    x32 = X.astype(np.float32)
    model.fit(x32[::-1], Y_CLASS[::-1], epochs=1, verbose=0)
    np.testing.assert_array_equal(
        xn.to_numpy(model.predict(x32[::-1])), xn.to_numpy(model.predict(x32[::-1].copy()))
    )
    model.evaluate(x32[::-1], Y_CLASS[::-1], sample_weight=np.ones(40)[::-1])


def test_a_shuffled_fit_holds_one_copy_of_the_data():
    """Peak memory over several epochs is the data plus one shuffled copy,
    not two (the previous epoch's copy is dropped before the next is made)."""
    data_rng = np.random.default_rng(0)
    x = data_rng.normal(size=(20_000, 100)).astype(np.float32)  # 7.6 MiB
    y = data_rng.integers(0, 10, size=20_000)
    model = xn.Sequential([layers.Dense(10)], backend="numpy")
    model.compile(loss=xn.losses.SparseCategoricalCrossentropy(from_logits=True), optimizer="sgd")
    model.build(100)

    def peak(epochs):
        tracemalloc.start()
        try:
            start = tracemalloc.get_traced_memory()[0]
            model.fit(x, y, epochs=epochs, batch_size=2000, verbose=0)
            return tracemalloc.get_traced_memory()[1] - start
        finally:
            tracemalloc.stop()

    one, three = peak(1), peak(3)
    assert one < 1.4 * x.nbytes
    assert three < one + 0.1 * x.nbytes
