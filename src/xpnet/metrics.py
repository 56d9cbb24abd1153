"""Metrics, accumulated on the device over an epoch.

A metric turns a batch into a 0-d device array, the *sum* of its per-sample
values; the training loop adds these up and divides by the sample count
once per epoch, so metrics never force a device synchronization per batch.

Names: ``"accuracy"`` (binary, categorical or sparse, picked from the loss
and the shapes), ``"mae"``, ``"mse"``.
"""

from __future__ import annotations

from typing import Any

from xpnet import _config
from xpnet._backend import namespace
from xpnet._typing import Array

__all__ = [
    "BinaryAccuracy",
    "CategoricalAccuracy",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "Metric",
    "SparseCategoricalAccuracy",
    "get",
    "serialize",
]


class Metric(_config.Configurable):
    """A named per-sample statistic.

    ``total(y_true, y_pred, logits)`` returns the sum over the batch's samples;
    `logits` says that `y_pred` holds logits of a sigmoid/softmax output
    (the fused path), which matters for the binary threshold.
    """

    name = "metric"
    needs_probabilities = False

    def total(self, y_true: Array, y_pred: Array, logits: bool) -> Array:
        raise NotImplementedError


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
