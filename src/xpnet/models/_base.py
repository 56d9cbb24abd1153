"""What the scikit-learn estimators share: parameters, data handling, fitting.

Every estimator builds a :class:`xpnet.Sequential` and trains it with
``fit``; there is no second training loop. Host data (NumPy, lists,
pandas) is validated by scikit-learn's own helpers; arrays of a device
library (CuPy, PyTorch, JAX, array-api-strict) are passed to the model as
they are, so they never leave their device, and predictions come back in
the library they came from.
"""

from __future__ import annotations

import math
from typing import Any

from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from xpnet import layers as _layers
from xpnet import losses as _losses
from xpnet import optimizers as _optimizers
from xpnet._backend import (
    asarray,
    backend_of,
    dtype_name,
    is_device_array,
    namespace,
    to_numpy,
)
from xpnet.model import Sequential


class _XpnetEstimator(BaseEstimator):
    """Shared machinery; subclasses say which network to build."""

    def _layers(self, n_outputs: int, output_activation: str | None) -> list[_layers.Layer]:
        """The hidden layers (none for the linear models) and the output layer."""
        hidden = [
            _layers.Dense(int(units), activation=self.activation,
                          kernel_initializer=self.kernel_initializer)
            for units in self._hidden()
        ]  # fmt: skip
        out = _layers.Dense(
            n_outputs, activation=output_activation, kernel_initializer=self.kernel_initializer
        )
        return [*hidden, out]

    def _hidden(self) -> tuple[int, ...]:
        return ()

    def _batch_size(self, n: int) -> int | None:
        batch_size = self.batch_size
        if batch_size == "auto":
            return min(200, n)
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
        ):
            raise ValueError(f"batch_size must be None, 'auto' or an int >= 1, got {batch_size!r}")
        return batch_size

    def _optimizer(self) -> _optimizers.Optimizer:
        optimizer = _optimizers.get(self.optimizer)
        if isinstance(self.optimizer, _optimizers.Optimizer):
            optimizer = _optimizers.get(_optimizers.serialize(optimizer))  # a fresh copy
        optimizer.learning_rate = self.learning_rate
        return optimizer

    def _dtype_for(self, X: Any) -> str:
        """The explicit `dtype`, else scikit-learn's rule: float32 input stays
        float32, everything else computes in float64."""
        if self.dtype is not None:
            return self.dtype
        return "float32" if dtype_name(X.dtype) == "float32" else "float64"

    def _check_epochs(self) -> None:
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"epochs must be an int >= 1, got {self.epochs!r}")

    # -------------------------------------------------------------- data

    def _validate_x(self, X: Any, reset: bool) -> Any:
        if is_device_array(X):
            if X.ndim != 2:
                raise ValueError(f"X must be 2-D (n_samples, n_features), got {tuple(X.shape)}")
            n_features = int(X.shape[1])
            if reset:
                self.n_features_in_ = n_features
            elif n_features != self.n_features_in_:
                raise ValueError(
                    f"X has {n_features} features, but {type(self).__name__} is expecting "
                    f"{self.n_features_in_} features as input"
                )
            return X
        return validate_data(self, X, reset=reset, dtype="numeric")

    def _validate_xy(self, X: Any, y: Any, *, multi_output: bool) -> tuple[Any, Any]:
        if is_device_array(X):
            X = self._validate_x(X, reset=True)
            if is_device_array(y) and int(y.shape[0]) != int(X.shape[0]):
                raise ValueError(f"X has {X.shape[0]} samples but y has {y.shape[0]}")
            return X, y
        return validate_data(
            self, X, y, reset=True, dtype="numeric", multi_output=multi_output,
            y_numeric=not self._is_classifier(),
        )  # fmt: skip

    @staticmethod
    def _is_classifier() -> bool:
        return False

    def _fit_model(self, X, y, sample_weight, loss, n_outputs, output_activation) -> None:
        self._check_epochs()
        model = Sequential(
            self._layers(n_outputs, output_activation),
            backend=self.backend,
            device=self.device,
            dtype=self._dtype_for(X),
            seed=self.seed,
        )
        model.compile(loss=loss, optimizer=self._optimizer())
        if sample_weight is not None and not is_device_array(sample_weight):
            from sklearn.utils.validation import _check_sample_weight

            sample_weight = _check_sample_weight(sample_weight, X)
        history = model.fit(
            X,
            y,
            epochs=self.epochs,
            batch_size=self._batch_size(int(X.shape[0])),
            shuffle=True,
            sample_weight=sample_weight,
            verbose=int(self.verbose),
        )
        if not all(math.isfinite(v) for v in history.history["loss"]):
            raise ValueError(
                f"{type(self).__name__} diverged: the training loss overflowed to "
                f"{history.history['loss'][-1]}. Lower learning_rate (now "
                f"{self.learning_rate}) or scale X, e.g. with StandardScaler."
            )
        self.model_ = model
        self.loss_curve_ = list(history.history["loss"])
        self.n_iter_ = len(self.loss_curve_)
        kernel, bias = model.layers[-1].params["kernel"], model.layers[-1].params.get("bias")
        xp = model.placement.xp
        self.coef_ = xp.permute_dims(kernel, (1, 0))
        self.intercept_ = bias if bias is not None else xp.zeros_like(kernel[0, ...])

    def _raw_predict(self, X: Any) -> tuple[Any, bool]:
        """The network's output for `X`, and whether `X` was device data."""
        check_is_fitted(self, "model_")
        on_device = is_device_array(X)
        X = self._validate_x(X, reset=False)
        return self.model_.predict(X), on_device

    def _output(self, out: Any, on_device: bool) -> Any:
        """Give results back in the caller's library: for host input, NumPy
        float64 as scikit-learn's own estimators return."""
        return out if on_device else to_numpy(out).astype("float64")

    def export(self, filepath: str, format: str = "onnx") -> None:
        """Write the fitted estimator's inference graph to `filepath`:
        ``predict_proba`` for classifiers, ``predict`` for regressors
        (``"onnx"``; needs ``pip install "xpnet[onnx]"``)."""
        from xpnet import _export

        _export.export(self, filepath, format)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags


