"""The loss kernels: each returns ``(loss, grad)``, the loss reduced over the
samples and its gradient w.r.t. the prediction or logits; see
:mod:`xpnet.functional`."""

from __future__ import annotations

import math

from xpnet._backend import (
    device_of,
    isdtype,
    namespace,
    reduce_sum,
    sparse_softmax_xent,
)
from xpnet._typing import Array, Namespace
from xpnet._validation import check_choice
from xpnet.functional._activations import (
    _float_namespace,
    _shift_by_max,
)

REDUCTIONS = ("mean", "sum", "none")


def _prepare(
    pred: Array, target: Array, pred_name: str = "y_pred", min_ndim: int = 1
) -> tuple[Namespace, Array]:
    """Check `pred` and `target` and return the namespace and `target` cast
    to `pred`'s dtype with `pred`'s shape.

    A target of shape ``(n,)`` for a prediction of shape ``(n, 1)`` is
    reshaped; any other shape mismatch is an error (broadcasting ``(n,)``
    against ``(n, 1)`` silently builds an ``(n, n)`` loss).
    """
    xp = _float_namespace(pred, pred_name)
    namespace(pred, target)  # same library, or TypeError
    if pred.ndim < min_ndim:
        raise ValueError(
            f"{pred_name} must have at least {min_ndim} dimension(s) (samples first), "
            f"got shape {tuple(pred.shape)}"
        )
    if target.shape != pred.shape:
        if target.shape == pred.shape[:-1] and pred.shape[-1] == 1:
            target = xp.reshape(target, pred.shape)
        else:
            raise ValueError(
                f"y_true has shape {tuple(target.shape)} but {pred_name} has shape "
                f"{tuple(pred.shape)}; they must match"
            )
    if target.dtype != pred.dtype:
        target = xp.astype(target, pred.dtype)
    return xp, target


def _integer_labels(xp: Namespace, labels: Array, n: int, k: int) -> Array:
    """Integer labels as shape ``(n,)`` (``(n, 1)`` is accepted), else an error."""
    if labels.shape == (n, 1):
        labels = xp.reshape(labels, (n,))
    if labels.shape != (n,):
        raise ValueError(
            f"integer labels y_true must have shape ({n},) for logits of shape "
            f"{(n, k)}, got {tuple(labels.shape)}"
        )
    return labels


def _class_targets(xp: Namespace, logits: Array, target: Array) -> Array:
    """One-hot (or soft) targets for class scores of shape ``(n, k)``.

    Integer labels of shape ``(n,)`` or ``(n, 1)`` are expanded to one-hot;
    floating targets must have the logits' shape. Labels outside ``[0, k)``
    give an all-zero row: range checks need the values on the host, so they
    belong to the caller that owns the data (``Sequential.fit`` does them).
    """
    namespace(logits, target)
    if logits.ndim != 2:
        raise ValueError(
            f"logits must have shape (n_samples, n_classes), got {tuple(logits.shape)}"
        )
    n, k = logits.shape
    if isdtype(xp, target.dtype, "integral"):
        target = _integer_labels(xp, target, n, k)
        classes = xp.arange(k, dtype=target.dtype, device=device_of(target))
        return xp.astype(target[:, None] == classes, logits.dtype)
    if target.shape != logits.shape:
        raise ValueError(
            f"y_true has shape {tuple(target.shape)} but the logits have shape "
            f"{(n, k)}; pass one-hot/probability targets of the same shape or "
            f"integer labels of shape ({n},)"
        )
    return xp.astype(target, logits.dtype) if target.dtype != logits.dtype else target


