"""The flat step of a stack of Dense layers (``xpnet._backend.numpy_step``):
the numbers of the layer-by-layer step, on every backend, and taken exactly
where it applies (plain Dense stacks on NumPy)."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet as xn
from helpers import assert_same_training
from xpnet import _backend, _plan
from xpnet.layers import BatchNormalization, Dense, Dropout, ReLU

RNG = np.random.default_rng(11)
X = RNG.normal(size=(70, 5))  # batches of 16 leave a partial one of 6
Y = RNG.integers(0, 3, size=70)
T = RNG.normal(size=(70, 2))
W = RNG.uniform(0.5, 2.0, size=70)

CASES = {
    # relu, fused softmax and plain SGD: the learning rate folded into the gradients
    "relu-sgd": (
        lambda: [Dense(8, activation="relu"), Dense(6, activation="relu"), Dense(3)],
        lambda: xn.losses.SparseCategoricalCrossentropy(from_logits=True),
        lambda: xn.optimizers.SGD(0.1),
        Y,
    ),
    "schedule": (
        lambda: [Dense(8, activation="relu"), Dense(3, activation="softmax")],
        lambda: "sparse_categorical_crossentropy",
        lambda: xn.optimizers.SGD(xn.schedules.ExponentialDecay(0.2, 2, 0.5)),
        Y,
    ),
    # other activations, no bias, momentum: gradients computed, then the optimizer
    "tanh-sigmoid-momentum": (
        lambda: [
            Dense(8, activation="tanh"),
            Dense(6, activation="sigmoid", use_bias=False),
            Dense(3, activation="softmax"),
        ],
        lambda: "sparse_categorical_crossentropy",
        lambda: xn.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
        Y,
    ),
    "leaky-adam-mse": (
        lambda: [Dense(8, activation="leaky_relu"), Dense(2)],
        lambda: "mse",
        lambda: xn.optimizers.Adam(0.01),
        T,
    ),
    "clipped-sgd": (
        lambda: [Dense(8, activation="elu"), Dense(3, activation="softmax")],
        lambda: "sparse_categorical_crossentropy",
        lambda: xn.optimizers.SGD(0.1, clipnorm=0.5),
        Y,
    ),
}


def build(placement, case, stack=None, dtype="float64"):
    make_stack, loss, optimizer, _ = CASES[case]
    model = xn.Sequential(
        stack or make_stack(),
        backend=placement.name,
        device=placement.device,
        dtype=dtype,
        seed=5,
    )
    model.compile(
        loss=loss(),
        optimizer=optimizer(),
        metrics=["mae" if case == "leaky-adam-mse" else "accuracy"],
    )
    return model


def flat(model) -> bool:
    """Whether the model's steps so far ran as the flat loop."""
    return any(plan.chain is not None for plan in model.__dict__.get("_plans", {}).values())


def layer_by_layer(monkeypatch):
    monkeypatch.setattr(_plan, "_chain", lambda *args: None)


@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weighted"])
@pytest.mark.parametrize("case", list(CASES))
def test_the_flat_step_gives_the_numbers_of_the_layer_by_layer_step(
    placement, monkeypatch, case, weighted
):
    targets = CASES[case][3]
    extra = {"sample_weight": W} if weighted else {}
    options = dict(epochs=3, batch_size=16, verbose=0, validation_data=(X[:20], targets[:20]))
    model = build(placement, case)
    got = model.fit(X, targets, **options, **extra).history
    model.train_on_batch(X[:10], targets[:10])
    assert flat(model) == (placement.name == "numpy")
    with monkeypatch.context() as patch:
        layer_by_layer(patch)
        reference = build(placement, case)
        expected = reference.fit(X, targets, **options, **extra).history
        reference.train_on_batch(X[:10], targets[:10])
        assert not flat(reference)
    assert_same_training(got, expected, model, reference, atol=1e-13)
    assert model.optimizer.iterations == reference.optimizer.iterations == 16