class _ClassifierBase(ClassifierMixin, _XpnetEstimator):
    """Classifiers: labels of any kind through ``classes_``; sigmoid output
    for two classes when `_binary_sigmoid` says so, softmax otherwise."""

    _binary_sigmoid = True

    @staticmethod
    def _is_classifier() -> bool:
        return True

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> _ClassifierBase:
        """Fit on ``X`` of shape (n_samples, n_features) and labels ``y``."""
        X, y = self._validate_xy(X, y, multi_output=False)
        host_y = to_numpy(y) if is_device_array(y) else y
        host_y = column_or_1d(host_y, warn=True)
        check_classification_targets(host_y)
        encoder = LabelEncoder()
        codes = encoder.fit_transform(host_y)
        self.classes_ = encoder.classes_
        n_classes = len(self.classes_)
        if n_classes < 2:
            raise ValueError(
                f"{type(self).__name__} needs samples of at least 2 classes in the data, "
                f"but the data contains only one class: {self.classes_[0]!r}"
            )
        if is_device_array(X):
            codes = asarray(codes, backend_of(X))
        if n_classes == 2 and self._binary_sigmoid:
            self._fit_model(
                X, codes * 1.0, sample_weight, _losses.BinaryCrossentropy(), 1, "sigmoid"
            )
        else:
            self._fit_model(
                X,
                codes,
                sample_weight,
                _losses.SparseCategoricalCrossentropy(),
                n_classes,
                "softmax",
            )
        return self

    def predict_proba(self, X: Any) -> Any:
        """Class probabilities, shape (n_samples, n_classes), in ``classes_`` order."""
        out, on_device = self._raw_predict(X)
        if int(out.shape[1]) == 1:
            xp = namespace(out)
            out = xp.concat([1.0 - out, out], axis=1)
        return self._output(out, on_device)

    def predict(self, X: Any) -> Any:
        """The most probable class of each sample, as a label of ``classes_``."""
        out, on_device = self._raw_predict(X)
        xp = namespace(out)
        if int(out.shape[1]) == 1:
            index = xp.astype(out[:, 0] > 0.5, xp.int32)
        else:
            index = xp.argmax(out, axis=1)
        if on_device and self.classes_.dtype.kind in "iufb":
            classes = asarray(self.classes_, backend_of(out))
            return xp.take(classes, index, axis=0)
        return self.classes_[to_numpy(index)]

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean accuracy on ``(X, y)``."""
        from sklearn.metrics import accuracy_score

        predicted = to_numpy(self.predict(X))
        return float(accuracy_score(to_numpy(y), predicted, sample_weight=_host(sample_weight)))


class _RegressorBase(RegressorMixin, _XpnetEstimator):
    """Regressors: a linear output trained with mean squared error."""

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> _RegressorBase:
        """Fit on ``X`` of shape (n_samples, n_features) and targets ``y``
        of shape (n_samples,) or (n_samples, n_targets)."""
        X, y = self._validate_xy(X, y, multi_output=True)
        self._y_1d = y.ndim == 1
        n_outputs = 1 if y.ndim == 1 else int(y.shape[1])
        self._fit_model(X, y, sample_weight, _losses.MeanSquaredError(), n_outputs, None)
        if self._y_1d:
            self.coef_ = self.coef_[0, ...]
            self.intercept_ = self.intercept_[0]
        return self

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


def _host(a: Any) -> Any:
    return None if a is None else to_numpy(a)
