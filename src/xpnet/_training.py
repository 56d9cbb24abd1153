"""The training loop: batching and shuffling on the device, the running
totals of loss and metrics, the callbacks, progress and Ctrl-C.

``Sequential.fit`` checks its arguments and data, then hands over to
:func:`fit_loop`, which sees the model only through its public methods
(``train_step``, ``stop_training``). The rules it keeps, so that a GPU is
never stalled by the host (docs/backends.md):

* host data is moved to the model's device once per ``fit``;
* inside the batch loop nothing is copied to the host and no device scalar is
  read: the loss and metrics are summed on the device and read at a
  progress-bar refresh (at most twice a second) and at epoch end;
* the shuffling permutation is drawn on the host once per epoch, moved in one
  transfer, and applied on the device with ``take``; the previous epoch's
  shuffled copy is dropped first, so one copy of the data at most is alive
  besides the caller's.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from xpnet import callbacks as _callbacks
from xpnet._backend import (
    Backend,
    asarray,
    backend_of,
    host_rng,
    read_scalars,
    take_rows,
    to_numpy,
)
from xpnet._interrupt import DeferredInterrupt
from xpnet._progress import Progress
from xpnet._typing import Array


@dataclass
class Data:
    """Validated arrays on the model's device."""

    x: Array
    y: Array | None = None
    sample_weight: Array | None = None

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    def take(self, index: Array) -> Data:
        return Data(*take_rows(self._arrays(), index))

    def slice(self, start: int, stop: int) -> Data:
        return Data(*(None if a is None else a[start:stop, ...] for a in self._arrays()))

    def _arrays(self):
        return (self.x, self.y, self.sample_weight)

    def batch_count(self, batch_size: int | None) -> int:
        return 1 if batch_size is None else -(-self.n // batch_size)

    def epoch(self, shuffle_rng: Any, batch_size: int | None) -> Iterator[tuple[Data, Spans]]:
        """The epoch's one block, shuffled on the device when `shuffle_rng`
        is given, with its batches."""
        data = self
        if shuffle_rng is not None:
            data = self.take(permutation(shuffle_rng, self.n, backend_of(self.x)))
        yield data, batches(self.n, self.n if batch_size is None else min(batch_size, self.n))


class Stream:
    """Rows that arrive in blocks (a Dask array, ``xpnet._dask.Blocks``): each
    block is computed on the host (the next one prefetched meanwhile), then
    checked and moved to the device by `prepare`, once, and cut into
    batches there. With `shuffle_rng` the block order and the rows of each
    block are shuffled from it. At most the current block and the
    prefetched one are alive."""

    def __init__(self, blocks: Any, prepare: Callable[[Any, Any, Any], Data]) -> None:
        self.blocks, self.prepare, self.n = blocks, prepare, blocks.n

    def batch_count(self, batch_size: int | None) -> int:
        rows = self.blocks.block_rows
        return sum(1 if batch_size is None else -(-r // batch_size) for r in rows)

    def epoch(self, shuffle_rng: Any, batch_size: int | None) -> Iterator[tuple[Data, Spans]]:
        order = None if shuffle_rng is None else host_rng(shuffle_rng).permutation(
            self.blocks.n_blocks
        )  # fmt: skip
        with contextlib.closing(self.blocks.epoch(order)) as stream:
            for arrays in stream:
                yield from Data.epoch(self.prepare(*arrays), shuffle_rng, batch_size)
                del arrays  # before the next block is asked for


Spans = list[tuple[int, int]]


def permutation(seed_rng: Any, n: int, backend: Backend) -> Array:
    """A permutation of ``range(n)`` drawn on the host, moved once."""
    return asarray(host_rng(seed_rng).permutation(n), backend)


def batches(n: int, batch_size: int) -> Sequence[tuple[int, int]]:
    """``(start, stop)`` of each batch of `n` rows; the last may be shorter."""
    if n == 0:
        return []
    return list(zip(range(0, n, batch_size), [*range(batch_size, n, batch_size), n], strict=True))


def split_validation(data: Data, fraction: float) -> tuple[Data, Data]:
    """Hold out the last `fraction` of the samples, as Keras does (before
    any shuffling)."""
    if isinstance(data, Stream):
        raise ValueError(
            "validation_split needs the rows in memory; for Dask input pass "
            "validation_data=(x_val, y_val) (Dask arrays stream too)"
        )
    n_val = int(data.n * fraction)
    if n_val < 1 or n_val >= data.n:
        raise ValueError(
            f"validation_split={fraction} leaves {n_val} of {data.n} samples "
            "for validation; it needs at least one sample on each side"
        )
    return data.slice(0, data.n - n_val), data.slice(data.n - n_val, data.n)


class Totals:
    """Running sums of the loss and the state of each metric, kept on the
    device and read in one transfer: the one accumulator of training and
    evaluation.

    Parameters
    ----------
    xp : namespace
        The model's array namespace.
    metrics : list of Metric
    logits : bool
        Whether outputs are logits (fused or ``from_logits`` losses).
    probabilities : callable, optional
        Turns fused logits into the probabilities that some metrics need.
    """

    def __init__(
        self,
        xp: Any,
        metrics: Sequence[Any],
        logits: bool,
        probabilities: Callable[[Array], Array] | None = None,
        reduce: Callable[[Array], Array] | None = None,
    ) -> None:
        self.xp = xp
        self.reduce = reduce
        self.metrics = list(metrics)
        self.logits = logits
        self.probabilities = probabilities
        self.loss: Any = 0.0
        self.states: list[Any] = [None] * len(self.metrics)
        self.count = 0

    def add(self, loss_sum: Array, y: Array, out: Array, count: int) -> None:
        """Add a batch: the *sum* of its sample losses, its targets and outputs."""
        self.count += count
        if self.metrics:
            self.loss, self.states = self.fold((self.loss, self.states), loss_sum, y, out)
        else:
            self.loss = self.loss + loss_sum

    def fold(self, acc: tuple[Any, list[Any]], loss_sum: Array, y: Array, out: Array):
        """``(loss, states)`` after one more batch: :meth:`add` as a pure
        function, which a compiled step carries from batch to batch."""
        loss, states = acc
        probs = None
        new = []
        for metric, state in zip(self.metrics, states, strict=True):
            pred, logits = out, self.logits
            if metric.needs_probabilities and self.probabilities is not None:
                if probs is None:
                    probs = self.probabilities(out)
                pred, logits = probs, False
            new.append(metric.update(state, y, pred, logits))
        return loss + loss_sum, new

    def running_loss(self) -> float:
        """The mean loss so far (one device read; for the progress bar)."""
        return float(to_numpy(self.loss)) / self.count

    def logs(self, prefix: str = "") -> dict[str, float]:
        """The mean loss and every metric's value, read in one transfer."""
        if self.reduce is not None:
            self._sum_over_workers()
        results = [m.result(s) for m, s in zip(self.metrics, self.states, strict=True)]
        values = read_scalars([self.loss, *results])
        logs = {prefix + "loss": values[0] / self.count}
        for metric, value in zip(self.metrics, values[1:], strict=True):
            logs[prefix + metric.name] = value / self.count if metric.averaged else value
        return logs

    def _sum_over_workers(self) -> None:
        """Replace the loss, count and metric states by their sums over every
        worker (one collective), so each worker's logs are those of all the
        data."""
        xp, loss = self.xp, self.loss
        parts = [xp.reshape(loss, (1,)), xp.reshape(xp.full_like(loss, self.count), (1,))]
        parts += [xp.reshape(xp.astype(s, loss.dtype), (-1,)) for s in self.states]
        total = self.reduce(xp.concat(parts))
        self.loss, self.count = total[0], round(float(to_numpy(total[1])))
        at = 2
        for i, state in enumerate(self.states):
            size = math.prod(state.shape)
            self.states[i] = xp.astype(xp.reshape(total[at : at + size], state.shape), state.dtype)
            at += size


class CallbackList:
    """The callbacks of one ``fit`` and its History (last, so that it records
    what the others add to the logs), called as one."""

    def __init__(self, callbacks: Iterable[_callbacks.Callback], model: Any) -> None:
        self.history = _callbacks.History()
        self.callbacks = [*callbacks, self.history]
        for cb in self.callbacks:
            cb.set_model(model)
        base = _callbacks.Callback.on_train_batch_end
        # Only these are called after each batch (the others do nothing there).
        self.per_batch = [cb for cb in self.callbacks if type(cb).on_train_batch_end is not base]

    def on_train_begin(self) -> None:
        for cb in self.callbacks:
            cb.on_train_begin()

    def on_epoch_begin(self, epoch: int) -> None:
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch)

    def on_train_batch_end(self, batch: int, logs: dict[str, float]) -> None:
        for cb in self.per_batch:
            cb.on_train_batch_end(batch, logs)

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)

    def on_train_end(self) -> None:
        for cb in self.callbacks:
            cb.on_train_end()


@dataclass
class Step:
    """What :meth:`Sequential.compute_gradients` and ``train_step`` return.

    Attributes
    ----------
    loss : array
        The batch loss, a 0-d array on the model's device.
    output : array
        The network's output for the batch (logits on the fused path).
    gradients : dict
        ``"layer/param"`` -> gradient, on the model's device.
    """

    loss: Array
    output: Array
    gradients: dict[str, Array]


@dataclass
class Schedule:
    """What ``fit`` was asked for."""

    epochs: int
    initial_epoch: int
    batch_size: int | None
    shuffle: bool
    verbose: int

    def check(self, validation_split: float, validation_data: Any, callbacks: Any) -> None:
        """Refuse bad ``fit`` arguments before anything is touched."""
        self.verbose = check_verbose(self.verbose)
        epochs, batch_size = self.epochs, self.batch_size
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
            raise ValueError(f"epochs must be an int >= 0, got {epochs!r}")
        check_batch_size(batch_size)
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split!r}")
        if validation_data is not None and (
            not isinstance(validation_data, tuple | list) or len(validation_data) not in (2, 3)
        ):
            raise ValueError("validation_data must be (x_val, y_val) or (x_val, y_val, w_val)")
        for cb in callbacks or []:
            if not isinstance(cb, _callbacks.Callback):
                raise TypeError(f"callbacks must be Callback instances, got {type(cb).__name__}")


