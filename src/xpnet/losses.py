"""Keras-style loss classes over the kernels of :mod:`xpnet.functional`.

A loss object is called Keras's way, ``loss(y_true, y_pred)``, and returns
the reduced loss. The model uses :meth:`Loss.compute`, which also returns
the gradient w.r.t. ``y_pred``, and :meth:`Loss.fusable` to learn whether a
sigmoid/softmax output layer may be folded into the loss (then the model
hands the loss the logits and gets back ``(p - y) / N``).

Examples
--------
>>> import numpy as np
>>> from xpnet import losses
>>> loss = losses.get("sparse_categorical_crossentropy")
>>> float(loss(np.array([0]), np.array([[0.5, 0.5]])))  # -log(0.5)
0.6931471805599453
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from xpnet import _config
from xpnet import functional as F
from xpnet._backend import sparse_softmax_xent
from xpnet._typing import Array
from xpnet._validation import check_choice

__all__ = [
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "Huber",
    "KLDivergence",
    "Loss",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "SparseCategoricalCrossentropy",
    "SumSquaredError",
    "get",
    "serialize",
]


class Loss(_config.Configurable):
    """Base class. Subclasses name their kernel(s).

    Parameters
    ----------
    reduction : {"mean", "sum", "none"}
        How per-sample losses are combined: ``"mean"`` divides the (weighted)
        sum by the number of samples, as Keras's ``sum_over_batch_size``.
    """

    #: The activation this loss can absorb when ``from_logits=False``.
    fuses_with: str | None = None
    #: "binary", "categorical" or "sparse" for classification losses.
    task: str | None = None

    def __init__(self, reduction: str = "mean") -> None:
        self.reduction = check_choice("reduction", reduction, F.REDUCTIONS)

    def _kernel(self, logits: bool):
        raise NotImplementedError

    def compute(
        self,
        y_true: Array,
        y_pred: Array,
        sample_weight: Array | None = None,
        *,
        logits: bool = False,
        reduction: str | None = None,
    ) -> tuple[Array, Array]:
        """Return ``(loss, d loss / d y_pred)``.

        With ``logits=True`` (the fused path) `y_pred` holds the logits of
        the activation named by :attr:`fuses_with`.
        """
        kernel = self._kernel(logits)
        return kernel(
            y_pred,
            y_true,
            reduction=reduction or self.reduction,
            sample_weight=sample_weight,
            **self._kernel_kwargs(),
        )

    def _kernel_kwargs(self) -> dict[str, Any]:
        return {}

    def training_kernel(
        self, logits: bool, weighted: bool, labels: bool
    ) -> Callable[[Array, Array, Array | None], tuple[Array, Array]]:
        """``kernel(y_true, y_pred, sample_weight) -> (loss, grad)`` for the
        model's training step, chosen once per step plan: `logits` for the
        fused path, `weighted` when sample weights come, `labels` when
        ``y_true`` holds integer labels. The model passes batches it has
        checked, so a subclass may return a kernel that skips :meth:`compute`'s
        argument checks."""
        kernel, reduction, kwargs = self._kernel(logits), self.reduction, self._kernel_kwargs()

        def compute(y_true, y_pred, sample_weight):
            return kernel(
                y_pred, y_true, reduction=reduction, sample_weight=sample_weight, **kwargs
            )

        return compute

    def __call__(self, y_true: Array, y_pred: Array, sample_weight: Array | None = None) -> Array:
        return self.compute(y_true, y_pred, sample_weight)[0]

    def fusable(self, activation: str | None) -> bool:
        """Whether an output `activation` can be folded into this loss."""
        return self.fuses_with is not None and activation == self.fuses_with

    def get_config(self) -> dict[str, Any]:
        return {"reduction": self.reduction}


class MeanSquaredError(Loss):
    """Mean over outputs of ``(y_pred - y_true)**2`` per sample."""

    def _kernel(self, logits):
        return F.mean_squared_error


class MeanAbsoluteError(Loss):
    """Mean over outputs of ``|y_pred - y_true|`` per sample."""

    def _kernel(self, logits):
        return F.mean_absolute_error


class SumSquaredError(Loss):
    """``0.5 * sum((y_pred - y_true)**2)`` per sample: the delta rule's loss."""

    def _kernel(self, logits):
        return F.sum_squared_error


