"""``partial_fit``: scikit-learn's MLP semantics on every backend, and dask-ml.

One call is one epoch of the estimator's own loop over the data it is
given, continuing the network and its optimizer; `classes` follow
scikit-learn's rules; a refused call changes nothing; pickling between
calls changes nothing; dask-ml's ``Incremental`` is the same as calling
``partial_fit`` block by block.
"""

from __future__ import annotations

import pickle

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
from sklearn.preprocessing import MinMaxScaler  # noqa: E402

import xpnet as xn  # noqa: E402
from xpnet import _backend  # noqa: E402
from xpnet._backend import get_backend  # noqa: E402
from xpnet._backend.devices import list_devices  # noqa: E402
from xpnet.models import (  # noqa: E402
    LinearRegression,
    LogisticRegression,
    MLPClassifier,
    MLPRegressor,
    SoftmaxRegression,
    _objective,
)

X_DIGITS, Y_DIGITS = load_digits(n_class=3, return_X_y=True)
X_CLS, Y_CLS = MinMaxScaler().fit_transform(X_DIGITS[:150]), Y_DIGITS[:150]
_XR, _YR = make_regression(150, 8, noise=1.0, random_state=0)
X_REG, Y_REG = _XR, _YR / 100.0
CLASSES = [0, 1, 2]
quiet_convergence = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

MAKERS = {
    "LogisticRegression": lambda **kw: LogisticRegression(learning_rate=0.5, **kw),
    "SoftmaxRegression": lambda **kw: SoftmaxRegression(learning_rate=0.5, **kw),
    "LinearRegression": lambda **kw: LinearRegression(learning_rate=0.05, **kw),
    "MLPClassifier": lambda **kw: MLPClassifier((8,), learning_rate=0.01, **kw),
    "MLPRegressor": lambda **kw: MLPRegressor((8,), learning_rate=0.01, **kw),
}
NAMES = list(MAKERS)
MLPS = ["MLPClassifier", "MLPRegressor"]


def make(name, placement=None, **kw):
    if placement is not None:
        kw.update(backend=placement.name, device=placement.device)
    return MAKERS[name](**kw)


def is_classifier(est):
    return hasattr(est, "predict_proba")


def data(est):
    return (X_CLS, Y_CLS) if is_classifier(est) else (X_REG, Y_REG)


def step(est, X, y, **kw):
    """One partial_fit call, with `classes` for a classifier."""
    if is_classifier(est):
        kw.setdefault("classes", CLASSES)
    return est.partial_fit(X, y, **kw)


def chunks(n, size):
    return [slice(start, start + size) for start in range(0, n, size)]


