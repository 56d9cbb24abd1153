"""Float dtypes: their names, the default, which backend supports which, and
how NumPy's floating-point warnings are kept quiet.

xpnet never downcasts silently: a dtype a backend cannot hold (float64 on
JAX without 64-bit mode, bfloat16 on NumPy) is a TypeError that says what to
do instead.
"""

from __future__ import annotations

import contextlib
from typing import Any

import array_api_compat
import numpy as np

from xpnet._backend.namespaces import backend_name
from xpnet._typing import DType, Namespace

FLOAT_DTYPES = ("float32", "float64", "float16", "bfloat16")
DEFAULT_FLOAT = "float32"


_KIND_CACHE: dict[tuple[int, Any, str], bool] = {}


def isdtype(xp: Namespace, dtype: DType, kind: str) -> bool:
    """``xp.isdtype(dtype, kind)``, remembered: kernels ask it on every call
    and NumPy answers it slowly."""
    key = (id(xp), dtype, kind)
    found = _KIND_CACHE.get(key)
    if found is None:
        found = _KIND_CACHE[key] = bool(xp.isdtype(dtype, kind))
    return found


def dtype_name(dtype: DType) -> str:
    """Return the plain name (``"float32"``) of a dtype of any backend."""
    if isinstance(dtype, str):
        return dtype
    if isinstance(dtype, type | np.dtype):  # numpy, cupy and jax dtypes
        return np.dtype(dtype).name
    return str(dtype).rsplit(".", 1)[-1]  # torch.float32, array_api_strict.float32


def _jax_x64_enabled() -> bool:
    import jax

    return bool(jax.config.jax_enable_x64)


def _refuse_unsupported(xp: Namespace, name: str) -> None:
    """The per-library gaps: JAX's float64 needs 64-bit mode (else it would
    downcast silently), NumPy has no bfloat16."""
    if array_api_compat.is_jax_namespace(xp) and name == "float64" and not _jax_x64_enabled():
        raise TypeError(
            "float64 on the jax backend needs 64-bit mode: call "
            "jax.config.update('jax_enable_x64', True) at startup or set "
            "JAX_ENABLE_X64=1 in the environment"
        )
    if name == "bfloat16" and array_api_compat.is_numpy_namespace(xp):
        raise TypeError("numpy has no bfloat16; use float16, float32 or float64")


def float_dtype(xp: Namespace, dtype: str | DType | None = None) -> DType:
    """Return the dtype object of `xp` for `dtype` (a name, a dtype, or None
    for the default float32).

    Raises TypeError for non-float dtypes and for float64 on JAX without
    ``jax_enable_x64`` (which would otherwise downcast silently).
    """
    if dtype is None:
        dtype = DEFAULT_FLOAT
    name = dtype if isinstance(dtype, str) else dtype_name(dtype)
    if name not in FLOAT_DTYPES:
        raise TypeError(
            f"dtype must be a floating dtype ({', '.join(FLOAT_DTYPES)}), got {dtype!r}"
        )
    _refuse_unsupported(xp, name)
    try:
        return getattr(xp, name)
    except AttributeError:
        raise TypeError(f"backend {backend_name(xp)} has no dtype {name}") from None


def quiet_float_errors() -> contextlib.AbstractContextManager[Any]:
    """A context in which NumPy's overflow/invalid warnings are silenced.

    NumPy alone warns when a computation overflows; the other backends give
    the same inf/nan silently. Training reports a diverging run through its
    loss values (and ``TerminateOnNaN``), the same way on every backend.
    (NumPy's own context object, not a generator around it: this is entered
    on every ``train_on_batch``, where the wrapper would double its cost.)
    """
    return np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore")