class KLDivergence(Loss):
    """``sum(y_true * log(y_true / y_pred))`` per sample."""

    def _kernel(self, logits):
        return F.kl_divergence


class Huber(Loss):
    """Quadratic within `delta`, linear beyond."""

    def __init__(self, delta: float = 1.0, reduction: str = "mean") -> None:
        if not delta > 0:
            raise ValueError(f"delta must be positive, got {delta!r}")
        super().__init__(reduction)
        self.delta = float(delta)

    def _kernel(self, logits):
        return F.huber

    def _kernel_kwargs(self):
        return {"delta": self.delta}

    def get_config(self):
        return {"delta": self.delta, **super().get_config()}


class _Crossentropy(Loss):
    _with_logits: Any
    _from_probabilities: Any

    def __init__(self, from_logits: bool = False, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.from_logits = bool(from_logits)

    def _kernel(self, logits):
        return self._with_logits if (logits or self.from_logits) else self._from_probabilities

    def fusable(self, activation):
        return not self.from_logits and super().fusable(activation)

    def get_config(self):
        return {"from_logits": self.from_logits, **super().get_config()}


class BinaryCrossentropy(_Crossentropy):
    """Binary cross-entropy; targets in [0, 1] of the prediction's shape.

    With ``from_logits=False`` after a sigmoid output, the model computes it
    from the logits (softplus form) all the same.
    """

    fuses_with = "sigmoid"
    task = "binary"
    _with_logits = staticmethod(F.binary_cross_entropy_with_logits)
    _from_probabilities = staticmethod(F.binary_cross_entropy)


class CategoricalCrossentropy(_Crossentropy):
    """Categorical cross-entropy; one-hot (or probability) targets."""

    fuses_with = "softmax"
    task = "categorical"
    _with_logits = staticmethod(F.softmax_cross_entropy_with_logits)
    _from_probabilities = staticmethod(F.categorical_cross_entropy)


class SparseCategoricalCrossentropy(_Crossentropy):
    """Categorical cross-entropy with integer class labels of shape (n_samples,)."""

    fuses_with = "softmax"
    task = "sparse"
    _with_logits = staticmethod(F.softmax_cross_entropy_with_logits)
    _from_probabilities = staticmethod(F.categorical_cross_entropy)

    def training_kernel(self, logits, weighted, labels):
        if not (logits or self.from_logits) or weighted or not labels or self.reduction == "none":
            return super().training_kernel(logits, weighted, labels)
        mean = self.reduction == "mean"

        def compute(y_true, y_pred, sample_weight):
            return sparse_softmax_xent(y_pred, y_true, mean)

        return compute


_BY_NAME: dict[str, type[Loss]] = {
    "mean_squared_error": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError,
    "sum_squared_error": SumSquaredError,
    "binary_crossentropy": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "kl_divergence": KLDivergence,
    "huber": Huber,
}
_ALIASES = {
    "mse": "mean_squared_error",
    "mae": "mean_absolute_error",
    "sse": "sum_squared_error",
    "kld": "kl_divergence",
}
_REGISTRY = _config.Registry("loss", Loss, _BY_NAME, _ALIASES)


def get(identifier: str | Loss | dict[str, Any]) -> Loss:
    """Return a loss for a name (``"mse"``, ``"binary_crossentropy"``, ...),
    a config dict, or a :class:`Loss`; unknown names get a suggestion."""
    return _REGISTRY.get(identifier)


def serialize(loss: Loss) -> dict[str, Any]:
    """``{"class_name": ..., "config": {...}}``, which :func:`get` turns back into `loss`."""
    return _config.serialize(loss)
