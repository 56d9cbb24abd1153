"""Precision, recall, F1 and AUC: against scikit-learn and a plain reference,
accumulated over batches on every backend, with no host read per batch."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

import xpnet as xn
from helpers import assert_close
from xpnet import _backend, layers, metrics

rng = np.random.default_rng(7)
N = 300
PROBS = rng.uniform(size=(N, 1))
LABELS = (rng.uniform(size=(N, 1)) < 0.3 + 0.5 * PROBS).astype(np.float64)
CONFUSION = {"precision": skm.precision_score, "recall": skm.recall_score, "f1_score": skm.f1_score}


def accumulate(metric, y, pred, make, logits=False, chunks=3):
    """The metric's value after feeding (y, pred) in `chunks` batches."""
    state = None
    for idx in np.array_split(np.arange(len(y)), chunks):
        state = metric.update(state, make(y[idx]), make(pred[idx]), logits)
    return float(xn.to_numpy(metric.result(state)))


def reference_auc(labels, scores, num_thresholds=200):
    """Keras's ROC AUC written out: counts at fixed thresholds, trapezoids."""
    n = num_thresholds
    thresholds = [-1e-7] + [(i + 1) / (n - 1) for i in range(n - 2)] + [1 + 1e-7]
    labels, scores = labels.ravel() > 0.5, scores.ravel()
    tpr, fpr = [], []
    for t in thresholds:
        above = scores > t
        tp, fp = np.sum(above & labels), np.sum(above & ~labels)
        fn, tn = np.sum(~above & labels), np.sum(~above & ~labels)
        tpr.append(tp / (tp + fn) if tp + fn else 0.0)
        fpr.append(fp / (fp + tn) if fp + tn else 0.0)
    tpr, fpr = np.array(tpr), np.array(fpr)
    return float(np.sum((fpr[:-1] - fpr[1:]) * (tpr[:-1] + tpr[1:]) / 2))


@pytest.mark.parametrize("name", sorted(CONFUSION))
def test_binary_counts_match_scikit_learn(name, make):
    expected = CONFUSION[name](LABELS[:, 0], PROBS[:, 0] > 0.5)
    assert accumulate(metrics.get(name), LABELS, PROBS, make) == pytest.approx(expected, rel=1e-12)
    # the same outputs as logits: the threshold moves to logit(0.5) = 0
    logits = np.log(PROBS / (1 - PROBS))
    got = accumulate(metrics.get(name), LABELS, logits, make, logits=True)
    assert got == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("name", sorted(CONFUSION))
def test_a_threshold_other_than_one_half(name, make):
    metric = metrics.get({"class_name": type(metrics.get(name)).__name__,
                          "config": {"threshold": 0.7}})  # fmt: skip
    expected = CONFUSION[name](LABELS[:, 0], PROBS[:, 0] > 0.7)
    assert accumulate(metric, LABELS, PROBS, make) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("name", sorted(CONFUSION))
def test_several_classes_are_micro_averaged_over_thresholded_columns(name, make):
    scores = rng.dirichlet(np.ones(4), size=N)
    labels = rng.integers(0, 4, size=N)
    onehot = np.eye(4)[labels]
    expected = CONFUSION[name](onehot, scores > 0.5, average="micro")
    assert accumulate(metrics.get(name), onehot, scores, make) == pytest.approx(expected)
    sparse = accumulate(metrics.get(name), labels.astype(np.float64), scores, make)
    assert sparse == pytest.approx(expected, rel=1e-12)


def test_auc_is_keras_trapezoids_over_200_thresholds(make):
    expected = reference_auc(LABELS, PROBS)
    assert accumulate(metrics.get("auc"), LABELS, PROBS, make) == pytest.approx(expected, 1e-12)
    # and the approximation is close to the exact area
    assert expected == pytest.approx(skm.roc_auc_score(LABELS[:, 0], PROBS[:, 0]), abs=5e-3)
    small = metrics.AUC(num_thresholds=11)
    assert accumulate(small, LABELS, PROBS, make) == pytest.approx(
        reference_auc(LABELS, PROBS, 11), rel=1e-12
    )


def test_auc_of_logits_applies_the_sigmoid(make):
    logits = np.log(PROBS / (1 - PROBS))
    got = accumulate(metrics.get("auc"), LABELS, logits, make, logits=True)
    assert got == pytest.approx(reference_auc(LABELS, PROBS), rel=1e-9)


def test_empty_denominators_give_zero_not_nan(make):
    none_predicted = np.zeros((5, 1))
    labels = np.ones((5, 1))
    for name in ("precision", "f1_score"):
        assert accumulate(metrics.get(name), labels, none_predicted, make, chunks=1) == 0.0
    assert accumulate(metrics.get("recall"), 0 * labels, none_predicted, make, chunks=1) == 0.0
    assert accumulate(metrics.get("auc"), labels, none_predicted + 0.3, make, chunks=1) == 0.0


def binary_model(placement):
    model = xn.Sequential(
        [layers.Dense(6, activation="tanh"), layers.Dense(1, activation="sigmoid")],
        backend=placement.name,
        device=placement.device,
        dtype="float64",
        seed=3,
    )
    model.compile(
        loss="binary_crossentropy",
        optimizer=xn.optimizers.SGD(0.2),
        metrics=["precision", "recall", "f1_score", "auc", "accuracy"],
    )
    return model