def _reduce(
    xp: Namespace,
    elementwise: Array,
    grad: Array,
    reduction: str,
    sample_weight: Array | None,
    per_sample: str = "mean",
) -> tuple[Array, Array]:
    """Turn elementwise losses and their elementwise derivatives into the
    reduced loss and the gradient of that reduced loss.

    Each sample's loss is the mean (or sum) of its elements over every axis
    after the first, then optionally weighted, then reduced over samples by
    `reduction`. The gradient is scaled once, by the product of all factors.
    """
    check_choice("reduction", reduction, REDUCTIONS)
    n = elementwise.shape[0]
    if n == 0:
        raise ValueError("the loss needs at least one sample, got an empty batch")
    scale = 1.0
    if elementwise.ndim > 1:
        axes = tuple(range(1, elementwise.ndim))
        if per_sample == "mean":
            k = math.prod(elementwise.shape[1:])
            losses = xp.sum(elementwise, axis=axes) / k
            scale /= k
        else:
            losses = xp.sum(elementwise, axis=axes)
    else:
        losses = elementwise
    if reduction == "mean":
        scale /= n
    if sample_weight is not None:
        w = _sample_weight(xp, sample_weight, losses)
        losses = losses * w
        grad = grad * xp.reshape(w, (n,) + (1,) * (grad.ndim - 1))
    if scale != 1.0:
        grad = grad * scale
    if reduction == "none":
        return losses, grad
    total = xp.sum(losses)
    return (total / n if reduction == "mean" else total), grad


def _sample_weight(xp: Namespace, w: Array, losses: Array) -> Array:
    namespace(losses, w)
    n = losses.shape[0]
    if w.shape != (n,):
        raise ValueError(f"sample_weight must have shape ({n},), got {tuple(w.shape)}")
    return xp.astype(w, losses.dtype) if w.dtype != losses.dtype else w


def binary_cross_entropy_with_logits(
    logits: Array,
    y_true: Array,
    *,
    reduction: str = "mean",
    sample_weight: Array | None = None,
) -> tuple[Array, Array]:
    """Binary cross-entropy of ``sigmoid(logits)`` against `y_true`, from logits.

    Elementwise ``softplus(z) - y * z``, which equals
    ``-(y log p + (1 - y) log(1 - p))`` with ``p = sigmoid(z)`` but never takes
    the log of a rounded-off 0. Each sample's loss is the mean over its
    outputs. The gradient w.r.t. the logits is ``(sigmoid(z) - y) / size``.
    Infinite logits are exact: ``z = -inf, y = 0`` and ``z = +inf, y = 1`` add
    0 (``0 log 0 = 0``), a wrong infinite logit adds inf.

    Parameters
    ----------
    logits : array of shape (n_samples,) or (n_samples, n_outputs)
    y_true : array of the same shape, values in [0, 1]
        ``(n_samples,)`` is accepted for logits of shape ``(n_samples, 1)``.
    reduction : {"mean", "sum", "none"}
    sample_weight : array of shape (n_samples,), optional

    Returns
    -------
    loss : 0-d array, or (n_samples,) for ``reduction="none"``
    grad : array like `logits`

    Examples
    --------
    >>> import numpy as np
    >>> from xpnet import functional as F
    >>> loss, grad = F.binary_cross_entropy_with_logits(np.array([1e4, -1e4]), np.array([0.0, 0.0]))
    >>> float(loss), grad.tolist()
    (5000.0, [0.5, 0.0])
    """
    xp, y = _prepare(logits, y_true, "logits")
    a = xp.abs(logits)
    e = xp.exp(-a)
    positive = logits >= 0
    # softplus(z) - y z = w |z| + log1p(e), w = 1 - y for z >= 0 and y below;
    # w = 0 adds 0 also at an infinite logit, where w |z| would be 0 * inf = nan.
    w = xp.where(positive, 1.0 - y, y)
    elementwise = w * xp.where(w != 0, a, 0.0) + xp.log1p(e)
    p = xp.where(positive, 1.0, e) / (1.0 + e)
    return _reduce(xp, elementwise, p - y, reduction, sample_weight)