def test_flat_gradients_are_the_layer_by_layer_ones_and_pass_the_gradient_check(
    placement, monkeypatch
):
    model = build(placement, "tanh-sigmoid-momentum")
    data = model.prepare(X, Y)
    got = {
        k: xn.to_numpy(g).copy()
        for k, g in model.compute_gradients(data.x, data.y).gradients.items()
    }
    assert flat(model) == (placement.name == "numpy")
    with monkeypatch.context() as patch:
        layer_by_layer(patch)
        reference = build(placement, "tanh-sigmoid-momentum")
        again = reference.prepare(X, Y)
        expected = reference.compute_gradients(again.x, again.y).gradients
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], xn.to_numpy(value), rtol=1e-12, atol=1e-15)
    assert max(xn.gradcheck(model, X[:12], Y[:12]).values()) < 1e-6
    assert model.optimizer.iterations == 0  # gradients only: nothing updated


@pytest.mark.parametrize(
    ("stack", "expected"),
    [
        (lambda: [Dense(4, activation="relu"), Dense(3)], True),
        (lambda: [Dense(3, activation="softmax")], True),
        (lambda: [Dense(4), ReLU(), Dense(3)], False),
        (lambda: [Dense(4), Dropout(0.2), Dense(3)], False),
        (lambda: [Dense(4), BatchNormalization(), Dense(3)], False),
        (lambda: [Dense(4, kernel_regularizer="l2"), Dense(3)], False),
        (lambda: [type("MyDense", (Dense,), {})(4), Dense(3)], False),
    ],
    ids=["dense", "one", "relu-layer", "dropout", "batchnorm", "regularized", "subclass"],
)
def test_the_flat_step_is_taken_by_plain_dense_stacks_on_numpy(placement, stack, expected):
    model = build(placement, "relu-sgd", stack())
    model.fit(X, Y, epochs=1, batch_size=32, verbose=0)
    assert flat(model) == (expected and placement.name == "numpy")


def test_an_overridden_forward_goes_layer_by_layer():
    class Doubled(xn.Sequential):
        def forward(self, x, *, training=False, logits=False):
            return super().forward(2 * x, training=training, logits=logits)

    model = Doubled([Dense(4, activation="relu"), Dense(3)], backend="numpy", dtype="float64")
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    model.fit(X, Y, epochs=1, verbose=0)
    assert not flat(model)


class OwnSquares(xn.losses.Loss):
    """A loss of one's own that hands back a read-only float32 gradient."""

    def compute(self, y_true, y_pred, sample_weight=None, *, logits=False, reduction=None):
        diff = xn.to_numpy(y_pred) - xn.to_numpy(y_true)
        grad = (diff / diff.shape[0]).astype(np.float32)
        grad.flags.writeable = False
        loss = 0.5 * np.sum(diff * diff) / diff.shape[0]
        placement = _backend.backend_of(y_pred)
        return _backend.asarray(loss, placement, "float64"), _backend.asarray(grad, placement)


def test_a_loss_of_ones_own_with_a_read_only_gradient_of_another_dtype():
    placement = _backend.get_backend("numpy")
    model = xn.Sequential([Dense(4, activation="relu"), Dense(2)], backend="numpy", dtype="float64")
    model.compile(loss=OwnSquares(), optimizer=xn.optimizers.SGD(0.1))
    before = model.build(5).get_weights()
    history = model.fit(X, T, epochs=3, batch_size=16, verbose=0).history
    assert flat(model)
    assert history["loss"][-1] < history["loss"][0]
    assert all(w.dtype == np.float64 for w in model.get_weights())
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    assert placement.name == "numpy"


def test_a_subclass_of_sgd_keeps_its_own_rule(placement, monkeypatch):
    class Halved(xn.optimizers.SGD):  # a rule of one's own: half the plain step
        def _step(self, param, grad, slots, hyper):
            return super()._step(param, grad, slots, (hyper[0] / 2,))

        _step_in_place = _step

    def run():
        model = build(placement, "relu-sgd")
        model.optimizer = Halved(0.1)
        model.compile(loss=model.loss, optimizer=Halved(0.1))
        model.fit(X, Y, epochs=2, batch_size=16, verbose=0)
        return model.get_weights()

    got = run()
    with monkeypatch.context() as patch:
        layer_by_layer(patch)
        expected = run()
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-13)


