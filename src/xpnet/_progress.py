"""Reporting a pass over batches: a tqdm bar on a terminal or in a notebook,
one line per epoch anywhere else (a log file, a pipe, CI), nothing at
``verbose=0``."""

from __future__ import annotations

import sys
import time
from typing import Any

# How often (seconds) the progress bar reads the running loss from the device.
REFRESH_SECONDS = 0.5


def interactive(stream: Any) -> bool:
    """Whether a progress bar can redraw itself on `stream`: a terminal, or
    the output of a Jupyter kernel. Elsewhere (a log file, a pipe, CI) a bar
    would leave one copy of itself per refresh."""
    try:
        if stream.isatty():
            return True
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
    return "ipykernel" in sys.modules


def format_logs(logs: dict[str, float]) -> str:
    """``loss: 0.1234 - accuracy: 0.9500``; tiny values in e-notation."""
    return " - ".join(
        f"{k}: {v:.4f}" if v == 0 or not 0 < abs(v) < 1e-3 else f"{k}: {v:.4e}"
        for k, v in logs.items()
    )


class Progress:
    """Reports a pass over `total` batches (an epoch, an evaluation, a
    prediction) and decides when the running loss may be read from the device.

    ``verbose=1`` draws a tqdm bar on a terminal or in a notebook; on any
    other output, and at ``verbose=2``, it prints one line when the pass
    ends, like ``Epoch 3/10 - 12 batches - 0.05s - loss: 0.4821``, and
    never reads the device mid-pass. ``verbose=0`` is silent.
    """

    def __init__(self, verbose: int, desc: str, total: int) -> None:
        self.bar = None
        self.desc, self.total = desc, total
        self.line = verbose == 2 or (verbose == 1 and not interactive(sys.stderr))
        if verbose == 1 and not self.line:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=total, desc=desc, unit="batch", leave=True, dynamic_ncols=True,
            )  # fmt: skip
        self._start = self._last = time.monotonic()

    def due(self) -> bool:
        """Whether a refresh (and so a device read) is due now."""
        if self.bar is None:
            return False
        now = time.monotonic()
        if now - self._last >= REFRESH_SECONDS:
            self._last = now
            return True
        return False

    def advance(self, logs: dict[str, float] | None = None, n: int = 1) -> None:
        if self.bar is None:
            return
        self.bar.update(n)
        if logs:
            self.bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items()}, refresh=False)

    def close(self, logs: dict[str, float] | None = None) -> None:
        logs = logs or {}
        if self.line:
            seconds = time.monotonic() - self._start
            parts = [self.desc, f"{self.total} batches", f"{seconds:.2f}s"]
            print(" - ".join([*parts, format_logs(logs)] if logs else parts), flush=True)
        if self.bar is None:
            return
        self.bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items()}, refresh=False)
        self.bar.close()
