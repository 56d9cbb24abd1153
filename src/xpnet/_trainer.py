"""``Trainer``: the half of :class:`~xpnet.Sequential` that trains it.

Keras 3 splits its models the same way (a ``Trainer`` base of ``Model``):
``model.py`` holds the stack of layers, its forward pass and its public step
(``compute_gradients``, ``train_step``); this module holds ``compile``,
``fit``, ``evaluate``, ``predict`` and ``train_on_batch``, which check the
data (``_data``), then drive the public step through the loop in
``_training``. A failed ``fit`` is undone by :meth:`Trainer._rollback`.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from xpnet import _compiled, _dask, _data, _plan, _progress, _training
from xpnet import callbacks as _callbacks
from xpnet import losses as _losses
from xpnet import metrics as _metrics
from xpnet import optimizers as _optimizers
from xpnet._backend import quiet_float_errors, to_numpy
from xpnet._backend.compiler import compiler_for
from xpnet._typing import Array
from xpnet._validation import check_positive_int

# Rows per forward pass in predict/evaluate (any size gives the same result).
PREDICT_CHUNK = 1024


class Trainer:
    """Compile, fit, evaluate and predict, for a model that provides the
    layer stack and the step (:class:`~xpnet.Sequential`)."""

    loss: _losses.Loss | None = None
    optimizer: _optimizers.Optimizer | None = None
    jit_compile: bool | str = "auto"
    steps_per_execution: int = 1
    _metric_names: list[str | _metrics.Metric]

    # ------------------------------------------------------------ compile

    def compile(
        self,
        loss: str | _losses.Loss = "mse",
        optimizer: str | _optimizers.Optimizer = "rmsprop",
        metrics: Iterable[str | _metrics.Metric] | None = None,
        *,
        jit_compile: bool | str = "auto",
        steps_per_execution: int = 1,
    ) -> None:
        """Choose the loss, the optimizer and the metrics reported by ``fit``.

        Parameters
        ----------
        jit_compile : {"auto", True, False}
            Compile ``fit``'s whole step (forward, loss, backward, penalties,
            update and the running metrics) into one device program.
            ``"auto"`` does on JAX, where it pays off, unless a layer draws
            on the host in training (Dropout); ``True`` insists (an error
            where it cannot); ``False`` runs every operation eagerly.
        steps_per_execution : int
            Batches per device call in ``fit`` (on JAX, a compiled loop over
            them). Batch callbacks then run once per call, with the index of
            its last batch, as in Keras.
        """
        loss = _losses.get(loss)
        optimizer = _optimizers.get(optimizer)
        names = list(metrics or [])
        for m in names:
            if isinstance(m, str):
                _metrics.get(m, task="binary")  # validates the name, with a suggestion
            elif not isinstance(m, _metrics.Metric):
                raise TypeError(f"metric must be a name or a Metric, got {type(m).__name__}")
        if not (isinstance(jit_compile, bool) or jit_compile == "auto"):
            raise ValueError(f"jit_compile must be 'auto', True or False, got {jit_compile!r}")
        check_positive_int("steps_per_execution", steps_per_execution)
        self.loss, self.optimizer, self._metric_names = loss, optimizer, names
        self.jit_compile, self.steps_per_execution = jit_compile, steps_per_execution
        self._forget_plans()

    def _forget_plans(self) -> None:
        """Drop the planned and compiled steps (the model changed)."""
        for key in ("_keys", "_plans", "_compiled", "_evaluation", "_gate"):
            self.__dict__.pop(key, None)

    def get_compile_config(self) -> dict[str, Any] | None:
        """The loss, optimizer and metric names given to :meth:`compile`
        (serialized), or None before ``compile``."""
        if self.loss is None or self.optimizer is None:
            return None
        return {
            "loss": _losses.serialize(self.loss),
            "optimizer": _optimizers.serialize(self.optimizer),
            "metrics": [m for m in self._metric_names if isinstance(m, str)],
            "jit_compile": self.jit_compile,
            "steps_per_execution": self.steps_per_execution,
        }

    @property
    def fused(self) -> bool:
        """Whether the output activation is folded into the loss in training."""
        return (
            self.loss is not None
            and bool(self.layers)
            and self.loss.fusable(self.layers[-1].output_activation)
        )

    def _require_compiled(self, what: str) -> None:
        if self.loss is None or self.optimizer is None:
            raise RuntimeError(f"call compile(loss=..., optimizer=...) before {what}()")

    def _totals(self) -> _training.Totals:
        """An empty accumulator for the loss and the compiled metrics."""
        task = self.loss.task if self.loss.task is not None else None
        if task is None and self.output_dim == 1:
            task = "binary"
        fused = self.fused
        communicator = self.__dict__.get("_communicator")
        return _training.Totals(
            self._placement.xp,
            [_metrics.get(m, task=task) for m in self._metric_names],
            logits=fused or bool(getattr(self.loss, "from_logits", False)),
            probabilities=self.layers[-1].activation.forward if fused else None,
            reduce=None if communicator is None else communicator.allreduce_sum,
        )

    # ------------------------------------------------------------ the batch loop

    def _epoch_steps(self, data: _training.Data, spans, totals: _training.Totals):
        """The batches of one epoch, run eagerly or by the compiled step;
        yields the index of the last batch done after each device call."""
        compiler = self._step_compiler()
        if compiler is None:
            if not self._overridden() and self.__dict__.get("_communicator") is None:
                train = self._step_plan(data.y, data.sample_weight).fit_batch  # train_step's
            else:

                def train(x, y, sample_weight):
                    step = self.train_step(x, y, sample_weight)
                    return step.loss, step.output

            return _plan.eager_epoch(train, data, spans, totals, self.steps_per_execution)
        plan, group = self._step_plan(data.y, data.sample_weight), self.steps_per_execution
        compiled = self.__dict__.get("_compiled")
        if compiled is None or compiled.plan is not plan or compiled.group != group:
            compiled = self._compiled = _compiled.CompiledSteps(self, plan, compiler, group)
        return compiled.epoch(data, spans, totals)

    # ------------------------------------------------------------ data

    def _spec(self, data: Any) -> _data.Spec:
        placement = self._place(data)
        task = None if self.loss is None else self.loss.task
        n_outputs = self.output_dim if self.built else 1
        return _data.Spec(placement, self._dtype, task, n_outputs, type(self.loss).__name__)

    def _features(self, x: Any, checks: _data.Checks | None, name: str = "x") -> Array:
        """`x` checked and :func:`_data.staged`; builds the model on first data."""
        x = _data.features(x, self._spec(x), checks, name)
        if not self.built:
            self.build(int(x.shape[1]))
        elif int(x.shape[1]) != self.input_dim:
            raise ValueError(
                f"layer {self.layers[0].name!r} expects {self.input_dim} input features, got "
                f"{name} of shape {tuple(x.shape)}"
            )
        return x

    def prepare(
        self, x: Any, y: Any, *, sample_weight: Any = None, class_weight: Any = None
    ) -> _training.Data:
        """Check ``(x, y)`` and move them to the model's device, as ``fit``
        does once per call: the result's ``.x``, ``.y`` and ``.sample_weight``
        are what :meth:`train_step` and :meth:`compute_gradients` take.
        Builds the model on its first data."""
        self._require_compiled("prepare")
        with self._unplaced_on_error():
            return self._prepare(x, y, sample_weight, class_weight)

    def _prepare(self, x, y, sample_weight=None, class_weight=None, suffix="", split=0.0):
        """Checked data on the device; with `split`, ``(data, validation)``
        cut on the host when the data comes from there (one transfer each)."""
        checks = _data.Checks()
        xs = self._features(x, checks, "x" + suffix)
        data = _data.labelled(xs, y, sample_weight, class_weight, self._spec(x), checks, suffix)
        if split:
            return tuple(_data.placed(part, self._placement)
                         for part in _training.split_validation(data, split))  # fmt: skip
        return _data.placed(data, self._placement)

    def _data_for(self, x, y, sample_weight=None, class_weight=None, suffix="", split=0.0):
        """:meth:`_prepare`d data, or for a Dask array a :class:`_training.Stream`
        of its row blocks, each prepared as it arrives (the model is built
        and placed now, as the first block would; it cannot be `split`)."""
        if not _dask.is_dask_array(x):
            return self._prepare(x, y, sample_weight, class_weight, suffix, split)
        blocks = _dask.Blocks(x, y, sample_weight)
        if not self.built:
            self._place()
            self.build(blocks.n_features)
        prepare = functools.partial(self._prepare, class_weight=class_weight, suffix=suffix)
        stream = _training.Stream(blocks, prepare)
        return _training.split_validation(stream, split) if split else stream

    def _step_compiler(self) -> Any:
        """The compiler for this fit's step, or None (eager); a ValueError
        naming the reason when ``jit_compile=True`` cannot be honoured."""
        if self.jit_compile is False:
            return None
        compiler = compiler_for(self._placement)
        if compiler is None and self.jit_compile is not True:  # "auto": eager, no reason needed
            return None
        communicator = self.__dict__.get("_communicator")
        why = _compiled.why_not_compiled(self, compiler, self._overridden(), communicator)
        if why is not None and self.jit_compile is True:
            raise ValueError(f"jit_compile=True cannot compile this fit: {why}")
        return None if why is not None else compiler

    def _overridden(self) -> list[str]:
        """The step methods a subclass or the instance overrides (fit calls those)."""
        cls = type(self)
        return [m for m in ("train_step", "compute_gradients", "forward")
                if getattr(cls, m) is not cls._planned[m] or m in self.__dict__]  # fmt: skip

    def _chunk_adder(self) -> Any:
        """How evaluation folds a chunk into its totals: one compiled program
        per chunk size where fit's step compiles (JAX), else op by op."""
        compiler = None if self.jit_compile is False else compiler_for(self._placement)
        if compiler is None or type(self).forward is not self._planned["forward"]:
            return functools.partial(_plan.eager_chunk, self)
        if "_evaluation" not in self.__dict__:
            self._evaluation = _compiled.CompiledEvaluation(self, compiler)
        return self._evaluation.add

    # ------------------------------------------------------------ fit, evaluate, predict

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
        communicator: Any = None,
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
        verbose : {0, 1, 2, "auto"}
            0 is silent; 1 (and ``"auto"``) draws a progress bar per epoch
            on a terminal or in a notebook, and prints one line per epoch
            anywhere else (a log file, a pipe); 2 always prints one line per
            epoch: ``Epoch 3/10 - 12 batches - 0.05s - loss: 0.4821``.
        communicator : xpnet.distributed.Communicator, optional
            Train data-parallel with the other processes of `communicator`,
            each on its own rows (see the guide's "Scaling out" page).
        """
        self._require_compiled("fit")
        schedule = _training.Schedule(epochs, initial_epoch, batch_size, shuffle, verbose)
        schedule.check(validation_split, validation_data, callbacks)
        # A diverging run shows in its loss, the same way on every backend.
        with self._rollback(), quiet_float_errors(), self._workers(communicator):
            split = validation_split if validation_data is None else 0.0
            data, val = self._data_for(x, y, sample_weight, class_weight, split=split), None
            if validation_data is not None:
                val = self._data_for(*validation_data, suffix="_val")
            elif split:
                data, val = data
            if communicator is not None:
                callbacks = _training.start_workers(self, communicator, data, schedule, callbacks)
            self._step_compiler()  # jit_compile=True that cannot be: refused before any callback
            chunk = min(PREDICT_CHUNK, val.n) if val is not None else 0
            evaluate = None if val is None else (
                lambda: _training.evaluate_loop(
                    self._chunk_adder(), val, self._totals(), chunk, "val_"
                )
            )  # fmt: skip
            callback_list = _training.CallbackList(callbacks or [], self)
            self.history, self.stop_training = callback_list.history, False
            return _training.fit_loop(
                self, data, schedule, callback_list, self._totals, evaluate, self._shuffle_rng,
                self._epoch_steps,
            )  # fmt: skip

    def evaluate(
        self,
        x: Any,
        y: Any,
        *,
        batch_size: int | None = None,
        sample_weight: Any = None,
        verbose: int = 0,
    ) -> dict[str, float]:
        """The exact loss (sample-weighted mean over all of ``x``, plus the
        regularization penalty) and metrics, as a dict.

        `batch_size` is how many rows go through the network at once (memory,
        not the result: every size gives the same numbers). `verbose` as in
        :meth:`fit`.
        """
        self._require_compiled("evaluate")
        _training.check_batch_size(batch_size)
        verbose = _training.check_verbose(verbose)
        with self._unplaced_on_error(), quiet_float_errors():
            data = self._data_for(x, y, sample_weight)
            return _training.evaluate_loop(
                self._chunk_adder(), data, self._totals(), batch_size or PREDICT_CHUNK,
                verbose=verbose,
            )  # fmt: skip

    def predict(self, x: Any, *, batch_size: int | None = None, verbose: int = 0) -> Array:
        """The model's outputs for `x`, as an array of the model's backend on
        its device (probabilities for a sigmoid/softmax output).

        `batch_size` is how many rows go through the network at once (memory,
        not the result). `verbose` as in :meth:`fit`.
        """
        _training.check_batch_size(batch_size)
        verbose = _training.check_verbose(verbose)
        if _dask.is_dask_array(x):  # lazy: a Dask array of the outputs
            with self._unplaced_on_error():
                return _dask.predict(self, x, batch_size)
        with self._unplaced_on_error(), quiet_float_errors():
            checks = _data.Checks()
            xs = self._features(x, checks)
            checks.raise_first()
            xs = _data.moved(xs, self._placement)
            spans = _training.batches(int(xs.shape[0]), batch_size or PREDICT_CHUNK)
            progress = _progress.Progress(verbose, "Predict", len(spans))
            parts = []
            for start, stop in spans:
                parts.append(self.forward(xs[start:stop, ...])[0])
                progress.advance()
            progress.close()
        return parts[0] if len(parts) == 1 else self._placement.xp.concat(parts, axis=0)

    def __call__(self, x: Array, *, training: bool = False) -> Array:
        return self.forward(x, training=training)[0]

    def export(self, filepath: str, format: str = "onnx") -> None:
        """Write the inference model (what :meth:`predict` computes) to
        `filepath` in `format` (``"onnx"``; needs ``pip install "xpnet[onnx]"``).
        See the guide's "Deploying with ONNX" page."""
        from xpnet import _export

        _export.export(self, filepath, format)

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
            data = None
            if sample_weight is None and class_weight is None:
                data = self._ready(x, y)
            if data is not None:  # the model is placed: nothing to undo on an error
                # the plan itself (no Step) unless train_step is the instance's own or
                # gradients are averaged (a callback's call during a distributed fit)
                direct = self._gate.planned and "train_step" not in self.__dict__
                if direct and self.__dict__.get("_communicator") is None:
                    loss = self._step_plan(data.y, None).fit_batch(data.x, data.y, None)[0]
                else:
                    loss = self.train_step(data.x, data.y).loss
                return float(to_numpy(loss))
        with self._unplaced_on_error(), quiet_float_errors():
            data = self._prepare(x, y, sample_weight, class_weight)
            return float(to_numpy(self.train_step(data.x, data.y, data.sample_weight).loss))

    def _ready(self, x: Any, y: Any) -> _training.Data | None:
        """``(x, y)`` as they are if they pass :func:`_data.ready`'s check, else None."""
        gate = self.__dict__.get("_gate")
        if (
            gate is None
            or gate.loss is not self.loss
            or gate.placement is not self._placement
            or gate.layers != self.layers  # the same layer objects
        ):
            if self._placement is None or not self.built:
                return None
            planned = not self._overridden()
            gate = _data.Gate(self.loss, self._placement, self._spec(x), self.input_dim, planned,
                         list(self.layers))  # fmt: skip
            self._gate = gate
        return _data.ready(x, y, gate.spec, gate.input_dim)

    @contextlib.contextmanager
    def _workers(self, communicator: Any) -> Iterator[None]:
        """Within the block, the steps and totals reduce over `communicator`."""
        self._communicator = communicator
        try:
            yield
        finally:
            del self._communicator

    def _unplaced_on_error(self) -> contextlib.AbstractContextManager[None]:
        """On a model not yet tied to a library, the first data chooses one
        and moves the weights there; if the call then fails (bad data), undo
        that, so a refused call changes nothing. A placed model has nothing
        to undo, and pays nothing."""
        return self._rollback() if self._placement is None else contextlib.nullcontext()
