"""The estimators' epoch loop, with scikit-learn's MLP stopping rule.

The loop drives the model's public step (:meth:`~xpnet.Sequential.train_step`)
over shuffled mini-batches, as ``Sequential.fit`` does, for two kinds of
training rows:

* dense rows (host or device data) are checked and moved to the model's
  device once (``model.prepare``); each epoch takes one shuffled copy there;
* ``scipy.sparse`` rows stay sparse on the host: each batch's rows are
  gathered from the CSR matrix, densified, and moved on their own, so the
  dense matrix never exists as a whole.

Both walk the same permutation from the same seed, so sparse and dense
input train the same network. The batch losses are summed on the device
and read once per epoch; the stopping rule needs that one number.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from xpnet._backend import (
    asarray,
    backend_of,
    copy_array,
    host_rng,
    namespace,
    quiet_float_errors,
    to_numpy,
)
from xpnet._interrupt import DeferredInterrupt
from xpnet._typing import Array

Batch = tuple[Array, Array, Array | None]


class DenseRows:
    """Training rows checked and placed on the model's device once."""

    def __init__(self, model: Any, x: Any, y: Any, sample_weight: Any) -> None:
        data = model.prepare(x, y, sample_weight=sample_weight)
        self.arrays = (data.x, data.y, data.sample_weight)
        self.n = int(data.x.shape[0])

    def epoch(self, order: Any) -> Callable[[int, int], Batch]:
        """A function giving batch ``[start, stop)`` of this epoch's order
        (a host permutation, or None for the stored order)."""
        arrays = self.arrays
        if order is not None:  # one shuffled copy per epoch, on the device
            xp = namespace(arrays[0])
            index = asarray(order, backend_of(arrays[0]))
            arrays = tuple(None if a is None else xp.take(a, index, axis=0) for a in arrays)

        def batch(start: int, stop: int) -> Batch:
            x, y, w = (None if a is None else a[start:stop, ...] for a in arrays)
            return x, y, w

        return batch


class SparseRows:
    """Training rows of a CSR matrix, densified one batch at a time (the
    targets and weights are NumPy arrays: sparse data is host data)."""

    def __init__(self, model: Any, x: Any, y: Any, sample_weight: Any) -> None:
        self.model, self.x, self.y, self.w = model, x.tocsr(), y, sample_weight
        self.n = int(x.shape[0])

    def epoch(self, order: Any) -> Callable[[int, int], Batch]:
        def batch(start: int, stop: int) -> Batch:
            rows = slice(start, stop) if order is None else order[start:stop]
            w = None if self.w is None else self.w[rows]
            data = self.model.prepare(self.x[rows].toarray(), self.y[rows], sample_weight=w)
            return data.x, data.y, data.sample_weight

        return batch


class Stopping:
    """scikit-learn's MLP convergence rule.

    After each epoch, a value is compared with the best so far: the training
    loss (lower is better) or, with early stopping, the validation score
    (higher is better). An epoch that does not beat the best by more than
    `tol` adds one to a count, any other epoch resets it, and training stops
    once the count exceeds `n_iter_no_change`. A NaN value (a diverged
    network) counts as no improvement.
    """

    def __init__(self, tol: float, n_iter_no_change: float, on_score: bool) -> None:
        self.tol, self.patience, self.on_score = tol, n_iter_no_change, on_score
        self.best = -math.inf if on_score else math.inf
        self.count = 0

    def update(self, value: float) -> bool:
        """Record one epoch's value; True when it is the best so far."""
        if self.on_score:
            improved_enough, better = value >= self.best + self.tol, value > self.best
        else:
            improved_enough, better = value <= self.best - self.tol, value < self.best
        self.count = 0 if improved_enough else self.count + 1
        if better:
            self.best = value
        return better

    @property
    def done(self) -> bool:
        return self.count > self.patience