def softmax_cross_entropy_with_logits(
    logits: Array,
    y_true: Array,
    *,
    reduction: str = "mean",
    sample_weight: Array | None = None,
) -> tuple[Array, Array]:
    """Categorical cross-entropy of ``softmax(logits)``, from logits.

    Per sample ``-sum_j y_j log_softmax(z)_j = sum(y) * logsumexp(z) - y . z``,
    exact for logits of any finite size. The gradient is
    ``softmax(z) * sum(y) - y``, i.e. ``p - y`` for targets that sum to 1.
    A class with ``y_j = 0`` adds 0 to the loss and gradient even when its
    logit is -inf (a masked class), the same as integer labels.

    Parameters
    ----------
    logits : array of shape (n_samples, n_classes)
    y_true : array of shape (n_samples, n_classes), or integer labels of shape (n_samples,)
        One-hot or probability targets, or class indices in ``[0, n_classes)``.
    reduction : {"mean", "sum", "none"}
    sample_weight : array of shape (n_samples,), optional

    Returns
    -------
    loss : 0-d array, or (n_samples,) for ``reduction="none"``
    grad : array of shape (n_samples, n_classes)

    Examples
    --------
    >>> import numpy as np
    >>> from xpnet import functional as F
    >>> loss, grad = F.softmax_cross_entropy_with_logits(np.array([[1e4, 0.0]]), np.array([1]))
    >>> float(loss), grad.tolist()
    (10000.0, [[1.0, -1.0]])
    """
    xp = _float_namespace(logits, "logits")
    if isdtype(xp, y_true.dtype, "integral") and sample_weight is None and reduction != "none":
        return _sparse_softmax_cross_entropy(xp, logits, y_true, reduction)
    y = _class_targets(xp, logits, y_true)
    shifted = _shift_by_max(xp, logits, -1)
    e = xp.exp(shifted)
    total = reduce_sum(e, axis=-1, keepdims=True)
    y_sum = reduce_sum(y, axis=-1, keepdims=True)
    # y . shifted with 0 where y = 0: a -inf logit there would give 0 * -inf = nan
    y_dot = reduce_sum(y * xp.where(y != 0, shifted, 0.0), axis=-1)
    losses = y_sum[:, 0] * xp.log(total[:, 0]) - y_dot
    grad = (e / total) * y_sum - y
    return _reduce(xp, losses, grad, reduction, sample_weight)


def _sparse_softmax_cross_entropy(
    xp: Namespace, logits: Array, labels: Array, reduction: str
) -> tuple[Array, Array]:
    """The training hot path: integer labels, no weights, mean or sum.

    The same numbers as the general form with one-hot targets, in about half
    the array operations: the loss is ``logsumexp(z) - z[label]`` and the
    gradient ``softmax(z)`` with 1 subtracted at each label
    (:func:`xpnet._backend.sparse_softmax_xent`, once the arguments are checked).
    """
    check_choice("reduction", reduction, REDUCTIONS)
    namespace(logits, labels)
    if logits.ndim != 2:
        raise ValueError(
            f"logits must have shape (n_samples, n_classes), got {tuple(logits.shape)}"
        )
    n, k = logits.shape
    labels = _integer_labels(xp, labels, n, k)
    if n == 0:
        raise ValueError("the loss needs at least one sample, got an empty batch")
    # Labels outside [0, k) match no class (an all-zero target row), as
    # documented; only data checked by the model takes the indexing kernels.
    return sparse_softmax_xent(logits, labels, reduction == "mean", checked=False)


def _clip_probabilities(xp: Namespace, p: Array) -> tuple[Array, Array]:
    """Clip to ``[eps, 1 - eps]`` (eps of the dtype) and return the mask of
    entries the clip left alone: the clipped function has zero slope elsewhere."""
    eps = xp.finfo(p.dtype).eps
    inside = (p > eps) & (p < 1.0 - eps)
    return xp.clip(p, eps, 1.0 - eps), inside


def binary_cross_entropy(
    y_pred: Array,
    y_true: Array,
    *,
    reduction: str = "mean",
    sample_weight: Array | None = None,
) -> tuple[Array, Array]:
    """Binary cross-entropy from probabilities, clipped to the dtype's eps.

    ``-(y log p + (1 - y) log(1 - p))`` per element, mean over each sample's
    outputs. Prefer :func:`binary_cross_entropy_with_logits`: this form loses
    everything past the clip (a sigmoid that rounded to 1 has no gradient).
    """
    xp, y = _prepare(y_pred, y_true)
    p, inside = _clip_probabilities(xp, y_pred)
    elementwise = -(y * xp.log(p) + (1.0 - y) * xp.log1p(-p))
    grad = xp.where(inside, (p - y) / (p * (1.0 - p)), 0.0)
    return _reduce(xp, elementwise, grad, reduction, sample_weight)


