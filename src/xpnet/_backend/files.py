"""Arrays in files: NumPy's ``.npy`` format, never pickle.

The model format (see :mod:`xpnet.io`) stores each array as one ``.npy``
member; refusing object arrays both ways means loading an untrusted file
cannot run code.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def write_npy(fileobj: Any, array: np.ndarray) -> None:
    """Write one array in NumPy's ``.npy`` format, refusing object arrays."""
    np.lib.format.write_array(fileobj, np.ascontiguousarray(array), allow_pickle=False)


def read_npy(fileobj: Any) -> np.ndarray:
    """Read one ``.npy`` array; pickled (object) payloads are refused, so
    loading an untrusted file cannot run code."""
    return np.lib.format.read_array(fileobj, allow_pickle=False)
