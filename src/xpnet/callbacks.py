"""Callbacks: hooks the training loop calls at the start and end of training,
of each epoch, and after each batch.

``logs`` at epoch end holds host floats (``loss``, metrics, ``val_*``).
After a batch, ``logs`` is empty unless the loop has just read the running
loss from the device (at a progress-bar refresh); reading it every batch
would force a device synchronization per step.
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from collections.abc import Callable
from typing import Any

from xpnet._validation import check_choice

__all__ = [
    "CSVLogger",
    "Callback",
    "EarlyStopping",
    "History",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "TerminateOnNaN",
]


class Callback:
    """Base class; override the hooks you need. ``self.model`` is set by ``fit``."""

    model: Any = None

    def set_model(self, model: Any) -> None:
        self.model = model

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None: ...
    def on_train_end(self, logs: dict[str, float] | None = None) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None: ...
    def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None: ...


class History(Callback):
    """Records the epoch logs; ``fit`` returns it. ``history["loss"][e]`` is
    epoch e's loss."""

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={sorted(self.history)})"


# Monitored names that are better when larger ("auto" mode), as Keras reads them.
_MAXIMIZED = ("acc", "auc", "precision", "recall", "f1")


def _improvement(mode: str, monitor: str) -> Callable[[float, float], bool]:
    if mode == "auto":
        mode = "max" if any(word in monitor for word in _MAXIMIZED) else "min"
    return (lambda new, best: new > best) if mode == "max" else (lambda new, best: new < best)


def _monitored(logs: dict[str, float] | None, monitor: str, who: str) -> float | None:
    value = (logs or {}).get(monitor)
    if value is None:
        warnings.warn(
            f"{who}: {monitor!r} is not in the epoch logs (available: "
            f"{sorted(logs or {})}); pass validation data or choose another monitor",
            RuntimeWarning,
            stacklevel=3,
        )
    return value


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by `min_delta` for `patience` epochs.

    Parameters
    ----------
    monitor : str
        A key of the epoch logs, ``"val_loss"`` by default.
    min_delta : float
        Smallest change that counts as an improvement.
    patience : int
        Epochs without improvement before stopping.
    mode : {"auto", "min", "max"}
        ``auto`` maximizes accuracies and minimizes everything else.
    restore_best_weights : bool
        At the end, put back the weights of the best epoch.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0.0,
        patience: int = 0,
        mode: str = "auto",
        restore_best_weights: bool = False,
    ) -> None:
        if patience < 0:
            raise ValueError(f"patience must be >= 0, got {patience!r}")
        self.monitor = monitor
        self.min_delta = abs(float(min_delta))
        self.patience = int(patience)
        self.mode = check_choice("mode", mode, ("auto", "min", "max"))
        self.restore_best_weights = bool(restore_best_weights)
        self._better = _improvement(self.mode, monitor)
        self._sign = 1.0 if self._better(1.0, 0.0) else -1.0

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.best = -math.inf if self._sign > 0 else math.inf
        self.best_epoch = -1
        self.best_weights = None
        self.stopped_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        value = _monitored(logs, self.monitor, "EarlyStopping")
        if value is None:
            return
        if self._better(value - self._sign * self.min_delta, self.best):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model (or its weights) after each epoch, or only when
    `monitor` improved.

    Parameters
    ----------
    filepath : str or path
        May contain ``{epoch}`` and log keys, e.g. ``"m-{epoch:02d}.xpnet"``
        or ``"best-{val_loss:.3f}.weights.npz"``.
    monitor : str
        The epoch log compared when `save_best_only` is set.
    save_best_only : bool
        Write only when `monitor` improved on the best value so far (the
        same file is then overwritten unless `filepath` varies).
    save_weights_only : bool
        Write :meth:`~xpnet.Sequential.save_weights` files instead of whole
        models.
    mode : {"auto", "min", "max"}
        ``auto`` maximizes accuracy, AUC, precision, recall and F1, and
        minimizes everything else.
    verbose : int
        1 prints a line for every file written (and every skipped epoch).
    """

    def __init__(
        self,
        filepath: str | os.PathLike[str],
        monitor: str = "val_loss",
        save_best_only: bool = False,
        save_weights_only: bool = False,
        mode: str = "auto",
        verbose: int = 0,
    ) -> None:
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self.mode = check_choice("mode", mode, ("auto", "min", "max"))
        self.verbose = int(verbose)
        self._better = _improvement(self.mode, monitor)
        self.best: float | None = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        try:
            path = self.filepath.format(epoch=epoch + 1, **logs)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"ModelCheckpoint cannot fill in filepath {self.filepath!r} ({exc!r}); it may "
                f"use {{epoch}} and the epoch logs: {sorted(logs)}"
            ) from exc
        if self.save_best_only:
            value = _monitored(logs, self.monitor, "ModelCheckpoint")
            if value is None:
                return
            if self.best is not None and not self._better(value, self.best):
                self._say(f"Epoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5g}")
                return
            was = "" if self.best is None else f" from {self.best:.5g}"
            self._say(
                f"Epoch {epoch + 1}: {self.monitor} improved{was} to {value:.5g}, saving to {path}"
            )
            self.best = value
        else:
            self._say(f"Epoch {epoch + 1}: saving to {path}")
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)

    def _say(self, line: str) -> None:
        if self.verbose:
            print(line)


class TerminateOnNaN(Callback):
    """Stop training as soon as a loss read from the device is NaN or infinite.

    The loop reads the running loss at each progress refresh and at epoch
    end; a NaN in any batch makes the running sum NaN, so it is caught at the
    next read without a synchronization per batch.
    """

    def on_train_batch_end(self, batch, logs=None):
        self._check((logs or {}).get("loss"))

    def on_epoch_end(self, epoch, logs=None):
        self._check((logs or {}).get("loss"))

    def _check(self, loss):
        if loss is not None and not math.isfinite(loss):
            self.model.stop_training = True


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of each epoch to ``fn(epoch, lr)``."""

    def __init__(self, schedule: Callable[[int, float], float]) -> None:
        if not callable(schedule):
            raise TypeError("schedule must be callable as schedule(epoch, lr)")
        self.schedule = schedule

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        if callable(optimizer.learning_rate):
            raise TypeError(
                "LearningRateScheduler needs a float learning_rate, but the optimizer "
                "already has a schedule"
            )
        optimizer.learning_rate = float(self.schedule(epoch, optimizer.learning_rate))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = self.model.optimizer.current_learning_rate()


class CSVLogger(Callback):
    """Write one CSV row per epoch: ``epoch`` and every log key."""

    def __init__(self, path: str | os.PathLike[str], separator: str = ",", append: bool = False):
        self.path = os.fspath(path)
        self.separator = separator
        self.append = bool(append)
        self._keys: list[str] | None = None

    def on_train_begin(self, logs=None):
        exists = self.append and os.path.exists(self.path) and os.path.getsize(self.path) > 0
        self._file = open(self.path, "a" if self.append else "w", newline="")  # noqa: SIM115
        self._writer = csv.writer(self._file, delimiter=self.separator)
        self._keys = None
        self._header_written = exists

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self._keys is None:
            self._keys = sorted(logs)
            if not self._header_written:
                self._writer.writerow(["epoch", *self._keys])
        self._writer.writerow([epoch, *(logs.get(k, "") for k in self._keys)])
        self._file.flush()

    def on_train_end(self, logs=None):
        self._file.close()