def start_workers(model, communicator, data, schedule, callbacks):
    """Begin a data-parallel fit: check every rank cuts as many batches,
    give all the root's weights and optimizer state; only the root reports
    and writes checkpoints. Returns this rank's callbacks."""
    from xpnet import distributed

    distributed.check_consistent(
        communicator, batches_per_epoch=data.batch_count(schedule.batch_size)
    )
    distributed.sync_model(model, communicator)
    if communicator.rank == 0:
        return callbacks
    schedule.verbose = 0
    return [cb for cb in callbacks or [] if not isinstance(cb, _callbacks.ModelCheckpoint)]


def fit_loop(
    model: Any,
    data: Data,
    schedule: Schedule,
    callbacks: CallbackList,
    new_totals: Callable[[], Totals],
    evaluate: Callable[[], dict[str, float]] | None,
    shuffle_rng: Any,
    epoch_steps: Callable[[Data, list[tuple[int, int]], Totals], Iterator[int]],
) -> _callbacks.History:
    """Train `model` on `data` (already on its device) for the scheduled epochs.

    `new_totals` makes an empty accumulator; `evaluate` returns the
    validation logs (``val_`` names) after each epoch; ``epoch_steps(data,
    spans, totals)`` trains on the batches `spans` of `data`, yielding the
    index of the last batch done after each device call.
    """
    n_batches = data.batch_count(schedule.batch_size)
    last = schedule.initial_epoch + schedule.epochs
    with DeferredInterrupt() as interrupt:
        callbacks.on_train_begin()
        for epoch in range(schedule.initial_epoch, last):
            callbacks.on_epoch_begin(epoch)
            progress = Progress(schedule.verbose, f"Epoch {epoch + 1}/{last}", n_batches)
            blocks = data.epoch(shuffle_rng if schedule.shuffle else None, schedule.batch_size)
            logs = _epoch(model, epoch_steps, blocks, new_totals(), progress, callbacks, interrupt)
            if evaluate is not None:
                logs.update(evaluate())
            progress.close(logs)
            callbacks.on_epoch_end(epoch, logs)
            if model.stop_training:
                break
        callbacks.on_train_end()
    return callbacks.history