def categorical_cross_entropy(
    y_pred: Array,
    y_true: Array,
    *,
    reduction: str = "mean",
    sample_weight: Array | None = None,
) -> tuple[Array, Array]:
    """Categorical cross-entropy from probabilities of shape (n_samples, n_classes).

    ``-sum_j y_j log p_j`` per sample with ``p`` clipped to the dtype's eps;
    `y_true` is one-hot/probabilities of the same shape or integer labels.
    Prefer :func:`softmax_cross_entropy_with_logits`.
    """
    xp = _float_namespace(y_pred, "y_pred")
    y = _class_targets(xp, y_pred, y_true)
    p, inside = _clip_probabilities(xp, y_pred)
    grad = xp.where(inside, -y / p, 0.0)
    return _reduce(xp, -(y * xp.log(p)), grad, reduction, sample_weight, per_sample="sum")


def mean_squared_error(
    y_pred: Array,
    y_true: Array,
    *,
    reduction: str = "mean",
    sample_weight: Array | None = None,
) -> tuple[Array, Array]:
    """Mean squared error: per sample ``mean((y_pred - y_true)**2)`` over outputs."""
    xp, y = _prepare(y_pred, y_true)
    r = y_pred - y
    return _reduce(xp, r * r, 2.0 * r, reduction, sample_weight)


def mean_absolute_error(
    y_pred: Array,
    y_true: Array,
    *,
    reduction: str = "mean",
    sample_weight: Array | None = None,
) -> tuple[Array, Array]:
    """Mean absolute error: per sample ``mean(|y_pred - y_true|)``; the
    gradient at a tie is 0 (the subgradient of ``|r|`` at 0 we choose)."""
    xp, y = _prepare(y_pred, y_true)
    r = y_pred - y
    return _reduce(xp, xp.abs(r), xp.sign(r), reduction, sample_weight)


def sum_squared_error(
    y_pred: Array,
    y_true: Array,
    *,
    reduction: str = "mean",
    sample_weight: Array | None = None,
) -> tuple[Array, Array]:
    """Half the sum of squared errors per sample, ``0.5 * sum((y_pred - y_true)**2)``.

    The ½ makes the gradient exactly the residual ``y_pred - y_true``, the
    form of the delta rule in the textbooks.
    """
    xp, y = _prepare(y_pred, y_true)
    r = y_pred - y
    return _reduce(xp, 0.5 * (r * r), r, reduction, sample_weight, per_sample="sum")


def kl_divergence(
    y_pred: Array,
    y_true: Array,
    *,
    reduction: str = "mean",
    sample_weight: Array | None = None,
) -> tuple[Array, Array]:
    """Kullback-Leibler divergence ``sum_j y_j log(y_j / p_j)`` per sample.

    Both distributions are clipped to ``[eps, 1]`` as in Keras, so a zero
    prediction contributes a finite amount; a zero target contributes exactly
    0 (``0 log 0 = 0``, as in PyTorch) and no gradient.
    """
    xp, y = _prepare(y_pred, y_true)
    eps = xp.finfo(y_pred.dtype).eps
    y_log = xp.clip(y, eps, 1.0)
    y = xp.where(y != 0, y_log, 0.0)
    p = xp.clip(y_pred, eps, 1.0)
    inside = (y_pred > eps) & (y_pred < 1.0)
    grad = xp.where(inside, -y / p, 0.0)
    return _reduce(xp, y * xp.log(y_log / p), grad, reduction, sample_weight, per_sample="sum")


def huber(
    y_pred: Array,
    y_true: Array,
    *,
    delta: float = 1.0,
    reduction: str = "mean",
    sample_weight: Array | None = None,
) -> tuple[Array, Array]:
    """Huber loss: ``r**2 / 2`` for ``|r| <= delta``, ``delta * (|r| - delta / 2)``
    beyond; mean over each sample's outputs. The gradient is ``clip(r, -delta, delta)``."""
    if not delta > 0:
        raise ValueError(f"delta must be positive, got {delta!r}")
    xp, y = _prepare(y_pred, y_true)
    r = y_pred - y
    a = xp.abs(r)
    elementwise = xp.where(a <= delta, 0.5 * (r * r), delta * (a - 0.5 * delta))
    return _reduce(xp, elementwise, xp.clip(r, -delta, delta), reduction, sample_weight)
