"""The batch loop: data checks, batching and shuffling on the device, and
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

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from xpnet._backend import (
    Backend,
    asarray,
    backend_name,
    device_of,
    host_rng,
    is_host_data,
    namespace,
    to_numpy,
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


def to_device(data: Any, target: Backend, name: str, dtype: Any = None) -> Array:
    """Return `data` as an array on `target`: host data is moved (one
    transfer); arrays of the model's library must already be on its device;
    arrays of any other library are refused."""
    if is_host_data(data):
        return asarray(data, target, dtype)
    try:
        xp = namespace(data)
    except TypeError:
        raise TypeError(
            f"{name} must be an array or nested lists, got {type(data).__name__}"
        ) from None
    if xp is not target.xp:
        raise TypeError(
            f"{name} is a {backend_name(xp)} array but the model lives on {target.name}; "
            f"convert it (xpnet.to_numpy) or move the model (model.to({backend_name(xp)!r}))"
        )
    if device_of(data) != target.device:
        raise ValueError(
            f"{name} is on device {device_of(data)!r} but the model is on {target.device!r}; "
            "move one of them"
        )
    if dtype is not None and data.dtype != dtype:
        data = xp.astype(data, dtype)
    return data


class Checks:
    """Collects boolean device scalars that must all be False, and reads
    them in one transfer: one synchronization per ``fit``, not one per check."""

    def __init__(self, xp: Any) -> None:
        self.xp = xp
        self.flags: list[Array] = []
        self.messages: list[str] = []

    def fail_if(self, flag: Array, message: str) -> None:
        self.flags.append(self.xp.reshape(self.xp.astype(flag, self.xp.int8), (1,)))
        self.messages.append(message)

    def raise_first(self) -> None:
        if not self.flags:
            return
        found = to_numpy(self.xp.concat(self.flags))
        for bad, message in zip(found.tolist(), self.messages, strict=True):
            if bad:
                raise ValueError(message)


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
