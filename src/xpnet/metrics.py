"""Metrics, accumulated on the device over an epoch.

A metric keeps a *state* on the device that each batch adds to and that is
turned into the reported value once per epoch, so metrics never force a
device synchronization per batch. Two kinds:

* means of a per-sample value (accuracy, MAE, MSE): the state is the sum of
  the batch's values, and the loop divides by the sample count;
* ratios of counts (precision, recall, F1, AUC): the state is a vector of
  confusion counts and :meth:`Metric.result` makes the ratio, on the device.

Names (Keras's): ``"accuracy"`` (binary, categorical or sparse, picked from
the loss and the shapes), ``"mae"``, ``"mse"``, ``"precision"``,
``"recall"``, ``"f1_score"``, ``"auc"``.
"""

from __future__ import annotations

import math
from typing import Any

from xpnet import _config
from xpnet._backend import device_of, namespace
from xpnet._typing import Array

__all__ = [
    "AUC",
    "BinaryAccuracy",
    "CategoricalAccuracy",
    "F1Score",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "Metric",
    "Precision",
    "Recall",
    "SparseCategoricalAccuracy",
    "get",
    "serialize",
]


class Metric(_config.Configurable):
    """A named statistic of the outputs, accumulated over an epoch.

    The simple kind is a per-sample mean: override ``total(y_true, y_pred,
    logits)`` to return the sum over the batch's samples. `logits` says that
    `y_pred` holds logits of a sigmoid/softmax output (the fused path),
    which matters for the binary threshold.

    Any other statistic overrides :meth:`update` (fold a batch into the
    state) and :meth:`result` (the value from the state) and sets
    ``averaged = False``.
    """

    name = "metric"
    needs_probabilities = False
    averaged = True  # the loop divides result() by the number of samples

    def total(self, y_true: Array, y_pred: Array, logits: bool) -> Array:
        raise NotImplementedError

    def update(self, state: Array | None, y_true: Array, y_pred: Array, logits: bool) -> Array:
        """The state after one more batch (`state` is None before the first)."""
        batch = self.total(y_true, y_pred, logits)
        return batch if state is None else state + batch

    def result(self, state: Array) -> Array:
        """The metric's value (a 0-d device array) from the epoch's state."""
        return state


def _per_sample_mean(xp, values: Array) -> Array:
    if values.ndim > 1:
        values = xp.mean(values, axis=tuple(range(1, values.ndim)))
    return xp.sum(values)


class BinaryAccuracy(Metric):
    """Share of outputs on the right side of the threshold (0.5, or 0 for logits)."""

    name = "accuracy"

    def total(self, y_true, y_pred, logits):
        xp = namespace(y_pred)
        if y_true.shape != y_pred.shape:
            y_true = xp.reshape(y_true, y_pred.shape)
        predicted = y_pred > (0.0 if logits else 0.5)
        hit = xp.astype(predicted == (y_true > 0.5), y_pred.dtype)
        return _per_sample_mean(xp, hit)


class CategoricalAccuracy(Metric):
    """Share of samples whose highest score is the one-hot target's class."""

    name = "accuracy"

    def total(self, y_true, y_pred, logits):
        xp = namespace(y_pred)
        hit = xp.argmax(y_pred, axis=-1) == xp.argmax(y_true, axis=-1)
        return xp.sum(xp.astype(hit, y_pred.dtype))


class SparseCategoricalAccuracy(Metric):
    """Share of samples whose highest score is the integer label."""

    name = "accuracy"

    def total(self, y_true, y_pred, logits):
        xp = namespace(y_pred)
        predicted = xp.argmax(y_pred, axis=-1)
        hit = predicted == xp.astype(xp.reshape(y_true, (-1,)), predicted.dtype)
        return xp.sum(xp.astype(hit, y_pred.dtype))


class MeanAbsoluteError(Metric):
    name = "mae"
    needs_probabilities = True

    def total(self, y_true, y_pred, logits):
        xp = namespace(y_pred)
        return _per_sample_mean(xp, xp.abs(y_pred - xp.reshape(y_true, y_pred.shape)))