def assert_same(a, b):
    """Bit for bit the same network and loss curve."""
    for wa, wb in zip(a.model_.get_weights(), b.model_.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    assert a.loss_curve_ == b.loss_curve_


# ----------------------------------------------------------------------------
# What one call does


@quiet_convergence
@pytest.mark.parametrize("name", NAMES)
def test_one_call_is_one_epoch_of_fit(name, placement):
    """scikit-learn re-seeds the shuffle on every call, so one call on all
    the data is exactly ``fit`` with one epoch (shuffling included)."""
    est = make(name, placement, batch_size=32)
    X, y = data(est)
    step(est, X, y)
    ref = make(name, placement, batch_size=32, epochs=1).fit(X, y)
    assert_same(est, ref)
    assert est.n_iter_ == 1 and est.t_ == len(X) and len(est.loss_curve_) == 1
    assert est.model_.backend == placement.name
    if name in MLPS:
        assert est.loss_ == est.best_loss_ == est.loss_curve_[0]


@quiet_convergence
@pytest.mark.parametrize("name", MLPS)
def test_chunks_continue_as_the_batches_of_one_epoch(name, placement):
    """Calls on consecutive chunks continue the weights and Adam's moments:
    five calls of one batch each are one unshuffled epoch of five batches."""
    est = make(name, placement, batch_size=30)
    X, y = data(est)
    for rows in chunks(len(X), 30):
        step(est, X[rows], y[rows])
    ref = make(name, placement, batch_size=30, shuffle=False, epochs=1).fit(X, y)
    for a, b in zip(est.model_.get_weights(), ref.model_.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert est.n_iter_ == 1 and est.t_ == len(X) and len(est.loss_curve_) == 5
    assert np.mean(est.loss_curve_) == pytest.approx(ref.loss_curve_[0], rel=1e-12)
    assert est.best_loss_ == min(est.loss_curve_)


def test_logistic_regression_calls_are_textbook_steps(placement):
    """Full batch, zeros init: each call is one step of the textbook loop on
    its chunk, ``loss_curve_`` holding the loss before each step."""
    X, y = X_CLS[Y_CLS < 2], Y_CLS[Y_CLS < 2] * 1.0
    est = LogisticRegression(learning_rate=0.5, backend=placement.name, device=placement.device)
    w, b, lr = np.zeros(X.shape[1]), 0.0, 0.5
    for rows in chunks(len(X), 25):
        Xc, yc = X[rows], y[rows]
        p = 1.0 / (1.0 + np.exp(-(Xc @ w + b)))
        loss = -np.mean(yc * np.log(p) + (1 - yc) * np.log(1 - p))
        e = p - yc
        w, b = w - lr * Xc.T @ e / len(Xc), b - lr * np.mean(e)
        est.partial_fit(Xc, yc.astype(int), classes=[0, 1])
        assert est.loss_curve_[-1] == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(xn.to_numpy(est.coef_)[0], w, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(xn.to_numpy(est.intercept_), [b], rtol=1e-12)


def _initial_weights(est, n_features, n_outputs, output_activation):
    layers = _objective.dense_stack(
        n_features, est._hidden(), est._hidden_activation(), n_outputs, output_activation,
        est.kernel_initializer,
    )  # fmt: skip
    return xn.Sequential(layers, dtype="float64", seed=est.seed).build(n_features).get_weights()


@quiet_convergence  # scikit-learn's one-epoch fit below
@pytest.mark.parametrize("alpha", [0.0, 0.05])
@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
def test_calls_match_scikit_learns_partial_fit(kind, alpha):
    """From the same initial weights, three calls with Adam and mini-batches
    give scikit-learn's loss curve, weights and ``t_``."""
    if kind == "regression":
        X, y, n_out, act, classes = X_REG[:60], Y_REG[:60], 1, None, {}
        Ours, Theirs = MLPRegressor, neural_network.MLPRegressor
    else:
        keep = np.isin(Y_CLS, [0, 1] if kind == "binary" else CLASSES)
        X, y = X_CLS[keep][:60], Y_CLS[keep][:60]
        n_out, act = (1, "sigmoid") if kind == "binary" else (3, "softmax")
        classes = {"classes": np.unique(y)}
        Ours, Theirs = MLPClassifier, neural_network.MLPClassifier
    params = dict(hidden_layer_sizes=(7, 5), alpha=alpha, batch_size=8, shuffle=False)
    ours = Ours(**params, learning_rate=0.01, activation="tanh")
    theirs = Theirs(**params, learning_rate_init=0.01, activation="tanh", max_iter=1)
    theirs.fit(X, y)  # sets up sizes and classes; weights and optimizer are replaced next
    weights = _initial_weights(ours, X.shape[1], n_out, act)
    theirs.coefs_, theirs.intercepts_ = weights[0::2], weights[1::2]
    del theirs._optimizer  # its next partial_fit starts a fresh Adam, as our first call does
    for rows in chunks(len(X), 20):
        ours.partial_fit(X[rows], y[rows], **classes)
        theirs.partial_fit(X[rows], y[rows], **classes)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_[1:], rtol=1e-10)
    for a, b in zip(
        ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_, strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    assert ours.n_iter_ == theirs.n_iter_ == 1
    assert ours.t_ == theirs.t_ - len(X) == len(X)
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-10)


# ----------------------------------------------------------------------------
# classes


def test_classes_follow_scikit_learns_rules():
    clf = MLPClassifier((4,))
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        clf.partial_fit(X_CLS, Y_CLS)
    assert not hasattr(clf, "classes_") and not hasattr(clf, "n_features_in_")
    with pytest.raises(ValueError, match="at least 2 classes"):
        clf.partial_fit(X_CLS, np.zeros(150, dtype=int), classes=[0])
    ones = Y_CLS == 1
    clf.partial_fit(X_CLS[ones], Y_CLS[ones], classes=[2, 0, 1])  # one class in a chunk is fine
    np.testing.assert_array_equal(clf.classes_, CLASSES)
    assert clf.predict_proba(X_CLS).shape == (150, 3)
    clf.partial_fit(X_CLS, Y_CLS)  # later calls need not repeat classes
    clf.partial_fit(X_CLS, Y_CLS, classes=np.array([0, 1, 2]))  # or may, unchanged
    with pytest.raises(ValueError, match=r"`y` has classes not in `self.classes_`"):
        clf.partial_fit(X_CLS[:3], [0, 1, 5])
    with pytest.raises(ValueError, match=r"is not the same as on last call to partial_fit"):
        clf.partial_fit(X_CLS, Y_CLS, classes=[0, 1, 2, 3])
    assert len(clf.loss_curve_) == 3


def test_string_labels_and_fit_then_partial_fit():
    labels = np.array(["ant", "bee", "cat"])[Y_CLS]
    clf = LogisticRegression(learning_rate=0.5).fit(X_CLS, labels)
    clf.partial_fit(X_CLS, labels)  # classes_ came from fit
    with pytest.raises(ValueError, match="not the same as on last call"):
        clf.partial_fit(X_CLS, labels, classes=["ant", "bee"])
    with pytest.raises(ValueError, match="classes not in"):
        clf.partial_fit(X_CLS[:2], ["ant", "dog"])
    assert set(clf.predict(X_CLS)) <= {"ant", "bee", "cat"}
    fresh = SoftmaxRegression().partial_fit(X_CLS[:10], labels[:10], classes=["cat", "ant", "bee"])
    assert fresh.classes_.tolist() == ["ant", "bee", "cat"]


def test_multilabel_calls():
    X, Y = make_multilabel_classification(60, n_features=8, n_classes=4, random_state=0)
    clf = MLPClassifier((6,), batch_size=10)
    with pytest.raises(ValueError, match=r"classes must be \[0, 1, 2, 3\]"):
        clf.partial_fit(X / 4, Y, classes=[1, 2, 3, 4])
    clf.partial_fit(X[:30] / 4, Y[:30], classes=range(4)).partial_fit(X[30:] / 4, Y[30:])
    assert clf.predict(X / 4).shape == (60, 4) and clf.t_ == 60
    with pytest.raises(ValueError, match="indicator matrices of 4 labels"):
        clf.partial_fit(X / 4, Y[:, 0] + Y[:, 1])


# ----------------------------------------------------------------------------
# fit and partial_fit, pickling


def _no_shuffle(name):
    """Settings under which ``fit`` walks the same batches every epoch."""
    if name in MLPS:
        return dict(batch_size=30, shuffle=False, n_iter_no_change=100)
    return dict(batch_size=None, optimizer="adam")  # full batch; Adam has state to keep


@quiet_convergence
@pytest.mark.parametrize("name", NAMES)
def test_partial_fit_after_fit_continues_and_fit_starts_over(name, placement):
    kw = _no_shuffle(name)
    est = make(name, placement, epochs=3, **kw)
    X, y = data(est)
    est.fit(X, y)
    step(est, X, y)  # the fourth epoch, from fit's weights and optimizer state
    ref = make(name, placement, epochs=4, **kw).fit(X, y)
    assert_same(est, ref)
    assert (est.n_iter_, ref.n_iter_) == (1, 4) and est.t_ == ref.t_ == 4 * len(X)
    if name in MLPS:
        assert est.best_loss_ == ref.best_loss_
    est.fit(X, y)  # starts over
    assert_same(est, make(name, placement, epochs=3, **kw).fit(X, y))
    assert est.n_iter_ == 3 and est.t_ == 3 * len(X)


@quiet_convergence
@pytest.mark.parametrize("name", NAMES)
def test_pickling_between_calls_changes_nothing(name, placement):
    est = make(name, placement, batch_size=16, epochs=2)
    X, y = data(est)
    first, second = slice(0, 70), slice(70, 150)
    for start in ("partial_fit", "fit"):
        plain = make(name, placement, batch_size=16, epochs=2)
        if start == "fit":
            plain.fit(X[first], y[first])
        else:
            step(plain, X[first], y[first])
        revived = pickle.loads(pickle.dumps(plain))
        step(plain, X[second], y[second])
        step(revived, X[second], y[second])
        assert_same(revived, plain)
        assert revived.t_ == plain.t_ and revived.model_.backend == placement.name


# ----------------------------------------------------------------------------
# Refused calls change nothing


def _state(est):
    attrs = {k: v for k, v in vars(est).items() if k.endswith("_") and k != "model_"}
    attrs = {k: xn.to_numpy(v) if _backend.is_device_array(v) else v for k, v in attrs.items()}
    return repr(sorted(attrs.items())), est.model_.get_weights(), est.model_.optimizer.get_state()


def _assert_state(est, before):
    text, weights, opt = _state(est)
    assert text == before[0]
    for a, b in zip(weights, before[1], strict=True):
        np.testing.assert_array_equal(a, b)
    assert opt["iterations"] == before[2]["iterations"]
    for key, slots in opt["slots"].items():
        for slot, value in slots.items():
            np.testing.assert_array_equal(value, before[2]["slots"][key][slot])


def _bad_calls(est, X, y):
    """(arguments, keyword arguments, parameters to set, message) of calls
    that must be refused."""
    nan = X.copy()
    nan[3, 2] = np.nan
    calls = [
        ((X[:, :5], y), {}, {}, "features"),
        ((nan, y), {}, {}, "NaN"),
        ((X, y[:-1]), {}, {}, "inconsistent numbers of samples"),
        ((X, y), {"sample_weight": np.ones(3)}, {}, "sample_weight"),
        ((X, y), {}, {"batch_size": -1}, "batch_size"),
    ]
    if hasattr(est, "early_stopping"):
        calls.append(((X, y), {}, {"early_stopping": True}, "does not support early_stopping"))
    if is_classifier(est):
        calls.append(((X[:3], np.array([0, 1, 9])), {}, {}, "classes not in"))
        calls.append(((X, y), {"classes": [0, 1]}, {}, "not the same as on last call"))
    else:
        calls.append(((X, np.stack([y, y], axis=1)), {}, {}, "y has 2 targets"))
    return calls


@quiet_convergence
@pytest.mark.parametrize("name", NAMES)
def test_refused_calls_change_nothing(name, placement):
    est, twin = (make(name, placement, batch_size=32, epochs=3) for _ in range(2))
    X, y = data(est)
    for e in (est, twin):
        e.fit(X[:100], y[:100])
        step(e, X[100:], y[100:])
    before = _state(est)
    for args, kwargs, params, match in _bad_calls(est, X, y):
        saved = est.get_params()
        est.set_params(**params)
        with pytest.raises(ValueError, match=match):
            est.partial_fit(*args, **kwargs)
        est.set_params(**saved)
        _assert_state(est, before)
    step(est, X, y)  # and the next call goes on as if nothing happened
    step(twin, X, y)
    assert_same(est, twin)
    assert est.t_ == twin.t_


def test_a_diverging_call_is_rolled_back(placement):
    """A call whose loss overflows raises after its steps ran: the weights,
    the optimizer state and every attribute are put back."""
    X, y = X_REG[:60], Y_REG[:60]
    reg = LinearRegression(learning_rate=0.05, batch_size=5, optimizer="sgd")
    reg.set_params(backend=placement.name, device=placement.device)
    reg.partial_fit(X, y)
    before = _state(reg)
    with pytest.raises(ValueError, match="diverged"):
        reg.partial_fit(X * 1e10, y)
    _assert_state(reg, before)


def test_a_refused_first_call_leaves_the_estimator_unfitted():
    nan = X_CLS.copy()
    nan[0, 0] = np.inf
    for est, args in (
        (MLPClassifier(), (nan, Y_CLS)),
        (MLPClassifier(early_stopping=True), (X_CLS, Y_CLS)),
        (MLPRegressor(), (X_REG, np.array(["a"] * 150))),
    ):
        with pytest.raises((ValueError, TypeError)):
            step(est, *args)
        assert vars(est) == vars(type(est)(**est.get_params()))


def test_ctrl_c_keeps_what_was_trained(monkeypatch):
    clf = MLPClassifier((4,), batch_size=30).partial_fit(X_CLS, Y_CLS, classes=CLASSES)
    calls = []
    train_step = _objective.L2Sequential.train_step

    def interrupted(self, *args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return train_step(self, *args)

    monkeypatch.setattr(_objective.L2Sequential, "train_step", interrupted)
    with pytest.warns(UserWarning, match="interrupted"):
        clf.partial_fit(X_CLS, Y_CLS)
    assert clf.n_iter_ == 0 and len(clf.loss_curve_) == 1 and clf.t_ == 150


# ----------------------------------------------------------------------------
# Inputs


def test_sparse_chunks_train_as_dense():
    dense, thin = (MLPClassifier((8,), batch_size=32) for _ in range(2))
    for rows in chunks(150, 50):
        dense.partial_fit(X_CLS[rows], Y_CLS[rows], classes=CLASSES)
        thin.partial_fit(sparse.csr_matrix(X_CLS[rows]), Y_CLS[rows], classes=CLASSES)
    assert_same(thin, dense)


def test_device_chunks_stay_on_their_device(placement):
    X = _backend.asarray(X_CLS, placement, "float32")
    y = _backend.asarray(Y_CLS, placement)
    clf = MLPClassifier((8,), batch_size=25)
    for rows in chunks(150, 50):
        clf.partial_fit(X[rows, ...], y[rows], classes=CLASSES)
    assert clf.model_.backend == placement.name and clf.t_ == 150
    out = clf.predict_proba(X)
    assert _backend.namespace(out) is placement.xp and _backend.device_of(out) == placement.device
    assert _backend.dtype_name(clf.coef_.dtype) == "float32"  # float32 data trains in float32


# ----------------------------------------------------------------------------
# dask-ml


def _dask():
    pytest.importorskip("dask")
    pytest.importorskip("dask_ml")
    import dask.array as da
    from dask_ml.wrappers import Incremental, ParallelPostFit

    X, y = MinMaxScaler().fit_transform(X_DIGITS[:200]), Y_DIGITS[:200]
    return (
        X,
        y,
        da.from_array(X, chunks=(50, 64)),
        da.from_array(y, chunks=50),
        Incremental,
        ParallelPostFit,
    )


def _device_name(placement):
    names = list_devices(placement.name)
    return next(n for n in names if get_backend(placement.name, n).device == placement.device)


def _check_dask_ml(placement=None):
    """Incremental is partial_fit block by block, exactly; ParallelPostFit
    predicts and scores blockwise what the estimator gives on NumPy."""
    X, y, dX, dy, Incremental, ParallelPostFit = _dask()
    kw = {}
    if placement is not None:  # by name: clone deep-copies parameters, and JAX's devices refuse
        kw = {"backend": placement.name, "device": _device_name(placement)}
    est = MLPClassifier((16,), learning_rate=0.05, batch_size=25, **kw)
    inc = Incremental(est, shuffle_blocks=False).fit(dX, dy, classes=CLASSES)
    by_hand = MLPClassifier((16,), learning_rate=0.05, batch_size=25, **kw)
    for rows in chunks(200, 50):
        by_hand.partial_fit(X[rows], y[rows], classes=CLASSES)
    assert_same(inc.estimator_, by_hand)
    assert inc.estimator_.t_ == 200 and not hasattr(est, "model_")  # Incremental fits a clone
    assert by_hand.score(X, y) > 0.6  # three classes: chance is 1/3

    wrapped = ParallelPostFit(by_hand)
    np.testing.assert_array_equal(wrapped.predict(dX).compute(), by_hand.predict(X))
    # a block of rows may round differently from all rows in the last bit
    np.testing.assert_allclose(
        wrapped.predict_proba(dX).compute(), by_hand.predict_proba(X), rtol=1e-12
    )
    assert wrapped.score(dX, dy) == pytest.approx(by_hand.score(X, y), rel=1e-12)
    assert inc.score(dX, dy) == pytest.approx(by_hand.score(X, y), rel=1e-12)


def test_dask_ml_on_the_threaded_scheduler(placement):
    import dask

    _dask()
    with dask.config.set(scheduler="threads"):
        _check_dask_ml(placement)


@pytest.fixture(scope="module")
def dask_client():
    """A two-worker LocalCluster (in-process workers talking over TCP, so
    the estimator is pickled between tasks), closed at the end."""
    pytest.importorskip("dask")
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, protocol="tcp",
            host="127.0.0.1", dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):  # fmt: skip
        yield client


def test_dask_ml_on_a_local_cluster(dask_client):
    import dask

    with dask.config.set(scheduler=dask_client):
        _check_dask_ml()
    assert len(dask_client.scheduler_info()["workers"]) == 2
