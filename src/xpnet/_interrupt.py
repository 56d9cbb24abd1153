"""Ctrl-C during training: held until the batch in flight is finished."""

from __future__ import annotations

import signal
import threading
from typing import Any

try:  # the C module under ``signal``, without its enum conversions (~20 µs a fit)
    import _signal as _raw_signal
except ImportError:  # pragma: no cover - not CPython
    _raw_signal = signal


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
            previous = _raw_signal.getsignal(signal.SIGINT)
            if previous is signal.default_int_handler:  # leave custom handlers alone
                self._previous = previous
                _raw_signal.signal(signal.SIGINT, self._handle)
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
            _raw_signal.signal(signal.SIGINT, self._previous)
            self._previous = None
        if self.pending and exc[0] is None:  # arrived after the last batch
            self.pending = False
            raise KeyboardInterrupt
