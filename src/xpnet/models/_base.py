"""What the scikit-learn estimators share: parameters, data handling, fitting.

Every estimator builds a :class:`xpnet.Sequential` (an
:class:`~xpnet.models._objective.L2Sequential`, which adds scikit-learn's
L2 penalty to the public step) and trains it with the loop of
:mod:`xpnet.models._loop`. Host data (NumPy, lists, pandas,
``scipy.sparse``) is validated by scikit-learn's own helpers; arrays of a
device library (CuPy, PyTorch, JAX, array-api-strict) are passed to the
model as they are, so they never leave their device, and predictions come
back in the library they came from. Sparse input is densified a batch (or,
to predict, a chunk of rows) at a time, never whole.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from scipy.sparse import issparse
from sklearn.base import BaseEstimator
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from xpnet import losses as _losses
from xpnet import optimizers as _optimizers
from xpnet._backend import (
    BACKENDS,
    asarray,
    backend_of,
    dtype_name,
    get_backend,
    is_device_array,
    namespace,
    to_numpy,
)
from xpnet._backend.devices import list_devices
from xpnet.models import _loop
from xpnet.models._objective import SKLEARN_ACTIVATIONS, L2Sequential, dense_stack

# Rows densified per forward pass when predicting on sparse input.
SPARSE_CHUNK = 1024


@dataclass
class Head:
    """The output side of a network: its loss, units and activation, the
    labels that stratify an early-stopping split, and how a validation
    split is scored."""

    loss: _losses.Loss
    n_outputs: int
    activation: str | None
    stratify: Any = None


class _XpnetEstimator(BaseEstimator):
    """Shared machinery; subclasses say which network to build."""

    #: Whether the estimator stops by scikit-learn's tol / n_iter_no_change rule.
    _stops = False

    def _hidden(self) -> tuple[int, ...]:
        return ()

    def _hidden_activation(self) -> str | None:
        name = getattr(self, "activation", None)
        return SKLEARN_ACTIVATIONS.get(name, name) if isinstance(name, str) else name

    def _batch_size(self, n: int) -> int:
        batch_size = self.batch_size
        if batch_size == "auto":
            return min(200, n)
        if batch_size is None:
            return n
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be None, 'auto' or an int >= 1, got {batch_size!r}")
        return min(batch_size, n)

    def _optimizer(self) -> _optimizers.Optimizer:
        if isinstance(self.optimizer, str) and self.optimizer.lower() == "adam":
            # scikit-learn's Adam: Keras's update with epsilon 1e-8.
            optimizer = _optimizers.Adam(epsilon=1e-8)
        else:
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

    def _check_params(self, n: int) -> None:
        """Refuse bad hyper-parameters before any work is done."""
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"epochs must be an int >= 1, got {self.epochs!r}")
        if isinstance(self.alpha, bool) or not self.alpha >= 0:
            raise ValueError(f"alpha must be a number >= 0, got {self.alpha!r}")
        self._batch_size(n)
        self._hidden()
        if self._stops:
            self._check_stopping_params()

    # -------------------------------------------------------------- data

    def _validate_x(self, X: Any, reset: bool) -> Any:
        if is_device_data(X):
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
        return validate_data(self, X, reset=reset, dtype="numeric", accept_sparse="csr")

    def _validate_xy(
        self, X: Any, y: Any, *, multi_output: bool, reset: bool = True
    ) -> tuple[Any, Any]:
        if is_device_data(X):
            X = self._validate_x(X, reset=reset)
            if is_device_data(y) and int(y.shape[0]) != int(X.shape[0]):
                raise ValueError(f"X has {X.shape[0]} samples but y has {y.shape[0]}")
            return X, y
        return validate_data(
            self, X, y, reset=reset, dtype="numeric", accept_sparse="csr",
            multi_output=multi_output, y_numeric=not self._is_classifier(),
        )  # fmt: skip

    @staticmethod
    def _is_classifier() -> bool:
        return False

    def _sample_weight(self, sample_weight: Any, X: Any) -> Any:
        if sample_weight is None or is_device_data(sample_weight):
            return sample_weight
        return _check_sample_weight(sample_weight, X)

    # -------------------------------------------------------------- fitting

    def _new_model(self, X: Any, head: Head) -> L2Sequential:
        """The untrained, compiled network for `X` and `head`."""
        model = L2Sequential(
            dense_stack(int(X.shape[1]), self._hidden(), self._hidden_activation(),
                        head.n_outputs, head.activation, self.kernel_initializer),
            alpha=self.alpha, backend=self.backend, device=self.device,
            dtype=self._dtype_for(X), seed=self.seed,
        )  # fmt: skip
        model.compile(loss=head.loss, optimizer=self._optimizer())
        if issparse(X):  # dense data builds (and places) the model in prepare
            model.build(int(X.shape[1]))
        return model

    def _plan(self, n: int, epochs: int, stopping: _loop.Stopping | None) -> _loop.Plan:
        return _loop.Plan(
            epochs=epochs, batch_size=self._batch_size(n), shuffle=getattr(self, "shuffle", True),
            seed=self.seed, stopping=stopping, verbose=int(self.verbose), name=type(self).__name__,
        )  # fmt: skip

    def _fit_network(self, X: Any, y: Any, sample_weight: Any, head: Head) -> None:
        """Build the network for `head`, train it on ``(X, y)``, and set the
        fitted attributes, all at the end: a fit that raises leaves the
        estimator as it was."""
        self._check_params(int(X.shape[0]))
        model = self._new_model(X, head)
        val = None
        if getattr(self, "early_stopping", False):
            (X, y, sample_weight), val = self._split(X, y, sample_weight, head.stratify)
        rows = _training_rows(model, X, y, sample_weight)
        stopping = None
        if self._stops:
            stopping = _loop.Stopping(self.tol, self.n_iter_no_change, val is not None)
        plan = self._plan(rows.n, self.epochs, stopping)
        if val is not None:
            plan.score = lambda: self._validation_score(model, *val)
        record = _loop.train(model, rows, plan)
        if self._stops and not record.converged and len(record.loss_curve) == self.epochs:
            _loop.warn_not_converged(type(self).__name__, self.epochs, self.tol, val is not None)
        self._set_fitted(model, record, plan, rows.n, resume=False)

    def _partial_fit_network(self, X: Any, y: Any, sample_weight: Any, head: Head) -> None:
        """One epoch over ``(X, y)``, continuing the network, its optimizer and
        the stopping rule's count where the last fit or partial_fit left them
        (the first call builds the network for `head`): scikit-learn's MLP
        ``partial_fit``. The caller runs it under :meth:`_kept_on_error`."""
        if getattr(self, "early_stopping", False):
            raise ValueError("partial_fit does not support early_stopping=True")
        self._check_params(int(X.shape[0]))
        resume = hasattr(self, "model_")
        model = self.model_ if resume else self._new_model(X, head)
        model.alpha = float(self.alpha)  # read on every call, as scikit-learn does
        rows = _training_rows(model, X, y, sample_weight)
        stopping = None
        if self._stops:
            stopping = _loop.Stopping(self.tol, self.n_iter_no_change, on_score=False)
            last = getattr(self, "_stopping", None) if resume else None
            if last is not None and not last.on_score:
                stopping.best, stopping.count = last.best, last.count
        plan = self._plan(rows.n, 1, stopping)
        self._set_fitted(model, _loop.train(model, rows, plan), plan, rows.n, resume=resume)

    @contextlib.contextmanager
    def _kept_on_error(self, *, in_place: bool) -> Iterator[None]:
        """A call that raises leaves the estimator as it was: its attributes
        and, when it trains the fitted network `in_place` (partial_fit), that
        network's weights and optimizer state (a Ctrl-C is not an error: it
        keeps what was trained)."""
        saved = dict(self.__dict__)
        model = saved.get("model_") if in_place else None
        state = None
        if model is not None:
            state = (model.get_weights(), model.optimizer.get_state(), model.alpha)
        try:
            yield
        except Exception:
            self.__dict__.clear()
            self.__dict__.update(saved)
            if state is not None:
                weights, optimizer_state, model.alpha = state
                model.set_weights(weights)
                model.optimizer.set_state(optimizer_state, model.placement, model.dtype)
                self._expose_weights()  # the old views may show the steps that ran
            raise

    def _check_stopping_params(self) -> None:
        if isinstance(self.tol, bool) or not self.tol >= 0:
            raise ValueError(f"tol must be a number >= 0, got {self.tol!r}")
        patience = self.n_iter_no_change
        if isinstance(patience, bool) or not (patience == float("inf") or (
            isinstance(patience, int) and patience >= 1
        )):  # fmt: skip
            raise ValueError(f"n_iter_no_change must be an int >= 1 or inf, got {patience!r}")
        if self.early_stopping and not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(
                f"validation_fraction must be in (0, 1), got {self.validation_fraction!r}"
            )

    def _split(self, X: Any, y: Any, w: Any, stratify: Any) -> tuple[tuple, tuple]:
        """scikit-learn's early-stopping hold-out: ``validation_fraction`` of
        the rows, stratified by class for single-label classifiers; the
        held-out targets and weights come back as NumPy arrays for scoring."""
        from sklearn.model_selection import train_test_split

        n = int(X.shape[0])
        train, val = train_test_split(
            to_numpy(list(range(n))), test_size=self.validation_fraction,
            random_state=self.seed, stratify=stratify,
        )  # fmt: skip
        if len(val) < 2:
            raise ValueError(
                f"The validation set is too small: {len(val)} of {n} samples. Increase "
                "validation_fraction or the size of your dataset."
            )
        train_part = tuple(_rows(a, train) for a in (X, y, w))
        x_val, y_val, w_val = (_rows(a, val) for a in (X, y, w))
        y_val = to_numpy(y_val)
        return train_part, (x_val, y_val, None if w_val is None else to_numpy(w_val))

    def _validation_score(self, model: Any, X: Any, y: Any, w: Any) -> float:
        """The score scikit-learn's early stopping watches (accuracy, R²),
        NaN when the network's outputs are no longer finite."""
        out = to_numpy(_network_output(model, X))
        xp = namespace(out)
        if not bool(xp.all(xp.isfinite(out))):
            return float("nan")
        return float(self._score_outputs(out, y, w))

    def _score_outputs(self, out: Any, y: Any, w: Any) -> float:
        raise NotImplementedError

    def _set_fitted(
        self, model: Any, record: _loop.Record, plan: _loop.Plan, n: int, *, resume: bool
    ) -> None:
        """The fitted attributes after a run over `n` rows; `resume` (a
        partial_fit that continues) extends the loss curve and sample count."""
        self.model_ = model
        self.loss_curve_ = [*(self.loss_curve_ if resume else ()), *record.loss_curve]
        self.n_iter_ = len(record.loss_curve)  # this call's epochs, as scikit-learn
        self.t_ = (self.t_ if resume else 0) + n * self.n_iter_
        self._expose_weights()
        if not self._stops:
            return
        self._stopping = plan.stopping
        self.loss_ = self.loss_curve_[-1] if self.loss_curve_ else None
        early = plan.score is not None
        self.validation_scores_ = list(record.validation_scores) if early else None
        self.best_validation_score_ = plan.stopping.best if early else None
        self.best_loss_ = None if early else plan.stopping.best

    def _expose_weights(self) -> None:
        """``coef_`` and ``intercept_`` (the output layer's; 1-D for a single
        target given as a vector) and the MLPs' ``coefs_`` and ``intercepts_``:
        the network's current parameters."""
        model = self.model_
        last = model.layers[-1].params
        xp = model.placement.xp
        coef = xp.permute_dims(last["kernel"], (1, 0))
        intercept = last["bias"] if "bias" in last else xp.zeros_like(last["kernel"][0, ...])
        if getattr(self, "_y_1d", False):
            coef, intercept = coef[0, ...], intercept[0]
        self.coef_, self.intercept_ = coef, intercept
        if self._stops:
            self.coefs_ = [layer.params["kernel"] for layer in model.layers]
            self.intercepts_ = [layer.params["bias"] for layer in model.layers]

    # -------------------------------------------------------------- predicting

    def _raw_predict(self, X: Any) -> tuple[Any, bool]:
        """The network's output for `X`, and whether `X` was device data."""
        check_is_fitted(self, "model_")
        on_device = is_device_data(X)
        X = self._validate_x(X, reset=False)
        return _network_output(self.model_, X), on_device

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

    def __getstate__(self) -> dict[str, Any]:
        # Device objects do not all pickle (JAX's): keep the name of the device.
        state = super().__getstate__()
        device, name = state.get("device"), state.get("backend")
        if device is not None and not isinstance(device, str) and isinstance(name, str):
            tokens = [t for t in list_devices(name) if get_backend(name, t).device == device]
            state["device"] = tokens[0] if tokens else device
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        tags.input_tags.sparse = True
        return tags