X = rng.normal(size=(N, 3))
Y = (X[:, 0] - 0.5 * X[:, 1] + 0.3 * rng.normal(size=N) > 0.2).astype(np.float64)


def test_fit_and_evaluate_report_them_on_every_backend(placement):
    model = binary_model(placement)
    history = model.fit(X, Y, epochs=3, batch_size=32, validation_split=0.2, verbose=0)
    for key in ("precision", "recall", "f1_score", "auc", "val_precision", "val_auc"):
        assert len(history.history[key]) == 3, key
    result = model.evaluate(X, Y)
    p = xn.to_numpy(model.predict(X))
    for name, score in CONFUSION.items():
        assert result[name] == pytest.approx(score(Y, p[:, 0] > 0.5), rel=1e-9), name
    assert result["auc"] == pytest.approx(reference_auc(Y, p), rel=1e-9)
    assert result["accuracy"] == pytest.approx(np.mean((p[:, 0] > 0.5) == Y), rel=1e-12)


def test_the_same_history_on_every_backend(placement):
    reference = binary_model(_backend.get_backend("numpy")).fit(X, Y, epochs=2, verbose=0)
    here = binary_model(placement).fit(X, Y, epochs=2, verbose=0)
    for key, values in reference.history.items():
        assert_close(here.history[key], values, rtol=1e-9, atol=1e-12)


def test_no_host_read_per_batch():
    array_api_strict = pytest.importorskip("array_api_strict")
    cls = type(array_api_strict.asarray(0.0))
    placement = _backend.get_backend("array_api_strict", "device1")
    x, y = _backend.asarray(X, placement, "float64"), _backend.asarray(Y, placement, "float64")
    reads = {}
    for batch_size in (300, 10):  # 1 batch per epoch, then 30
        model = binary_model(placement)
        model.build(3)
        count = [0]
        with pytest.MonkeyPatch.context() as patch:
            for method in ("__float__", "__bool__", "__array__", "__dlpack__", "tolist"):
                original = getattr(cls, method, None)
                if original is None:
                    continue

                def counted(*args, _original=original, _count=count, **kwargs):
                    _count[0] += 1
                    return _original(*args, **kwargs)

                patch.setattr(cls, method, counted)
            model.fit(x, y, epochs=2, batch_size=batch_size, verbose=0)
        reads[batch_size] = count[0]
    assert 0 < reads[10] == reads[300]


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (lambda: metrics.AUC(num_thresholds=1), "num_thresholds must be an int > 1"),
        (lambda: metrics.AUC(num_thresholds=2.5), "num_thresholds must be an int > 1"),
        (lambda: metrics.Precision(threshold=1.0), r"threshold must be in \(0, 1\)"),
        (lambda: metrics.Recall(threshold=0.0), r"threshold must be in \(0, 1\)"),
        (lambda: metrics.F1Score(threshold=float("nan")), r"threshold must be in \(0, 1\)"),
    ],
)
def test_bad_arguments(bad, match):
    with pytest.raises(ValueError, match=match):
        bad()


def test_config_round_trip():
    for metric in (metrics.AUC(num_thresholds=50), metrics.Precision(threshold=0.3)):
        again = metrics.get(metrics.serialize(metric))
        assert type(again) is type(metric) and again.get_config() == metric.get_config()


def test_misspelt_names_get_only_close_suggestions():
    with pytest.raises(ValueError, match="Unknown metric 'aucc'. Did you mean 'auc'"):
        metrics.get("aucc")
    with pytest.raises(ValueError, match="Unknown metric 'f1'. Did you mean 'f1_score'"):
        metrics.get("f1")
    with pytest.raises(ValueError, match="Unknown metric 'nosuch'") as info:
        metrics.get("nosuch")
    assert "Did you mean" not in str(info.value)
    with pytest.raises(ValueError, match="Unknown backend 'nosuch'") as info:
        xn.get_backend("nosuch")
    assert "Did you mean" not in str(info.value)


def test_compile_refuses_an_unknown_metric_and_keeps_its_settings():
    model = xn.Sequential([layers.Dense(1)])
    model.compile(loss="mse", optimizer="sgd", metrics=["mae"])
    with pytest.raises(ValueError, match="Did you mean 'precision'"):
        model.compile(loss="mse", optimizer="adam", metrics=["precison"])
    assert model.get_compile_config()["metrics"] == ["mae"]
    assert model.get_compile_config()["optimizer"]["class_name"] == "SGD"


def test_a_fused_softmax_is_thresholded_on_probabilities(placement):
    y = np.digitize(X[:, 0] + X[:, 1], [-0.5, 0.5])
    model = xn.Sequential(
        [layers.Input(shape=(3,)), layers.Dense(3, activation="softmax")],
        backend=placement.name, device=placement.device, dtype="float64", seed=3,
    )  # fmt: skip
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam",
                  metrics=["precision", "recall", "f1_score"])  # fmt: skip
    assert model.fused
    model.fit(X, y, epochs=2, verbose=0)
    result = model.evaluate(X, y)
    onehot, predicted = np.eye(3)[y], xn.to_numpy(model.predict(X)) > 0.5
    for name, score in CONFUSION.items():
        expected = score(onehot, predicted, average="micro", zero_division=0)
        assert result[name] == pytest.approx(expected, rel=1e-12), name