@dataclass
class Plan:
    """How to train: epochs, batch size, shuffling, and the stopping rule
    (None: run every epoch, as the linear models do)."""

    epochs: int
    batch_size: int
    shuffle: bool
    seed: int
    stopping: Stopping | None = None
    score: Callable[[], float] | None = None  # the validation score, with early stopping
    verbose: int = 0
    name: str = "estimator"


@dataclass
class Record:
    """What a run leaves: the fitted estimator's ``loss_curve_`` and friends."""

    loss_curve: list[float] = field(default_factory=list)
    validation_scores: list[float] = field(default_factory=list)
    converged: bool = False


def train(model: Any, rows: DenseRows | SparseRows, plan: Plan) -> Record:
    """Train `model` on `rows` by `plan`; with early stopping, the weights of
    the best validation score are put back at the end, as scikit-learn does.

    A Ctrl-C takes effect between batches and keeps what was trained, with a
    warning (scikit-learn's behaviour). Without early stopping, a loss that
    is no longer finite is a ValueError.
    """
    record = Record()
    best = _weights(model) if plan.score is not None else None  # sklearn starts from these
    try:
        with quiet_float_errors(), DeferredInterrupt() as interrupt:
            for epoch, loss in enumerate(_epochs(model, rows, plan, interrupt)):
                record.loss_curve.append(loss)
                if plan.score is None and not math.isfinite(loss):
                    raise ValueError(
                        f"{plan.name} diverged: the training loss overflowed to {loss}. Lower "
                        "learning_rate or scale X, e.g. with StandardScaler."
                    )
                if _end_of_epoch(model, plan, record, epoch, best):
                    record.converged = True
                    break
    except KeyboardInterrupt:
        warnings.warn(
            f"{plan.name}: training interrupted by the user after "
            f"{len(record.loss_curve)} epochs; keeping what was trained",
            UserWarning,
            stacklevel=3,
        )
    if best is not None:
        model.set_weights(best)
    return record


def _epochs(model: Any, rows: Any, plan: Plan, interrupt: Any) -> Iterator[float]:
    """Run the epochs, yielding each one's mean training loss."""
    n, size = rows.n, min(plan.batch_size, rows.n)
    spans = [(start, min(start + size, n)) for start in range(0, n, size)]
    rng = host_rng([plan.seed, 1])
    for _ in range(plan.epochs):
        # One full batch gains nothing from shuffling but a copy.
        order = rng.permutation(n) if plan.shuffle and len(spans) > 1 else None
        batch = rows.epoch(order)
        total: Any = 0.0
        for start, stop in spans:
            step = model.train_step(*batch(start, stop))
            total = total + step.loss * (stop - start)  # summed on the device
            interrupt.check()
        yield float(to_numpy(total)) / n


def _end_of_epoch(model: Any, plan: Plan, record: Record, epoch: int, best: Any) -> bool:
    """Score, keep the best weights, print; True when the rule says stop."""
    line = f"{plan.name} epoch {epoch + 1}/{plan.epochs}: loss {record.loss_curve[-1]:.8f}"
    value = record.loss_curve[-1]
    if plan.score is not None:
        value = plan.score()
        record.validation_scores.append(value)
        line += f", validation score {value:.6f}"
    if plan.verbose:
        print(line)
    if plan.stopping is None:
        return False
    if plan.stopping.update(value) and best is not None:
        best[:] = _weights(model)
    return plan.stopping.done


def _weights(model: Any) -> list[Array]:
    """Copies of the model's parameters, on its device."""
    return [copy_array(layer.params[name]) for layer in model.layers for name in layer.params]


def warn_not_converged(name: str, epochs: int, tol: float, early_stopping: bool) -> None:
    """scikit-learn's ConvergenceWarning when the epochs run out first."""
    from sklearn.exceptions import ConvergenceWarning

    watched = "validation score" if early_stopping else "training loss"
    warnings.warn(
        f"{name}: the {epochs} epochs ran out before the {watched} stopped improving "
        f"by more than tol={tol}; raise epochs (or tol) for a converged fit",
        ConvergenceWarning,
        stacklevel=3,
    )
