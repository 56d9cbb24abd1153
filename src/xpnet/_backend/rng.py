"""Randomness: every random number xpnet uses is drawn on the host.

A :class:`numpy.random.Generator` draws the numbers and they move to the
device once, so one seed gives the same initial weights, dropout masks and
shuffles on every backend.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def host_rng(seed: int | np.random.Generator | None = None) -> np.random.Generator:
    """Return a host random generator; a Generator passes through unchanged.

    All of xpnet's randomness is drawn here and moved to the device, so a
    seed means the same numbers on every backend.
    """
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def is_host_rng(x: Any) -> bool:
    """Whether `x` is one of the host random generators xpnet draws from."""
    return isinstance(x, np.random.Generator)


def rng_restorer(rng: np.random.Generator) -> Callable[[], None]:
    """A function that puts `rng` back, in place, to the point it is at now
    (its bit generator's state: a few integers, not a copy of the object)."""
    state = rng.bit_generator.state

    def restore() -> None:
        rng.bit_generator.state = state

    return restore
