"""What a ``fit`` does around its steps, once per call or per epoch: fresh
state (a constant fill, an optimizer's zero slots), copies for the
rollback, the epoch's shuffle and reading its figures.

Everywhere but JAX these are the array API's own calls. JAX runs each
operation as a program that it compiles on first use for every new shape
(5 to 30 ms each on a CPU), so a first ``fit`` on new data used to compile
a dozen of them before its step. Here JAX makes new arrays on the host and
moves them, copies with ``device_put`` and reads several scalars with one
``device_get``, none of which compiles anything, and gathers all of an
epoch's arrays in one program.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import array_api_compat
import numpy as np

from xpnet._backend.compiler import is_traced
from xpnet._backend.devices import device_of
from xpnet._backend.namespaces import namespace
from xpnet._backend.selection import Backend
from xpnet._backend.transfers import to_numpy
from xpnet._typing import Array, DType


def _jax(x: Any) -> Any:
    """The ``jax`` module if `x` is a concrete JAX array (not a tracer), else None."""
    if type(x) is np.ndarray:  # the common case, without array-api-compat's checks
        return None
    if array_api_compat.is_jax_array(x) and not is_traced(x):
        import jax

        return jax
    return None


def full_like(x: Array, value: float) -> Array:
    """An array of `x`'s shape, dtype and device, every entry `value`."""
    jax = _jax(x)
    if jax is not None:
        return jax.device_put(np.full(x.shape, value, dtype=x.dtype), x.sharding)
    return namespace(x).full(x.shape, value, dtype=x.dtype, device=device_of(x))


def filled(shape: tuple[int, ...], value: float, dtype: DType, placement: Backend) -> Array:
    """A new array of `shape` and `dtype` on `placement`, every entry `value`."""
    if placement.name == "jax":
        import jax

        return jax.device_put(np.full(shape, value, dtype=dtype), placement.device)
    return placement.xp.full(shape, value, dtype=dtype, device=placement.device)


def copy_array(x: Array) -> Array:
    """An independent copy of array `x` on its own device."""
    jax = _jax(x)
    if jax is not None:
        return jax.device_put(x, x.sharding, may_alias=False)
    return namespace(x).asarray(x, copy=True)


def copy_arrays(arrays: Sequence[Array]) -> list[Array]:
    """Independent copies of `arrays` (a model's weights and slots, say);
    on JAX one program call for all of them (per-array ``device_put``
    copies cost about 0.2 ms each)."""
    if arrays and all(_jax(a) is not None for a in arrays):
        if not _JAX_COPY:
            import jax

            _JAX_COPY.append(jax.jit(_jax_copies))
        return list(_JAX_COPY[0](list(arrays)))
    return [copy_array(a) for a in arrays]


def _jax_copies(arrays: list[Array]) -> list[Array]:
    import jax

    return [jax.numpy.copy(a) for a in arrays]


_JAX_COPY: list[Any] = []
_JAX_TAKE: list[Any] = []


def _jax_take_rows(arrays: list[Array], index: Array) -> list[Array]:
    import jax

    # "clip" is exact for the in-range rows of a permutation, and skips the
    # default mode's mask for rows out of range (2x faster on small arrays)
    return [jax.numpy.take(a, index, axis=0, mode="clip") for a in arrays]


def take_rows(arrays: Sequence[Array | None], index: Array) -> list[Array | None]:
    """Rows `index` of each array of `arrays` (None stays None)."""
    present = [a for a in arrays if a is not None]
    if _jax(index) is not None:
        if not _JAX_TAKE:
            import jax

            _JAX_TAKE.append(jax.jit(_jax_take_rows))
        taken = iter(_JAX_TAKE[0](present, index))
    else:
        xp = namespace(index)
        taken = iter([xp.take(a, index, axis=0) for a in present])
    return [None if a is None else next(taken) for a in arrays]


def read_scalars(values: Sequence[Array]) -> list[float]:
    """Scalars of one device as Python numbers (floats; booleans may come
    back as bools), read in one transfer."""
    first = values[0]
    jax = _jax(first)
    if jax is not None:
        return [float(np.reshape(v, ())) for v in jax.device_get(list(values))]
    if isinstance(first, np.ndarray | np.generic | float | int):  # on the host already
        return [float(np.reshape(v, ())) for v in values]
    if len(values) == 1:  # one read, nothing to stack
        return [float(to_numpy(first).reshape(()))]
    xp = namespace(first)
    return to_numpy(xp.stack([xp.reshape(v, ()) for v in values])).tolist()
