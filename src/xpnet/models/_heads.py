"""The two kinds of estimator: classifiers and regressors.

A classifier's labels go through ``classes_``: one sigmoid unit for two
classes (when the estimator says so), a softmax layer for more, and one
sigmoid unit per label for a multilabel indicator matrix (where the
estimator allows one), as scikit-learn's ``MLPClassifier`` does. A
regressor has a linear output.
"""

from __future__ import annotations

from typing import Any

from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.preprocessing import LabelBinarizer, LabelEncoder
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from sklearn.utils.validation import column_or_1d

from xpnet import losses as _losses
from xpnet._backend import (
    asarray,
    backend_of,
    device_of,
    namespace,
    quiet_float_errors,
    to_numpy,
)
from xpnet.models._base import Head, _host, _XpnetEstimator, is_device_data


class _ClassifierBase(ClassifierMixin, _XpnetEstimator):
    """Classifiers: labels of any kind through ``classes_``."""

    #: Two classes get one sigmoid unit (else a two-way softmax).
    _binary_sigmoid = True
    #: A 2-D indicator ``y`` trains one sigmoid unit per label.
    _multilabel = False

    @staticmethod
    def _is_classifier() -> bool:
        return True

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> _ClassifierBase:
        """Fit on ``X`` of shape (n_samples, n_features) (dense or
        ``scipy.sparse``) and labels ``y`` of shape (n_samples,), or, where
        supported, a multilabel indicator matrix of shape (n_samples, n_labels)."""
        with self._kept_on_error(in_place=False):
            self._fit_labels(X, y, sample_weight, None)
        return self

    def partial_fit(
        self, X: Any, y: Any, classes: Any = None, sample_weight: Any = None
    ) -> _ClassifierBase:
        """One epoch of mini-batch training on ``(X, y)``, continuing from the
        current weights and optimizer state (scikit-learn's MLP ``partial_fit``).

        `classes` (every label the calls will see) is required on the first
        call and, if given later, must be the same; labels of ``y`` outside
        it are refused. A call that raises changes nothing.
        ``early_stopping=True`` is refused; ``fit`` starts over.
        """
        with self._kept_on_error(in_place=True):
            self.classes_ = self._partial_fit_classes(classes)
            self._fit_labels(X, y, sample_weight, self.classes_)
        return self

    def _partial_fit_classes(self, classes: Any) -> Any:
        """scikit-learn's rule: `classes` on the first call, the same ones after."""
        known = getattr(self, "classes_", None)
        if classes is None:
            if known is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            return known
        given = unique_labels(classes)
        if known is not None and given.tolist() != known.tolist():
            raise ValueError(
                f"`classes={classes!r}` is not the same as on last call to partial_fit, "
                f"was: {known!r}"
            )
        if len(given) < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 classes, got {classes!r}")
        return given

    def _fit_labels(self, X: Any, y: Any, sample_weight: Any, classes: Any) -> None:
        """`fit` (`classes` None: from ``y``, and a new network) or one
        `partial_fit` epoch (over the given `classes`)."""
        partial = classes is not None
        resume = partial and hasattr(self, "model_")
        X, y = self._validate_xy(X, y, multi_output=self._multilabel, reset=not resume)
        host_y = to_numpy(y) if is_device_data(y) else y
        if host_y.ndim == 2 and host_y.shape[1] == 1:
            host_y = column_or_1d(host_y, warn=True)
        sample_weight = self._sample_weight(sample_weight, X)
        if host_y.ndim == 2:
            head, targets, classes, sample_weight = self._multilabel_head(
                X, y, host_y, sample_weight, classes
            )
        else:
            head, targets, classes = self._label_head(X, host_y, classes)
        n_labels = head.n_outputs if host_y.ndim == 2 else 0
        if resume and n_labels != self._n_labels:
            raise ValueError(
                f"y of shape {host_y.shape} does not match the earlier calls' "
                + (f"indicator matrices of {self._n_labels} labels" if self._n_labels else "labels")
            )
        if partial:
            self._partial_fit_network(X, targets, sample_weight, head)
        else:
            self._fit_network(X, targets, sample_weight, head)
        self.classes_ = classes
        self._n_labels = n_labels

    def _label_head(self, X: Any, host_y: Any, classes: Any) -> tuple[Any, Any, Any]:
        """Binary or multiclass labels, encoded as 0..k-1 over `classes`
        (None: the labels found in ``host_y``)."""
        check_classification_targets(host_y)
        if classes is not None:
            seen = unique_labels(host_y)
            known = set(classes.tolist())
            if any(label not in known for label in seen.tolist()):
                raise ValueError(
                    "`y` has classes not in `self.classes_`. "
                    f"`self.classes_` has {classes}. 'y' has {seen}."
                )
        encoder = LabelEncoder().fit(host_y if classes is None else classes)
        codes = encoder.transform(host_y)
        n_classes = len(encoder.classes_)
        if n_classes < 2:
            raise ValueError(
                f"{type(self).__name__} needs samples of at least 2 classes in the data, "
                f"but the data contains only one class: {encoder.classes_[0]!r}"
            )
        if n_classes == 2 and self._binary_sigmoid:
            head = Head(_losses.BinaryCrossentropy(), 1, "sigmoid", stratify=codes)
            targets = codes * 1.0
        else:
            head = Head(_losses.SparseCategoricalCrossentropy(), n_classes, "softmax", codes)
            targets = codes
        if is_device_data(X):
            targets = asarray(targets, backend_of(X))
        return head, targets, encoder.classes_

    def _multilabel_head(
        self, X: Any, y: Any, host_y: Any, w: Any, given: Any = None
    ) -> tuple[Any, ...]:
        """A multilabel indicator matrix: one sigmoid unit per label. Each
        sample's weight is multiplied by the number of labels, so that the
        loss sums the labels' binary cross-entropies (scikit-learn's loss)
        instead of averaging them. `given` classes (partial_fit) must be the
        column indices."""
        kind = type_of_target(host_y)
        if kind != "multilabel-indicator":
            raise ValueError(
                f"{type(self).__name__} takes labels of shape (n_samples,) or a multilabel "
                f"indicator matrix of 0/1; y of shape {host_y.shape} is {kind!r}"
            )
        classes = LabelBinarizer().fit(host_y).classes_
        if given is not None and given.tolist() != classes.tolist():
            raise ValueError(
                f"for an indicator matrix y of {len(classes)} labels, classes must be "
                f"{classes.tolist()} (the column indices), got {given.tolist()}"
            )
        k = int(host_y.shape[1])
        n = int(host_y.shape[0])
        if is_device_data(X):
            xp = namespace(X)
            w = xp.full((n,), float(k), device=device_of(X)) if w is None else w * float(k)
        else:
            w = (self._sample_weight([1.0] * n, X) if w is None else w) * float(k)
        targets = y if is_device_data(X) else host_y
        return Head(_losses.BinaryCrossentropy(), k, "sigmoid"), targets, classes, w

    def _score_outputs(self, out: Any, y: Any, w: Any) -> float:
        from sklearn.metrics import accuracy_score

        if y.ndim == 2:  # multilabel: the indicator matrices must agree
            predicted = (out > 0.5).astype("int64")
        elif int(out.shape[1]) == 1:
            predicted = (out[:, 0] > 0.5).astype("int64")
        else:
            predicted = out.argmax(axis=1)
        return accuracy_score(y, predicted, sample_weight=w)

    def predict_proba(self, X: Any) -> Any:
        """Class probabilities, shape (n_samples, n_classes), in ``classes_``
        order (for multilabel: each label's probability, independently)."""
        out, on_device = self._raw_predict(X)
        if int(out.shape[1]) == 1:
            xp = namespace(out)
            out = xp.concat([1.0 - out, out], axis=1)
        return self._output(out, on_device)

    def predict_log_proba(self, X: Any) -> Any:
        """The logarithm of :meth:`predict_proba` (``-inf`` where a
        probability rounds to 0)."""
        proba = self.predict_proba(X)
        with quiet_float_errors():
            return namespace(proba).log(proba)

    def predict(self, X: Any) -> Any:
        """The most probable class of each sample, as a label of ``classes_``;
        for multilabel, the indicator matrix of the labels with probability > 0.5."""
        out, on_device = self._raw_predict(X)
        xp = namespace(out)
        if getattr(self, "_n_labels", 0):
            indicator = xp.astype(out > 0.5, xp.int32)
            return indicator if on_device else to_numpy(indicator).astype("int64")
        if int(out.shape[1]) == 1:
            index = xp.astype(out[:, 0] > 0.5, xp.int32)
        else:
            index = xp.argmax(out, axis=1)
        if on_device and self.classes_.dtype.kind in "iufb":
            classes = asarray(self.classes_, backend_of(out))
            return xp.take(classes, index, axis=0)
        return self.classes_[to_numpy(index)]

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean accuracy on ``(X, y)`` (subset accuracy for multilabel)."""
        from sklearn.metrics import accuracy_score

        predicted = to_numpy(self.predict(X))
        return float(accuracy_score(to_numpy(y), predicted, sample_weight=_host(sample_weight)))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = self._multilabel
        return tags


class _RegressorBase(RegressorMixin, _XpnetEstimator):
    """Regressors: a linear output; `_loss` is the training loss."""

    _loss: type[_losses.Loss] = _losses.MeanSquaredError

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> _RegressorBase:
        """Fit on ``X`` of shape (n_samples, n_features) (dense or
        ``scipy.sparse``) and targets ``y`` of shape (n_samples,) or
        (n_samples, n_targets)."""
        with self._kept_on_error(in_place=False):
            self._fit_targets(X, y, sample_weight, partial=False)
        return self

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> _RegressorBase:
        """One epoch of mini-batch training on ``(X, y)``, continuing from the
        current weights and optimizer state (scikit-learn's MLP
        ``partial_fit``); ``y`` must have as many targets as on the first
        call. A call that raises changes nothing. ``early_stopping=True`` is
        refused; ``fit`` starts over."""
        with self._kept_on_error(in_place=True):
            self._fit_targets(X, y, sample_weight, partial=True)
        return self

    def _fit_targets(self, X: Any, y: Any, sample_weight: Any, *, partial: bool) -> None:
        resume = partial and hasattr(self, "model_")
        X, y = self._validate_xy(X, y, multi_output=True, reset=not resume)
        sample_weight = self._sample_weight(sample_weight, X)
        n_outputs = 1 if y.ndim == 1 else int(y.shape[1])
        if resume and n_outputs != self.model_.output_dim:
            raise ValueError(
                f"y has {n_outputs} targets, but {type(self).__name__} was fitted on "
                f"{self.model_.output_dim}"
            )
        if not resume:
            self._y_1d = y.ndim == 1
        head = Head(self._loss(), n_outputs, None)
        if partial:
            self._partial_fit_network(X, y, sample_weight, head)
        else:
            self._fit_network(X, y, sample_weight, head)

    def _score_outputs(self, out: Any, y: Any, w: Any) -> float:
        from sklearn.metrics import r2_score

        return r2_score(y, out[:, 0] if y.ndim == 1 else out, sample_weight=w)

    def predict(self, X: Any) -> Any:
        """Predicted targets, shape (n_samples,) or (n_samples, n_targets)."""
        out, on_device = self._raw_predict(X)
        if self._y_1d:
            out = out[:, 0]
        return self._output(out, on_device)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Coefficient of determination R² on ``(X, y)``."""
        from sklearn.metrics import r2_score

        return float(
            r2_score(to_numpy(y), to_numpy(self.predict(X)), sample_weight=_host(sample_weight))
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