class MeanSquaredError(Metric):
    name = "mse"
    needs_probabilities = True

    def total(self, y_true, y_pred, logits):
        xp = namespace(y_pred)
        r = y_pred - xp.reshape(y_true, y_pred.shape)
        return _per_sample_mean(xp, r * r)


class _Confusion(Metric):
    """Precision, recall and F1: micro-averaged counts of thresholded outputs.

    An output counts as positive when its probability exceeds `threshold`.
    A fused sigmoid or softmax output is turned into probabilities first;
    the outputs of a ``from_logits=True`` loss are read as the logits of
    independent sigmoids (a logit above ``logit(threshold)`` is positive),
    also when there are several columns.
    For one output column the targets are the 0/1 labels; for several, each
    column is its own yes/no question, as Keras counts them: one-hot targets
    as they are, integer labels expanded to one-hot. The state is the counts
    ``[true positives, false positives, false negatives]``.
    """

    averaged = False
    needs_probabilities = True  # a fused softmax's logits are not thresholded per column

    def __init__(self, threshold: float = 0.5) -> None:
        threshold = float(threshold)
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"{type(self).__name__} threshold must be in (0, 1), got {threshold}")
        self.threshold = threshold

    def update(self, state, y_true, y_pred, logits):
        xp = namespace(y_pred)
        cut = math.log(self.threshold / (1.0 - self.threshold)) if logits else self.threshold
        predicted = y_pred > cut
        actual = _indicator(xp, y_true, y_pred) > 0.5
        counts = xp.stack(
            [
                xp.sum(xp.astype(predicted & actual, y_pred.dtype)),
                xp.sum(xp.astype(predicted & ~actual, y_pred.dtype)),
                xp.sum(xp.astype(~predicted & actual, y_pred.dtype)),
            ]
        )
        return counts if state is None else state + counts

    def get_config(self):
        return {"threshold": self.threshold}


def _indicator(xp, y_true: Array, y_pred: Array) -> Array:
    """`y_true` shaped like `y_pred`: integer labels of a multi-column output
    become one-hot rows."""
    if y_true.shape == y_pred.shape:
        return y_true
    n_classes = int(y_pred.shape[-1])
    if n_classes > 1 and (y_true.ndim == 1 or int(y_true.shape[-1]) == 1):
        labels = xp.reshape(y_true, (-1, 1))
        classes = xp.arange(n_classes, dtype=labels.dtype, device=device_of(labels))
        return xp.astype(labels == classes, y_pred.dtype)
    return xp.reshape(y_true, y_pred.shape)


def _ratio(xp, numerator: Array, denominator: Array) -> Array:
    """``numerator / denominator``, and 0 where the denominator is 0 (Keras's rule)."""
    safe = xp.where(denominator > 0, denominator, xp.ones_like(denominator))
    return xp.where(denominator > 0, numerator / safe, xp.zeros_like(numerator))


class Precision(_Confusion):
    """Of the outputs predicted positive, the share that are: ``tp / (tp + fp)``."""

    name = "precision"

    def result(self, state):
        return _ratio(namespace(state), state[0], state[0] + state[1])


class Recall(_Confusion):
    """Of the positive targets, the share predicted positive: ``tp / (tp + fn)``."""

    name = "recall"

    def result(self, state):
        return _ratio(namespace(state), state[0], state[0] + state[2])


class F1Score(_Confusion):
    """Harmonic mean of precision and recall: ``2 tp / (2 tp + fp + fn)``."""

    name = "f1_score"

    def result(self, state):
        twice = 2.0 * state[0]
        return _ratio(namespace(state), twice, twice + state[1] + state[2])


