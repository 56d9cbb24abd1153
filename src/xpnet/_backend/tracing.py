"""Tracing: arrays that record the array API calls made on them as a graph.

ndonnx implements the array API standard by recording ONNX operations
instead of computing, so xpnet's own kernels, called on its arrays, write
the ONNX graph of what they compute. This module is the only importer of
ndonnx; it makes the symbolic arrays (the data, with a named batch
dimension, and each weight under its own name) and turns what was recorded
into an ONNX ``ModelProto``.

ndonnx arrays take the portable path of :mod:`xpnet._backend.fastpaths`
(:class:`~xpnet._backend.fastpaths.ArrayAPIOps`): every in-place fast path
there is for NumPy, CuPy or PyTorch arrays only.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from xpnet._typing import Array

INSTALL_HINT = 'pip install "xpnet[onnx]"'
"""What to run when the ONNX export's libraries are missing."""

BATCH = "N"
"""The name of the symbolic batch dimension of an exported graph."""


def load_ndonnx() -> ModuleType:
    """ndonnx, or an ImportError that says how to install the extra."""
    try:
        import ndonnx
    except ImportError as exc:
        raise ImportError(f"exporting to ONNX needs ndonnx and onnx: {INSTALL_HINT}") from exc
    return ndonnx


def traceable_dtype(name: str) -> Any:
    """The ndonnx dtype for the float dtype `name`; ValueError when ndonnx
    has none (bfloat16)."""
    found = getattr(load_ndonnx(), name, None)
    if found is None:
        raise ValueError(
            f"a {name} model cannot be exported to ONNX: ndonnx has no {name}; "
            "convert the model to float32 first (e.g. save, then rebuild with dtype='float32')"
        )
    return found


def symbolic(shape: tuple[int | str, ...], dtype: str) -> Array:
    """A graph input of `shape` (a string names a dimension left open, such
    as the batch size) and float dtype `dtype`."""
    ndx = load_ndonnx()
    return ndx.argument(shape=shape, dtype=traceable_dtype(dtype))


def is_traced(x: Any) -> bool:
    """Whether `x` is a symbolic (recording) array."""
    return isinstance(x, load_ndonnx().Array)


def build_graph(inputs: dict[str, Array], outputs: dict[str, Array]) -> Any:
    """The ONNX ``ModelProto`` of everything recorded from `inputs` to `outputs`."""
    return load_ndonnx().build(inputs, outputs)