def _epoch(model, epoch_steps, blocks, totals, progress, callbacks, interrupt):
    """One pass over the `blocks` of an epoch (``(data, spans)`` pairs: one
    for data in memory); returns the epoch's logs."""
    offset, done = 0, -1
    quiet = progress.bar is None and not callbacks.per_batch  # nothing to tell per batch
    with contextlib.closing(blocks):
        for data, spans in blocks:
            # closing(): a stop or an interrupt hands the state back to the model now
            with contextlib.closing(epoch_steps(data, spans, totals)) as steps:
                for b in steps:
                    if not quiet:
                        logs = {"loss": totals.running_loss()} if progress.due() else {}
                        progress.advance(logs, offset + b - done)
                        callbacks.on_train_batch_end(offset + b, logs)
                    done = offset + b
                    if interrupt.pending:  # a Ctrl-C during the step stops here
                        interrupt.check()
                    if model.stop_training:
                        break
            offset += len(spans)
            del data  # the block (or shuffled copy) goes before the next is made
            if model.stop_training:
                break
    return totals.logs()


def evaluate_loop(
    add_chunk: Callable[[Data, int, int, Totals], None],
    data: Data | Stream,
    totals: Totals,
    chunk: int,
    prefix: str = "",
    verbose: int = 0,
) -> dict[str, float]:
    """Exact loss and metrics over `data` (in memory or streamed):
    ``add_chunk(block, start, stop, totals)`` folds rows ``start:stop`` of
    a block into `totals` (op by op, or as a compiled program)."""
    progress = Progress(verbose, "Evaluate", data.batch_count(chunk))
    for block, spans in data.epoch(None, chunk):
        for start, stop in spans:
            add_chunk(block, start, stop, totals)
            progress.advance()
        del block
    logs = totals.logs(prefix)
    progress.close(logs)
    return logs


def check_batch_size(batch_size: Any) -> None:
    """Refuse anything but None or an int >= 1."""
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise ValueError(f"batch_size must be an int >= 1 or None, got {batch_size!r}")


def check_verbose(verbose: Any) -> int:
    """`verbose` as 0 (silent), 1 (a bar, or a line where no bar can be
    drawn) or 2 (a line per epoch); ``"auto"`` is 1, as in Keras."""
    if verbose == "auto":
        return 1
    if isinstance(verbose, bool) or verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1, 2 or 'auto', got {verbose!r}")
    return int(verbose)
