"""The batch loop's helpers: batching and shuffling on the device, and
the epoch accounting.

Rules the loop keeps (SPEC, "Devices"):

* host data is moved to the model's device once per ``fit``;
* inside the batch loop nothing is copied to the host and no device scalar is
  read: the loss and metrics are summed on the device and read at a
  progress-bar refresh (at most twice a second) and at epoch end;
* the shuffling permutation is drawn on the host once per epoch, moved in one
  transfer, and applied on the device with ``take``.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from xpnet._backend import (
    Backend,
    asarray,
    host_rng,
    namespace,
)
from xpnet._typing import Array

# How often (seconds) the progress bar reads the running loss from the device.
REFRESH_SECONDS = 0.5


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
        xp = namespace(self.x)
        return Data(*(None if a is None else xp.take(a, index, axis=0) for a in self._arrays()))

    def slice(self, start: int, stop: int) -> Data:
        return Data(*(None if a is None else a[start:stop, ...] for a in self._arrays()))

    def _arrays(self):
        return (self.x, self.y, self.sample_weight)


def permutation(seed_rng: Any, n: int, target: Backend) -> Array:
    """A permutation of ``range(n)`` drawn on the host, moved once."""
    return asarray(host_rng(seed_rng).permutation(n), target)


def batches(n: int, batch_size: int) -> Sequence[tuple[int, int]]:
    return [(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]


class Progress:
    """A tqdm bar per epoch (silent at ``verbose=0``) that decides when the
    running loss may be read from the device."""

    def __init__(self, verbose: int, epoch: int, epochs: int, total: int) -> None:
        self.bar = None
        if verbose:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=total, desc=f"Epoch {epoch + 1}/{epochs}", unit="batch", leave=True,
                dynamic_ncols=True,
            )  # fmt: skip
        self._last = time.monotonic()

    def due(self) -> bool:
        """Whether a refresh (and so a device read) is due now."""
        if self.bar is None:
            return False
        now = time.monotonic()
        if now - self._last >= REFRESH_SECONDS:
            self._last = now
            return True
        return False

    def advance(self, logs: dict[str, float] | None = None) -> None:
        if self.bar is None:
            return
        self.bar.update(1)
        if logs:
            self.bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items()}, refresh=False)

    def close(self, logs: dict[str, float]) -> None:
        if self.bar is None:
            return
        self.bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items()}, refresh=False)
        self.bar.close()


class DeferredInterrupt:
    """Within the block, a first Ctrl-C (SIGINT) is held until :meth:`check`,
    which the batch loop calls between batches, so an interrupted ``fit``
    never leaves a half-applied update. A second Ctrl-C interrupts at once.

    Only the main thread can handle signals; elsewhere this does nothing and
    Python's own handling applies.
    """

    def __init__(self) -> None:
        self.pending = False
        self._previous: Any = None

    def __enter__(self) -> DeferredInterrupt:
        if threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGINT)
            if previous is signal.default_int_handler:  # leave custom handlers alone
                self._previous = previous
                signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.pending:
            raise KeyboardInterrupt
        self.pending = True

    def check(self) -> None:
        """Raise the held KeyboardInterrupt, if any."""
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
        if self.pending and exc[0] is None:  # arrived after the last batch
            self.pending = False
            raise KeyboardInterrupt