class TargetsAsGradient(xn.losses.Loss):
    """A loss of one's own whose gradient is an array it did not make (y)."""

    def compute(self, y_true, y_pred, sample_weight=None, *, logits=False, reduction=None):
        return _backend.namespace(y_pred).sum(y_pred * y_true), y_true


def test_the_step_never_writes_over_an_array_a_custom_loss_hands_back(placement):
    model = xn.Sequential(
        [Dense(4, activation="relu"), Dense(2)],
        backend=placement.name,
        device=placement.device,
        dtype="float64",
    )
    model.compile(loss=TargetsAsGradient(), optimizer=xn.optimizers.SGD(0.1))
    data = model.prepare(X[:16], T[:16])
    before = xn.to_numpy(data.y).copy()
    model.train_step(data.x, data.y)
    model.fit(data.x, data.y, epochs=1, batch_size=8, verbose=0)
    np.testing.assert_array_equal(xn.to_numpy(data.y), before)


def test_data_of_another_dtype_goes_layer_by_layer(monkeypatch):
    numpy = _backend.get_backend("numpy")
    model32 = build(numpy, "relu-sgd", dtype="float32")
    labels = model32.prepare(X, Y).y
    got = model32.compute_gradients(X, labels).gradients  # float64 x, float32 model
    got = {key: value.copy() for key, value in got.items()}  # the next step reuses them
    step = model32.train_step(X[:16], labels[:16])
    assert np.isfinite(float(step.loss))
    with monkeypatch.context() as patch:
        layer_by_layer(patch)
        reference = build(numpy, "relu-sgd", dtype="float32")
        reference.build(5)
        expected = reference.compute_gradients(X, labels).gradients
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-6)


def test_an_instance_train_step_is_what_fit_and_train_on_batch_run(placement):
    model = build(placement, "relu-sgd")
    calls = []
    step = model.train_step

    def counting(x, y, sample_weight=None):
        calls.append(int(x.shape[0]))
        return step(x, y, sample_weight)

    data = model.prepare(X, Y)
    x, y = data.x[:8, ...], data.y[:8]
    model.train_on_batch(x, y)  # the fast path's gate is made here
    model.train_step = counting
    model.train_on_batch(x, y)
    model.train_on_batch(x, y)
    model.fit(X, Y, epochs=1, batch_size=32, verbose=0)
    assert calls == [8, 8, 32, 32, 6]


def test_the_fast_checks_follow_a_change_of_layers(placement):
    model = build(placement, "relu-sgd")
    data = model.prepare(X, Y)
    model.train_on_batch(data.x, data.y)
    model.layers.pop()  # the last layer now has 6 outputs, not 3
    model.layers.append(Dense(2))
    model.build(5)
    labels = _backend.asarray(np.full(70, 2), model.placement, "int32")
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\)"):
        model.train_on_batch(data.x, labels)


@pytest.mark.parametrize("dtype", ["int8", "int16"])
def test_negative_small_integer_labels_are_refused_with_many_classes(placement, dtype):
    model = xn.Sequential(
        [Dense(300)], backend=placement.name, device=placement.device, dtype="float64"
    )
    model.compile(loss=CASES["relu-sgd"][1](), optimizer=xn.optimizers.SGD(0.1))
    x = _backend.asarray(X[:8], placement, "float64")
    labels = np.array([-1, 5, 7, 9, 0, 1, 2, 3])
    model.train_on_batch(x, _backend.asarray(np.abs(labels), placement, dtype))
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"labels must be in \[0, 300\)"):
        model.train_on_batch(x, _backend.asarray(labels, placement, dtype))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 300\)"):
        model.fit(x, _backend.asarray(labels, placement, dtype), verbose=0)
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_batches_of_no_rows():
    from xpnet._training import batches

    assert batches(0, 4) == []
    assert batches(9, 4) == [(0, 4), (4, 8), (8, 9)]
