"""The MLP estimators behave like scikit-learn's: defaults, the training
step (L2 penalty included), the stopping rule, early stopping, multilabel
targets, log-probabilities and sparse input.

scikit-learn's own ``sklearn/neural_network/tests/test_mlp.py`` is the
reference for what is checked here; the tests are ours.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
sparse = pytest.importorskip("scipy.sparse")

from sklearn import neural_network  # noqa: E402
from sklearn.datasets import (  # noqa: E402
    load_digits,
    make_multilabel_classification,
    make_regression,
)
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import cross_val_score, train_test_split  # noqa: E402
from sklearn.preprocessing import MinMaxScaler  # noqa: E402

import xpnet as xn  # noqa: E402
from helpers import assert_close  # noqa: E402
from xpnet import _backend  # noqa: E402
from xpnet.models import (  # noqa: E402
    LinearRegression,
    LogisticRegression,
    MLPClassifier,
    MLPRegressor,
    SoftmaxRegression,
    _base,
    _objective,
)

X_DIGITS, Y_DIGITS = load_digits(n_class=3, return_X_y=True)
X_MULTI, Y_MULTI = MinMaxScaler().fit_transform(X_DIGITS[:200]), Y_DIGITS[:200]
X_BINARY, Y_BINARY = X_MULTI[Y_MULTI < 2][:100], Y_MULTI[Y_MULTI < 2][:100]
quiet_convergence = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def test_defaults_are_scikit_learns():
    ours = MLPClassifier().get_params()
    theirs = neural_network.MLPClassifier().get_params()
    renamed = {"learning_rate": "learning_rate_init", "epochs": "max_iter", "optimizer": "solver"}
    for name in (
        "hidden_layer_sizes", "activation", "alpha", "batch_size", "tol", "n_iter_no_change",
        "early_stopping", "validation_fraction", "shuffle", *renamed,
    ):  # fmt: skip
        assert ours[name] == theirs[renamed.get(name, name)], name
    assert MLPRegressor().get_params() == ours
    # The linear models keep the textbook loop, with no penalty by default.
    assert LogisticRegression().get_params()["alpha"] == 0.0


def test_digits_out_of_the_box():
    """The issue's yardstick: 3-fold accuracy on digits with the defaults
    (scikit-learn's MLPClassifier() scores about 0.93 to 0.94)."""
    X, y = load_digits(return_X_y=True)
    assert cross_val_score(MLPClassifier(), X, y, cv=3).mean() > 0.93


# ----------------------------------------------------------------------------
# The step is scikit-learn's step


def _initial_weights(est, n_features, n_outputs, output_activation):
    """The weights `est` starts from (the same seed draws the same numbers)."""
    layers = _objective.dense_stack(
        n_features, est._hidden(), est._hidden_activation(), n_outputs, output_activation,
        est.kernel_initializer,
    )  # fmt: skip
    model = xn.Sequential(layers, dtype="float64", seed=est.seed).build(n_features)
    return model.get_weights()


def _targets(kind):
    if kind == "multilabel":
        X, Y = make_multilabel_classification(60, n_features=8, n_classes=4, random_state=0)
        return X / 4.0, Y, 4, "sigmoid"
    if kind == "regression":
        X, y = make_regression(60, 8, noise=1.0, random_state=0)
        return X, y / 100.0, 1, None
    if kind == "binary":
        return X_BINARY[:60], Y_BINARY[:60], 1, "sigmoid"
    return X_MULTI[:60], Y_MULTI[:60], 3, "softmax"


@quiet_convergence
@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel", "regression"])
def test_training_matches_scikit_learn_step_for_step(kind):
    """From the same initial weights, with mini-batches, Adam and an L2
    penalty, our loss curve and weights are scikit-learn's."""
    X, y, n_out, out_act = _targets(kind)
    params = dict(hidden_layer_sizes=(7, 5), alpha=0.05, batch_size=16, shuffle=False, tol=0.0)
    Ours = MLPRegressor if kind == "regression" else MLPClassifier
    Theirs = neural_network.MLPRegressor if kind == "regression" else neural_network.MLPClassifier
    ours = Ours(**params, learning_rate=0.01, epochs=6, activation="tanh").fit(X, y)

    weights = _initial_weights(ours, X.shape[1], n_out, out_act)
    theirs = Theirs(**params, learning_rate_init=0.01, max_iter=1, activation="tanh")
    theirs.fit(X, y)  # sets up classes and sizes; the weights are replaced next
    theirs.coefs_, theirs.intercepts_ = weights[0::2], weights[1::2]
    theirs.set_params(warm_start=True, max_iter=6).fit(X, y)

    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_[-6:], rtol=1e-10)
    ours_w, theirs_w = ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_
    for a, b in zip(ours_w, theirs_w, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    method = "predict" if kind == "regression" else "predict_proba"
    np.testing.assert_allclose(
        getattr(ours, method)(X), getattr(theirs, method)(X), rtol=1e-9, atol=1e-12
    )


def test_l2_penalty_on_every_backend(placement):
    """The step's loss gains 0.5·alpha·Σ‖W‖²/n over the kernels (not the
    biases) and each kernel's gradient alpha·W/n."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 4)), rng.normal(size=(12, 2))
    alpha = 0.3

    def model(a):
        layers = [xn.layers.Dense(5, activation="tanh"), xn.layers.Dense(2)]
        m = _objective.L2Sequential(
            layers, alpha=a, backend=placement.name, device=placement.device, dtype="float64"
        )
        m.compile(loss="mse", optimizer="sgd")
        return m

    plain, penalized = model(0.0), model(alpha)
    data = plain.prepare(x, y)
    penalized.prepare(x, y)
    base = plain.compute_gradients(data.x, data.y)
    step = penalized.compute_gradients(data.x, data.y)
    kernels = [w for w in plain.get_weights() if w.ndim == 2]
    penalty = 0.5 * alpha * sum((w**2).sum() for w in kernels) / 12
    assert_close(step.loss, xn.to_numpy(base.loss) + penalty)
    for layer in plain.layers:
        for name, value in layer.params.items():
            key = f"{layer.name}/{name}"
            extra = alpha * xn.to_numpy(value) / 12 if name == "kernel" else 0.0
            assert_close(step.gradients[key], xn.to_numpy(base.gradients[key]) + extra)
            assert _backend.device_of(step.gradients[key]) == placement.device


@quiet_convergence
def test_larger_alpha_gives_smaller_weights():
    sums = [
        [np.abs(w).sum() for w in MLPClassifier((10,), alpha=a, seed=1).fit(X_BINARY, Y_BINARY).coefs_]
        for a in (0.0, 1.0)
    ]  # fmt: skip
    assert all(big > small for big, small in zip(*sums, strict=True))


def test_textbook_logistic_regression_with_alpha():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = (X @ np.array([1.0, -2.0, 0.5]) > 0).astype(float)
    lr, alpha, steps = 0.5, 2.0, 20
    clf = LogisticRegression(learning_rate=lr, epochs=steps, alpha=alpha).fit(X, y)
    w, b, losses = np.zeros(3), 0.0, []
    for _ in range(steps):
        z = X @ w + b
        losses.append(np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 * alpha * w @ w / len(y))
        e = 1.0 / (1.0 + np.exp(-z)) - y
        w, b = w - lr * (X.T @ e + alpha * w) / len(y), b - lr * np.mean(e)
    np.testing.assert_allclose(clf.loss_curve_, losses, rtol=1e-12)
    np.testing.assert_allclose(clf.coef_[0], w, rtol=1e-12)


# ----------------------------------------------------------------------------
# Stopping


def _replay(values, tol, patience, higher_is_better=False):
    """scikit-learn's rule, written out: the epoch at which it stops, or None."""
    best, count = (-math.inf if higher_is_better else math.inf), 0
    for epoch, v in enumerate(values, 1):
        enough = v >= best + tol if higher_is_better else v <= best - tol
        count = 0 if enough else count + 1
        best = (max if higher_is_better else min)(best, v)
        if count > patience:
            return epoch
    return None


@pytest.mark.parametrize("patience", [2, 5, 10])
def test_stops_by_scikit_learns_rule(patience):
    tol = 0.01
    clf = MLPClassifier(tol=tol, epochs=3000, optimizer="sgd", n_iter_no_change=patience)
    clf.fit(X_BINARY, Y_BINARY)
    assert clf.n_iter_ < 3000
    assert _replay(clf.loss_curve_, tol, patience) == clf.n_iter_ == len(clf.loss_curve_)
    assert clf.best_loss_ == min(clf.loss_curve_) and clf.loss_ == clf.loss_curve_[-1]


def test_unlimited_patience_runs_every_epoch_and_warns():
    clf = MLPClassifier((8,), tol=1e9, epochs=30, n_iter_no_change=math.inf)
    with pytest.warns(ConvergenceWarning, match="30 epochs ran out"):
        clf.fit(X_BINARY, Y_BINARY)
    assert clf.n_iter_ == 30


def test_a_converged_fit_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf = MLPClassifier(tol=0.5, epochs=3000, optimizer="sgd").fit([[3, 2], [1, 6]], [1, 0])
    assert clf.n_iter_ < 3000


@quiet_convergence
@pytest.mark.parametrize("Estimator", [MLPClassifier, MLPRegressor])
def test_early_stopping_attributes_and_best_weights(Estimator):
    tol = 0.2 if Estimator is MLPClassifier else 0.01
    est = Estimator(tol=tol, epochs=3000, optimizer="sgd", early_stopping=True, seed=3)
    est.fit(X_BINARY, Y_BINARY)
    assert est.n_iter_ < 3000 and est.best_loss_ is None
    scores = est.validation_scores_
    assert isinstance(scores, list) and len(scores) == est.n_iter_ == len(est.loss_curve_)
    assert est.best_validation_score_ == max(scores)
    assert _replay(scores, tol, est.n_iter_no_change, higher_is_better=True) == est.n_iter_
    # The weights kept are those of the best epoch: they score it again.
    _, val = train_test_split(
        np.arange(len(Y_BINARY)), test_size=0.1, random_state=3,
        stratify=Y_BINARY if Estimator is MLPClassifier else None,
    )  # fmt: skip
    assert est.score(X_BINARY[val], Y_BINARY[val]) == pytest.approx(est.best_validation_score_)

    plain = Estimator(tol=tol, epochs=3000, optimizer="sgd").fit(X_BINARY, Y_BINARY)
    assert plain.validation_scores_ is None and plain.best_validation_score_ is None
    assert plain.best_loss_ is not None


def test_early_stopping_split_is_stratified_and_large_enough():
    with pytest.raises(ValueError, match="least populated class"):
        MLPClassifier(early_stopping=True).fit([[1, 2], [2, 3], [3, 4], [4, 5]], [0, 0, 0, 1])
    X, y = make_regression(2, 5, random_state=0)
    est = MLPRegressor(early_stopping=True)
    with pytest.raises(ValueError, match="validation set is too small"):
        est.fit(X, y)
    assert not hasattr(est, "model_")


@quiet_convergence
def test_early_stopping_string_labels_and_device(placement):
    labels = np.array(["a", "b", "c"])[Y_MULTI]
    clf = MLPClassifier((16,), early_stopping=True, epochs=30, learning_rate=0.01)
    clf.fit(_backend.asarray(X_MULTI, placement, "float32"), labels)
    assert len(clf.validation_scores_) == clf.n_iter_
    assert all(np.isfinite(clf.validation_scores_))
    assert _backend.device_of(clf.coefs_[0]) == placement.device


@quiet_convergence
def test_a_diverging_fit_with_early_stopping_does_not_raise():
    X, y = load_digits(return_X_y=True)
    est = MLPRegressor((100,), activation="identity", optimizer="sgd", learning_rate=1.0,
                       epochs=20, early_stopping=True)  # fmt: skip
    est.fit(X, y)
    assert isinstance(est.validation_scores_[-1], float) and math.isnan(est.validation_scores_[-1])
    assert all(np.isfinite(xn.to_numpy(w)).all() for w in est.coefs_)  # the best epoch's
    with pytest.raises(ValueError, match="MLPRegressor diverged"):
        MLPRegressor((100,), activation="identity", optimizer="sgd", learning_rate=1.0).fit(X, y)


# ----------------------------------------------------------------------------
# Outputs: multilabel, log-probabilities


@quiet_convergence
def test_multilabel_indicator_targets():
    X, Y = make_multilabel_classification(50, random_state=0, return_indicator=True)
    clf = MLPClassifier((50,), activation="logistic", learning_rate=0.01, alpha=1e-5, epochs=400)
    clf.fit(X, Y)
    np.testing.assert_array_equal(clf.classes_, np.arange(Y.shape[1]))
    predicted = clf.predict(X)
    assert predicted.shape == Y.shape and predicted.dtype == np.int64
    proba = clf.predict_proba(X)
    assert proba.shape == Y.shape and not np.allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(proba > 0.5, predicted)
    assert clf.score(X, Y) > 0.9
    MLPClassifier(early_stopping=True, epochs=5).fit(X, Y).predict(X)  # not stratified


def test_two_dimensional_labels_that_are_not_an_indicator_are_refused():
    X = np.ones((6, 2))
    Y = np.array([[0, 1], [1, 2], [2, 0], [0, 1], [1, 2], [2, 0]])
    with pytest.raises(ValueError, match="multiclass-multioutput"):
        MLPClassifier().fit(X, Y)
    with pytest.raises(ValueError, match="1d array"):
        LogisticRegression().fit(X, Y[:, :2] > 0)


@quiet_convergence
@pytest.mark.parametrize(
    ("Estimator", "X", "y"),
    [
        (MLPClassifier, X_BINARY[:50], Y_BINARY[:50]),
        (MLPClassifier, X_MULTI[:30], Y_MULTI[:30]),
        (MLPClassifier, *make_multilabel_classification(30, random_state=0)),
        (SoftmaxRegression, X_MULTI[:30], Y_MULTI[:30]),
    ],
)
def test_predict_log_proba_is_the_log_of_predict_proba(Estimator, X, y):
    clf = Estimator(epochs=20).fit(X, y)
    proba, log_proba = clf.predict_proba(X), clf.predict_log_proba(X)
    np.testing.assert_allclose(log_proba, np.log(proba), rtol=1e-12)
    np.testing.assert_array_equal(proba.argmax(axis=1), log_proba.argmax(axis=1))


@quiet_convergence
def test_predict_log_proba_on_device(placement):
    clf = MLPClassifier((8,), epochs=5).fit(_backend.asarray(X_MULTI, placement), Y_MULTI)
    out = clf.predict_log_proba(_backend.asarray(X_MULTI, placement))
    assert _backend.namespace(out) is placement.xp
    assert _backend.device_of(out) == placement.device
    assert_close(out, np.log(xn.to_numpy(clf.predict_proba(X_MULTI))))


# ----------------------------------------------------------------------------
# Sparse input


@quiet_convergence
@pytest.mark.parametrize(
    "make_estimator",
    [
        lambda **kw: MLPClassifier((15,), batch_size=32, **kw),
        lambda **kw: MLPClassifier((15,), batch_size=32, early_stopping=True, **kw),
        lambda **kw: LogisticRegression(**kw),
        lambda **kw: MLPRegressor((15,), **kw),
    ],
)
def test_sparse_input_trains_and_predicts_as_dense(make_estimator, placement):
    X, y = X_MULTI[:120], Y_MULTI[:120]
    kw = dict(backend=placement.name, device=placement.device, epochs=10)
    dense = make_estimator(**kw).fit(X, y)
    for container in (sparse.csr_matrix, sparse.csc_array):
        fitted = make_estimator(**kw).fit(container(X), y)
        np.testing.assert_allclose(fitted.loss_curve_, dense.loss_curve_, rtol=1e-12)
        np.testing.assert_array_equal(fitted.predict(container(X)), dense.predict(X))
        np.testing.assert_array_equal(dense.predict(container(X)), dense.predict(X))
        assert fitted.model_.backend == placement.name


@quiet_convergence
def test_sparse_input_is_densified_a_batch_at_a_time(monkeypatch):
    seen = []
    densify = sparse.csr_matrix.toarray

    def spy(self, *args, **kwargs):
        seen.append(self.shape[0])
        return densify(self, *args, **kwargs)

    monkeypatch.setattr(sparse.csr_matrix, "toarray", spy)
    monkeypatch.setattr(_base, "SPARSE_CHUNK", 64)
    X = sparse.csr_matrix(X_MULTI.astype(np.float32))
    clf = MLPClassifier((8,), batch_size=50, epochs=3).fit(X, Y_MULTI)
    assert max(seen) == 50 and len(seen) == 3 * 4
    assert clf.coefs_[0].dtype == np.float32  # float32 sparse input stays float32
    seen.clear()
    assert clf.predict_proba(X).shape == (200, 3)
    assert seen == [64, 64, 64, 8]


def test_bad_stopping_parameters_change_nothing():
    for bad in (
        dict(tol=-1.0), dict(n_iter_no_change=0), dict(alpha=-0.1),
        dict(validation_fraction=1.0, early_stopping=True),
    ):  # fmt: skip
        est = MLPClassifier(**bad)
        with pytest.raises(ValueError, match=next(iter(bad))):
            est.fit(X_BINARY, Y_BINARY)
        assert not hasattr(est, "model_")


@quiet_convergence
def test_sklearn_activation_names_and_initialization():
    clf = MLPClassifier((30,), activation="logistic", epochs=1, learning_rate=1e-12)
    clf.fit(X_MULTI, Y_MULTI)
    assert clf.model_.layers[0].activation.name == "sigmoid"
    bound = _objective.sklearn_bound(X_MULTI.shape[1], 30, "sigmoid")
    first = np.abs(clf.coefs_[0])
    assert first.max() <= bound and first.max() > 0.9 * bound
    assert np.abs(clf.intercepts_[0]).max() > 0.5 * bound  # intercepts drawn too


@quiet_convergence
def test_verbose_prints_each_epoch(capsys):
    MLPClassifier((4,), epochs=2, verbose=1, early_stopping=True).fit(X_BINARY, Y_BINARY)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and "epoch 2/2: loss" in lines[1] and "validation score" in lines[1]


def test_ctrl_c_keeps_what_was_trained(monkeypatch):
    calls = []
    step = _objective.L2Sequential.train_step

    def interrupted(self, *args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return step(self, *args)

    monkeypatch.setattr(_objective.L2Sequential, "train_step", interrupted)
    with pytest.warns(UserWarning, match="interrupted"):
        clf = MLPClassifier((4,), batch_size=20, epochs=50).fit(X_BINARY, Y_BINARY)
    assert clf.n_iter_ == 0 and clf.predict(X_BINARY).shape == (100,)


def test_multioutput_regression():
    X, y = make_regression(200, 10, n_targets=5, random_state=11)
    reg = MLPRegressor((50,), learning_rate=0.01, epochs=300, tol=1e-2)
    reg.fit(X / 2, y / 100)
    assert reg.predict(X / 2).shape == (200, 5)
    assert reg.score(X / 2, y / 100) > 0.9
    assert LinearRegression().fit(X, y).predict(X).shape == (200, 5)