def is_device_data(a: Any) -> bool:
    """Whether `a` is an array of a library xpnet trains on (CuPy, PyTorch,
    JAX, array-api-strict), which stays where it lives. Any other array
    object, a Dask array say, is host data that scikit-learn's validation
    reads into NumPy, as scikit-learn's own estimators do."""
    return is_device_array(a) and backend_of(a).name in BACKENDS


def _network_output(model: Any, X: Any) -> Any:
    """``model.predict(X)``; sparse `X` is densified a chunk of rows at a time."""
    if not issparse(X):
        return model.predict(X)
    n = int(X.shape[0])
    parts = [
        model.predict(X[start : start + SPARSE_CHUNK].toarray())
        for start in range(0, n, SPARSE_CHUNK)
    ]
    return parts[0] if len(parts) == 1 else model.placement.xp.concat(parts, axis=0)


def _training_rows(model: Any, X: Any, y: Any, w: Any) -> _loop.DenseRows | _loop.SparseRows:
    """The loop's rows: dense data is checked and placed here, once."""
    return (_loop.SparseRows if issparse(X) else _loop.DenseRows)(model, X, y, w)


def _rows(a: Any, index: Any) -> Any:
    """Rows `index` (a NumPy integer array) of host, sparse or device data."""
    if a is None:
        return None
    if is_device_data(a):
        return namespace(a).take(a, asarray(index, backend_of(a)), axis=0)
    return a[index]


def _host(a: Any) -> Any:
    return None if a is None else to_numpy(a)