class AUC(Metric):
    """Area under the ROC curve, approximated as Keras does.

    The true- and false-positive counts are kept at `num_thresholds` fixed
    thresholds (``-ε``, ``1/(n-1)``, ..., ``(n-2)/(n-1)``, ``1 + ε``) of the
    predicted probability, so the epoch's state is a ``(4, n)`` array of
    counts however many samples there are; the area is the trapezoid rule
    over the resulting (false-positive rate, true-positive rate) points.
    Binary outputs; with several columns, every entry counts as one
    prediction (micro average).
    """

    name = "auc"
    averaged = False
    needs_probabilities = True

    def __init__(self, num_thresholds: int = 200) -> None:
        if isinstance(num_thresholds, bool) or not isinstance(num_thresholds, int):
            raise ValueError(f"AUC num_thresholds must be an int > 1, got {num_thresholds!r}")
        if num_thresholds < 2:
            raise ValueError(f"AUC num_thresholds must be an int > 1, got {num_thresholds!r}")
        self.num_thresholds = num_thresholds

    def _thresholds(self, xp, like: Array) -> Array:
        n = self.num_thresholds
        inner = [(i + 1) / (n - 1) for i in range(n - 2)]
        values = [-1e-7, *inner, 1.0 + 1e-7]
        return xp.asarray(values, dtype=like.dtype, device=device_of(like))

    def update(self, state, y_true, y_pred, logits):
        xp = namespace(y_pred)
        if logits:  # a from_logits loss on a linear output: a sigmoid per column
            y_pred = 1.0 / (1.0 + xp.exp(-y_pred))
        scores = xp.reshape(y_pred, (-1, 1))
        positive = xp.reshape(_indicator(xp, y_true, y_pred) > 0.5, (-1, 1))
        above = scores > self._thresholds(xp, y_pred)  # (samples, thresholds)
        dtype = y_pred.dtype
        counts = xp.stack(
            [
                xp.sum(xp.astype(above & positive, dtype), axis=0),
                xp.sum(xp.astype(above & ~positive, dtype), axis=0),
                xp.sum(xp.astype(~above & ~positive, dtype), axis=0),
                xp.sum(xp.astype(~above & positive, dtype), axis=0),
            ]
        )
        return counts if state is None else state + counts

    def result(self, state):
        xp = namespace(state)
        tp, fp, tn, fn = state[0, ...], state[1, ...], state[2, ...], state[3, ...]
        tpr = _ratio(xp, tp, tp + fn)
        fpr = _ratio(xp, fp, fp + tn)
        return xp.sum((fpr[:-1] - fpr[1:]) * (tpr[:-1] + tpr[1:]) / 2.0)

    def get_config(self):
        return {"num_thresholds": self.num_thresholds}


_ACCURACY = {
    "binary": "binary_accuracy",
    "categorical": "categorical_accuracy",
    "sparse": "sparse_categorical_accuracy",
}
_REGISTRY = _config.Registry(
    "metric",
    Metric,
    {
        "binary_accuracy": BinaryAccuracy,
        "categorical_accuracy": CategoricalAccuracy,
        "sparse_categorical_accuracy": SparseCategoricalAccuracy,
        "mae": MeanAbsoluteError,
        "mse": MeanSquaredError,
        "precision": Precision,
        "recall": Recall,
        "f1_score": F1Score,
        "auc": AUC,
    },
    {"mean_absolute_error": "mae", "mean_squared_error": "mse"},
    also=("accuracy", "acc"),
)


def get(identifier: str | dict[str, Any] | Metric, task: str | None = None) -> Metric:
    """Return a metric for a name, a config dict or a :class:`Metric`. For
    ``"accuracy"``, `task` (``"binary"``, ``"categorical"`` or ``"sparse"``,
    from the loss or the shapes) picks the kind."""
    if isinstance(identifier, str) and identifier.lower() in ("accuracy", "acc"):
        if task not in _ACCURACY:
            raise ValueError(
                "accuracy needs a classification loss (binary, categorical or sparse "
                f"categorical cross-entropy) or class-shaped targets; got task {task!r}"
            )
        identifier = _ACCURACY[task]
    return _REGISTRY.get(identifier)


def serialize(metric: Metric) -> dict[str, Any]:
    """``{"class_name": ..., "config": {...}}``, which :func:`get` turns back into `metric`."""
    return _config.serialize(metric)
