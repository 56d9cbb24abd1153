"""``Sequential``: a stack of layers with Keras's build / compile / fit API.

Training one batch is the chain rule made literal: run each layer's forward,
keeping the backward closures; ask the loss for its gradient; replay the
closures in reverse; hand the parameter gradients to the optimizer.

A sigmoid or softmax output followed by binary / categorical cross-entropy
with ``from_logits=False`` is *fused*: in training the output layer stops at
the logits and the loss is computed from them (softplus / log-sum-exp form),
so its gradient is the exact ``(p - y) / N`` and a saturated output still
learns. ``predict`` applies the activation as usual.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from xpnet import _data, _training
from xpnet import callbacks as _callbacks
from xpnet import losses as _losses
from xpnet import metrics as _metrics
from xpnet import optimizers as _optimizers
from xpnet._backend import (
    Backend,
    asarray,
    backend_of,
    copy_array,
    default_backend,
    dtype_name,
    float_dtype,
    get_backend,
    host_rng,
    is_host_data,
    is_host_rng,
    quiet_float_errors,
    to_numpy,
)
from xpnet._typing import Array
from xpnet._validation import check_choice
from xpnet.layers import Layer

__all__ = ["Sequential"]

_PREDICT_CHUNK = 1024  # rows per forward pass in predict/evaluate (any size gives the same result)


class Sequential:
    """A linear stack of layers.

    Parameters
    ----------
    layers : iterable of Layer, optional
    backend : str, optional
        ``"numpy"``, ``"cupy"``, ``"torch"``, ``"jax"`` or
        ``"array_api_strict"``. When None: the default set by
        :func:`xpnet.set_backend` / ``XPNET_BACKEND`` if any, else the library
        of the first data the model sees (CuPy arrays in: trains on the GPU).
    device : optional
        Device on that backend (``"cuda:1"``, ``"device1"``, ...).
    dtype : {"float32", "float64", "float16", "bfloat16"}
        Parameter and computation dtype; inputs are cast to it.
    seed : int
        Seeds the initial weights, the shuffling and dropout: one seed gives
        the same initial weights on every backend.

    Examples
    --------
    >>> import numpy as np
    >>> import xpnet as xn
    >>> model = xn.Sequential([xn.layers.Dense(4, activation="tanh"), xn.layers.Dense(1)], seed=0)
    >>> model.compile(loss="mse", optimizer=xn.optimizers.SGD(0.1))
    >>> x = np.linspace(-1, 1, 32).reshape(-1, 1)
    >>> history = model.fit(x, x**2, epochs=3, batch_size=8, verbose=0)
    >>> len(history.history["loss"])
    3
    """

    def __init__(
        self,
        layers: Iterable[Layer] | None = None,
        *,
        backend: str | None = None,
        device: Any = None,
        dtype: str = "float32",
        seed: int = 0,
        name: str = "sequential",
    ) -> None:
        check_choice("dtype", dtype, ("float32", "float64", "float16", "bfloat16"))
        if backend is not None:
            get_backend(backend, device)  # fail early on unknown names and devices
        self.layers: list[Layer] = []
        self.name = name
        self.dtype = dtype
        self.seed = seed
        self._backend_arg = backend
        self._device_arg = device
        self.target: Backend | None = None
        self.loss: _losses.Loss | None = None
        self.optimizer: _optimizers.Optimizer | None = None
        self._metric_names: list[str] = []
        self.stop_training = False
        self.history: _callbacks.History | None = None
        self._shuffle_rng = host_rng([seed, 1])
        for layer in layers or ():
            self.add(layer)

    # ------------------------------------------------------------ structure

    def add(self, layer: Layer) -> None:
        """Append `layer`; it gets a unique name if it has none."""
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a Layer, got {type(layer).__name__}")
        if self.built:
            raise ValueError("cannot add layers to a model that is already built")
        if layer.name is None:
            base = layer.default_name
            taken = {existing.name for existing in self.layers}
            name, i = base, 0
            while name in taken:
                i += 1
                name = f"{base}_{i}"
            layer.name = name
        self.layers.append(layer)

    @property
    def built(self) -> bool:
        return bool(self.layers) and all(layer.built for layer in self.layers)

    @property
    def backend(self) -> str | None:
        return None if self.target is None else self.target.name

    @property
    def device(self) -> Any:
        return None if self.target is None else self.target.device

    def _resolve_target(self, data: Any = None) -> Backend:
        """Explicit argument, then the global default, then the data's library."""
        if self.target is None:
            if self._backend_arg is not None:
                self.target = get_backend(self._backend_arg, self._device_arg)
            elif default_backend() is not None:
                self.target = get_backend(None, self._device_arg)
            elif data is not None and not is_host_data(data):
                found = backend_of(data)
                if self._device_arg is not None:
                    found = get_backend(found.name, self._device_arg)
                self.target = found
            else:
                self.target = get_backend("numpy", self._device_arg)
            self._dtype = float_dtype(self.target.xp, self.dtype)
        return self.target

    def build(self, input_dim: int | None = None) -> Sequential:
        """Create every layer's parameters for inputs with `input_dim` features
        (or the first layer's ``input_dim``)."""
        if not self.layers:
            raise ValueError("the model has no layers; add some first")
        if input_dim is None:
            input_dim = self.layers[0].input_dim
        if input_dim is None:
            raise ValueError(
                "cannot build without the number of input features: pass "
                "build(input_dim) or give the first layer input_dim=..."
            )
        target = self._resolve_target()
        rng = host_rng(self.seed)
        shape: tuple[int | None, ...] = (None, int(input_dim))
        for layer in self.layers:
            if not layer.built:
                layer.build(shape, target=target, dtype=self._dtype, rng=rng)
            shape = layer.compute_output_shape(shape)
        return self

    @property
    def input_dim(self) -> int | None:
        return None if not self.built else int(self.layers[0].input_shape[-1])

    @property
    def output_dim(self) -> int:
        shape = self.layers[0].input_shape
        for layer in self.layers:
            shape = layer.compute_output_shape(shape)
        return int(shape[-1])

    # ------------------------------------------------------------ compile

    def compile(
        self,
        loss: str | _losses.Loss = "mse",
        optimizer: str | _optimizers.Optimizer = "rmsprop",
        metrics: Iterable[str | _metrics.Metric] | None = None,
    ) -> None:
        """Choose the loss, the optimizer and the metrics reported by ``fit``."""
        loss = _losses.get(loss)
        optimizer = _optimizers.get(optimizer)
        names = list(metrics or [])
        for m in names:
            if isinstance(m, str):
                _metrics.get(m, task="binary")  # validates the name, with a suggestion
            elif not isinstance(m, _metrics.Metric):
                raise TypeError(f"metric must be a name or a Metric, got {type(m).__name__}")
        self.loss, self.optimizer, self._metric_names = loss, optimizer, names

    @property
    def fused(self) -> bool:
        """Whether the output activation is folded into the loss in training."""
        return (
            self.loss is not None
            and bool(self.layers)
            and self.loss.fusable(self.layers[-1].output_activation)
        )

    def _task(self) -> str | None:
        if self.loss is not None and self.loss.task is not None:
            return self.loss.task
        return "binary" if self.output_dim == 1 else None

    def _metrics(self) -> list[_metrics.Metric]:
        task = self._task()
        return [_metrics.get(m, task=task) for m in self._metric_names]

    def _require_compiled(self, what: str) -> None:
        if self.loss is None or self.optimizer is None:
            raise RuntimeError(f"call compile(loss=..., optimizer=...) before {what}()")

    # ------------------------------------------------------------ data

    def _prepare(self, x, y, sample_weight=None, class_weight=None, name_suffix=""):
        return _data.prepare(self, x, y, sample_weight, class_weight, name_suffix)

    def _forward(self, x: Array, training: bool, logits: bool = False):
        out, backs = x, []
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            out, back = layer.forward(out, training=training, logits=logits and i == last)
            backs.append(back)
        return out, backs

    def _train_step(self, batch: _training.Data) -> tuple[Array, Array]:
        fused = self.fused
        out, backs = self._forward(batch.x, training=True, logits=fused)
        loss, grad = self.loss.compute(batch.y, out, batch.sample_weight, logits=fused)
        for i in range(len(backs) - 1, -1, -1):
            grad = backs[i](grad, need_dx=i > 0)
        slots = self._parameter_keys()
        new = self.optimizer.apply(
            [(key, layer.params[name], layer.grads[name]) for layer, name, key in slots],
            consume_gradients=True,
        )
        for (layer, name, _), value in zip(slots, new, strict=True):
            layer.params[name] = value
        return loss, out

    def _probabilities(self, out: Array, fused: bool) -> Array:
        return self.layers[-1].activation.forward(out) if fused else out

    def _metric_totals(self, metrics, y, out, fused) -> list[Array]:
        logits = fused or bool(getattr(self.loss, "from_logits", False))
        probs = None
        totals = []
        for metric in metrics:
            pred = out
            if metric.needs_probabilities and fused:
                if probs is None:
                    probs = self._probabilities(out, fused)
                pred = probs
            totals.append(metric.total(y, pred, logits))
        return totals

    # ------------------------------------------------------------ public API

    def fit(
        self,
        x: Any,
        y: Any,
        *,
        epochs: int = 1,
        batch_size: int | None = 32,
        shuffle: bool = True,
        validation_split: float = 0.0,
        validation_data: tuple[Any, ...] | None = None,
        class_weight: Mapping[int, float] | None = None,
        sample_weight: Any = None,
        callbacks: Iterable[_callbacks.Callback] | None = None,
        verbose: int = 1,
        initial_epoch: int = 0,
    ) -> _callbacks.History:
        """Train for `epochs` passes over ``(x, y)`` and return the History.

        Host data is moved to the model's device once; the batches are cut
        and shuffled there.

        If an exception is raised (bad data, a failing callback, an error in
        a layer), the model is put back exactly as it was before the call:
        weights, optimizer state, built or not, backend, and the shuffle and
        dropout streams, so the next ``fit`` equals that of an untouched
        twin. ``KeyboardInterrupt`` is different: a Ctrl-C takes effect at
        the next batch boundary, and the model keeps the weights and
        optimizer state of every batch finished so far (consistent, and
        ``fit`` can be called again to resume) before the interrupt
        propagates.

        Parameters
        ----------
        x : array of shape (n_samples, n_features)
        y : array of shape (n_samples,) or (n_samples, n_outputs)
        epochs : int
        batch_size : int or None
            None trains on the whole data as one batch.
        shuffle : bool
            Reshuffle every epoch (seeded by the model's seed).
        validation_split : float in [0, 1)
            Hold out this fraction, taken from the end of the data before
            shuffling, as Keras does. Ignored when `validation_data` is given.
        validation_data : tuple (x_val, y_val) or (x_val, y_val, sample_weight_val)
        class_weight : dict {class index: weight}, optional
        sample_weight : array of shape (n_samples,), optional
        callbacks : list of Callback
        verbose : int
            0 is silent, 1 shows a progress bar per epoch.
        """
        self._require_compiled("fit")
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
            raise ValueError(f"epochs must be an int >= 0, got {epochs!r}")
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
        ):
            raise ValueError(f"batch_size must be an int >= 1 or None, got {batch_size!r}")
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split!r}")
        callbacks = list(callbacks or [])
        for cb in callbacks:
            if not isinstance(cb, _callbacks.Callback):
                raise TypeError(f"callbacks must be Callback instances, got {type(cb).__name__}")

        # A diverging run shows in its loss, the same way on every backend.
        with self._rollback(), quiet_float_errors(), _training.DeferredInterrupt() as interrupt:
            return self._fit(
                x, y, epochs, batch_size, shuffle, validation_split, validation_data,
                class_weight, sample_weight, callbacks, verbose, initial_epoch, interrupt,
            )  # fmt: skip

    def _fit(
        self, x, y, epochs, batch_size, shuffle, validation_split, validation_data,
        class_weight, sample_weight, callbacks, verbose, initial_epoch, interrupt,
    ):  # fmt: skip
        data = self._prepare(x, y, sample_weight, class_weight)
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, tuple | list) or len(validation_data) not in (2, 3):
                raise ValueError("validation_data must be (x_val, y_val) or (x_val, y_val, w_val)")
            val = self._prepare(*validation_data, name_suffix="_val")
        elif validation_split > 0.0:
            n_val = int(data.n * validation_split)
            if n_val < 1 or n_val >= data.n:
                raise ValueError(
                    f"validation_split={validation_split} leaves {n_val} of {data.n} samples "
                    "for validation; it needs at least one sample on each side"
                )
            val = data.slice(data.n - n_val, data.n)
            data = data.slice(0, data.n - n_val)

        n = data.n
        size = n if batch_size is None else min(batch_size, n)
        spans = _training.batches(n, size)
        metrics = self._metrics()
        history = _callbacks.History()
        everything = [*callbacks, history]  # last, so it records what callbacks add to logs
        for cb in everything:
            cb.set_model(self)
        self.history = history
        self.stop_training = False
        fused = self.fused
        xp = self.target.xp

        for cb in everything:
            cb.on_train_begin()
        for epoch in range(initial_epoch, initial_epoch + epochs):
            for cb in everything:
                cb.on_epoch_begin(epoch)
            # Drop the last epoch's shuffled copy (and the batch view into it)
            # before making the next: one copy of the data at most besides the caller's.
            epoch_data = batch = None
            epoch_data = (
                data.take(_training.permutation(self._shuffle_rng, n, self.target))
                if shuffle
                else data
            )
            progress = _training.Progress(verbose, epoch, initial_epoch + epochs, len(spans))
            loss_sum: Any = 0.0
            metric_sums: list[Any] = [0.0] * len(metrics)
            seen = 0
            for b, (start, stop) in enumerate(spans):
                batch = epoch_data.slice(start, stop)
                loss, out = self._train_step(batch)
                count = stop - start
                loss_sum = loss_sum + loss * count
                for i, total in enumerate(self._metric_totals(metrics, batch.y, out, fused)):
                    metric_sums[i] = metric_sums[i] + total
                seen += count
                logs = {"loss": float(to_numpy(loss_sum)) / seen} if progress.due() else {}
                progress.advance(logs)
                for cb in everything:
                    cb.on_train_batch_end(b, logs)
                interrupt.check()  # a Ctrl-C during the step stops here, between batches
                if self.stop_training:
                    break
            logs = self._epoch_logs(xp, loss_sum, metric_sums, metrics, seen)
            if val is not None:
                logs.update({f"val_{k}": v for k, v in self._evaluate_data(val, metrics).items()})
            progress.close(logs)
            for cb in everything:
                cb.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        for cb in everything:
            cb.on_train_end()
        return history

    @staticmethod
    def _epoch_logs(xp, loss_sum, metric_sums, metrics, seen) -> dict[str, float]:
        # One transfer for the loss and every metric.
        sums = xp.stack([xp.reshape(s, ()) for s in [loss_sum, *metric_sums]])
        values = to_numpy(sums).tolist()
        logs = {"loss": values[0] / seen}
        for metric, value in zip(metrics, values[1:], strict=True):
            logs[metric.name] = value / seen
        return logs

    def _evaluate_data(self, data: _training.Data, metrics) -> dict[str, float]:
        xp = self.target.xp
        total: Any = 0.0
        metric_sums: list[Any] = [0.0] * len(metrics)
        fused = self.fused
        for start, stop in _training.batches(data.n, _PREDICT_CHUNK):
            part = data.slice(start, stop)
            out, _ = self._forward(part.x, training=False, logits=fused)
            loss, _ = self.loss.compute(
                part.y, out, part.sample_weight, logits=fused, reduction="sum"
            )
            total = total + loss
            for i, t in enumerate(self._metric_totals(metrics, part.y, out, fused)):
                metric_sums[i] = metric_sums[i] + t
        return self._epoch_logs(xp, total, metric_sums, metrics, data.n)

    def evaluate(self, x: Any, y: Any, *, sample_weight: Any = None) -> dict[str, float]:
        """The exact loss (sample-weighted mean over all of ``x``) and metrics."""
        self._require_compiled("evaluate")
        with quiet_float_errors():
            data = self._prepare(x, y, sample_weight)
            return self._evaluate_data(data, self._metrics())

    def predict(self, x: Any, *, batch_size: int | None = None) -> Array:
        """The model's outputs for `x`, as an array of the model's backend on its device."""
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"batch_size must be an int >= 1 or None, got {batch_size!r}")
        with quiet_float_errors():
            checks = _data.Checks(self._resolve_target(x).xp)
            xs = _data.inputs(self, x, checks)
            checks.raise_first()
            chunk = batch_size or _PREDICT_CHUNK
            parts = [
                self._forward(xs[start:stop, ...], training=False)[0]
                for start, stop in _training.batches(int(xs.shape[0]), chunk)
            ]
        return parts[0] if len(parts) == 1 else self.target.xp.concat(parts, axis=0)

    def __call__(self, x: Array, *, training: bool = False) -> Array:
        return self._forward(x, training=training)[0]

    def train_on_batch(
        self,
        x: Any,
        y: Any,
        *,
        sample_weight: Any = None,
        class_weight: Mapping[int, float] | None = None,
    ) -> float:
        """One optimizer step on ``(x, y)``; returns that batch's loss.

        The data is checked before anything changes, so bad input leaves the
        model as it was (no per-call copy of the weights is needed).
        """
        self._require_compiled("train_on_batch")
        with quiet_float_errors():
            data = self._prepare(x, y, sample_weight, class_weight)
            loss, _ = self._train_step(data)
            return float(to_numpy(loss))

    # ------------------------------------------------------------ weights

    def _parameters(self) -> list[tuple[Layer, str]]:
        return [(layer, name) for layer in self.layers for name in layer.params]

    def _parameter_keys(self) -> list[tuple[Layer, str, str]]:
        """``(layer, name, "layer/name")`` per parameter; fixed once built."""
        keys = self.__dict__.get("_keys")
        if keys is None:
            keys = [(layer, name, f"{layer.name}/{name}") for layer, name in self._parameters()]
            if self.built:
                self._keys = keys
        return keys

    def get_weights(self) -> list[Any]:
        """NumPy copies of every parameter, in layer order (Dense: kernel, bias)."""
        return [to_numpy(layer.params[name]).copy() for layer, name in self._parameters()]

    def set_weights(self, weights: Iterable[Any]) -> None:
        """Load arrays shaped like :meth:`get_weights`; checks all before changing any."""
        weights = list(weights)
        slots = self._parameters()
        if len(weights) != len(slots):
            raise ValueError(f"expected {len(slots)} weight arrays, got {len(weights)}")
        moved = []
        for (layer, name), w in zip(slots, weights, strict=True):
            host = to_numpy(w)
            expected = tuple(layer.params[name].shape)
            if tuple(host.shape) != expected:
                raise ValueError(
                    f"weight {layer.name}/{name} has shape {expected}, got {tuple(host.shape)}"
                )
            moved.append(asarray(host, self.target, self._dtype, copy=True))
        for (layer, name), value in zip(slots, moved, strict=True):
            layer.params[name] = value

    @contextlib.contextmanager
    def _rollback(self) -> Iterator[None]:
        """Put the whole training state back if the block raises an Exception
        (not on KeyboardInterrupt, which keeps the batches finished so far)."""
        saved_model = {
            key: self.__dict__[key]
            for key in ("target", "_dtype", "_keys", "history", "stop_training")
            if key in self.__dict__
        }
        shuffle_rng = copy.deepcopy(self._shuffle_rng)
        layers = [_layer_state(layer) for layer in self.layers]
        opt = self.optimizer
        opt_state = None
        if opt is not None:
            opt_state = (
                opt.iterations,
                {
                    key: {slot: copy_array(a) for slot, a in slots.items()}
                    for key, slots in opt.state.items()
                },
            )
        try:
            yield
        except Exception:
            for key in ("target", "_dtype", "_keys", "history", "stop_training"):
                self.__dict__.pop(key, None)
            self.__dict__.update(saved_model)
            self._shuffle_rng = shuffle_rng
            for layer, state in zip(self.layers, layers, strict=True):
                layer.__dict__.clear()
                layer.__dict__.update(state)
            if opt_state is not None:
                opt.iterations, opt.state = opt_state
            raise

    def to(self, backend: str, device: Any = None) -> Sequential:
        """Move parameters and optimizer state to `backend` / `device`
        (through the host, explicitly) and train there from now on."""
        new = get_backend(backend, device)
        dtype = float_dtype(new.xp, self.dtype)
        for layer, name in self._parameters():
            layer.params[name] = asarray(to_numpy(layer.params[name]), new, dtype, copy=True)
            layer.grads.clear()
        if self.optimizer is not None:
            self.optimizer.set_state(self.optimizer.get_state(), new)
        self.target, self._dtype = new, dtype
        self._backend_arg, self._device_arg = new.name, device
        return self

    # ------------------------------------------------------------ reporting

    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self.layers)

    def summary(self, print_fn=print) -> None:
        """Print each layer's type, output shape and parameter count."""
        if not self.built:
            raise ValueError(
                "the model is not built yet: call build(input_dim), or fit/predict on data"
            )
        rows = [("Layer (type)", "Output Shape", "Param #")]
        shape = self.layers[0].input_shape
        for layer in self.layers:
            shape = layer.compute_output_shape(shape)
            rows.append(
                (f"{layer.name} ({type(layer).__name__})", str(shape), f"{layer.count_params():,}")
            )
        widths = [max(len(r[i]) for r in rows) + 2 for i in range(3)]
        line = "=" * sum(widths)
        lines = [f'Model: "{self.name}"  [{self.target.name}, {dtype_name(self._dtype)}]', line]
        for i, row in enumerate(rows):
            lines.append("".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
            lines.append(line if i == 0 else "-" * sum(widths))
        lines[-1] = line
        lines.append(f"Total params: {self.count_params():,}")
        print_fn("\n".join(lines))

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "seed": self.seed,
            "input_dim": self.input_dim,
            "layers": [
                {"class_name": type(layer).__name__, "config": layer.get_config()}
                for layer in self.layers
            ],
        }

    def save(self, path: str) -> None:
        """Write the model to `path` atomically (JSON config + raw arrays, no pickle)."""
        from xpnet import io

        io.save_model(self, path)

    def __getstate__(self) -> dict[str, Any]:
        # Namespaces (modules) and device objects do not pickle: keep the
        # backend by name, the arrays as NumPy, and rebuild on unpickling.
        state = self.__dict__.copy()
        state.pop("_keys", None)  # refers to the live layers; rebuilt on demand
        if self.target is not None:
            state["target"] = (self.target.name, str(self.target.device))
            state.pop("_dtype", None)
            state["_host_weights"] = self.get_weights()
            state["layers"] = [_host_layer(layer) for layer in self.layers]
            if self.optimizer is not None:
                state["_host_optimizer"] = self.optimizer.get_state()
                opt = copy.copy(self.optimizer)
                opt.state = {}
                state["optimizer"] = opt
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        weights = state.pop("_host_weights", None)
        opt_state = state.pop("_host_optimizer", None)
        self.__dict__.update(state)
        if isinstance(self.target, tuple):
            name, device = self.target
            try:
                self.target = get_backend(name, None if name == "numpy" else device)
            except (ImportError, RuntimeError, ValueError):  # not available here
                self.target = get_backend("numpy")
            self._dtype = float_dtype(self.target.xp, self.dtype)
            for (layer, pname), w in zip(self._parameters(), weights, strict=True):
                layer.params[pname] = asarray(w, self.target, self._dtype, copy=True)
            if opt_state is not None:
                self.optimizer.set_state(opt_state, self.target)

    def __repr__(self) -> str:
        where = "unbuilt" if self.target is None else f"{self.target.name}"
        return f"Sequential({len(self.layers)} layers, {where}, {self.dtype})"


def _layer_state(layer: Layer) -> dict[str, Any]:
    """Everything `layer` holds, with copies of its parameters and random
    streams, for :meth:`Sequential._rollback` (gradient buffers are scratch)."""
    state = dict(layer.__dict__)
    state["params"] = {name: copy_array(value) for name, value in layer.params.items()}
    state["grads"] = {}
    for key, value in state.items():
        if is_host_rng(value):
            state[key] = copy.deepcopy(value)
    return state


def _host_layer(layer: Layer) -> Layer:
    """A shallow copy of `layer` without device arrays (for pickling)."""
    clone = copy.copy(layer)
    clone.params = dict.fromkeys(layer.params)
    clone.grads = {}
    return clone
