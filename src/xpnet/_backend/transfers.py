"""Moving data between the host and a backend's device.

Host data (NumPy arrays, lists, Python scalars) goes to a backend in one
transfer with :func:`asarray`; device data comes back with :func:`to_numpy`,
the one explicit host copy. Arrays of a device library are never converted
implicitly: that is where silent per-batch copies would hide.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import array_api_compat
import numpy as np

from xpnet._backend.dtypes import FLOAT_DTYPES, _jax_x64_enabled, dtype_name, float_dtype
from xpnet._backend.namespaces import backend_name, namespace
from xpnet._backend.selection import Backend
from xpnet._typing import Array, DType

# --------------------------------------------------------------------------
# What kind of data is it
# --------------------------------------------------------------------------


def is_host_data(x: Any) -> bool:
    """Whether `x` is host data: a NumPy array or scalar, a list/tuple, or a
    Python number."""
    return isinstance(x, np.ndarray | np.generic | list | tuple | int | float | bool)


def is_device_array(x: Any) -> bool:
    """Whether `x` is an array of a device library (anything array-API but NumPy)."""
    return not isinstance(x, np.ndarray | np.generic) and array_api_compat.is_array_api_obj(x)


def host_numeric(data: Any, name: str) -> np.ndarray:
    """`data` (a NumPy array, nested lists, a scalar) as a NumPy array of
    numbers, refusing what a cast would silently misread.

    Complex numbers would lose their imaginary part, and strings (``"1.5"``)
    would be parsed; both are refused with a TypeError, as scikit-learn does.
    Object arrays are accepted only when every element is a number.
    """
    host = np.asarray(data)
    kind = host.dtype.kind
    if kind == "c":
        raise TypeError(
            f"{name} holds complex numbers ({host.dtype}); xpnet trains on real "
            f"numbers: pass {name}.real or abs({name}) explicitly"
        )
    if kind in "USa":
        raise TypeError(
            f"{name} holds strings ({host.dtype}), which are not parsed as numbers; "
            f"convert explicitly, e.g. np.asarray({name}, dtype=float)"
        )
    if kind == "O":
        if not all(isinstance(v, int | float | np.number) for v in host.flat) or any(
            isinstance(v, complex | np.complexfloating) for v in host.flat
        ):
            raise TypeError(f"{name} is an object array whose elements are not all real numbers")
        host = host.astype(np.float64)
    elif kind not in "biuf":
        raise TypeError(f"{name} has dtype {host.dtype}, which is not numeric")
    return host


# --------------------------------------------------------------------------
# Device -> host
# --------------------------------------------------------------------------


def to_numpy(x: Any) -> np.ndarray:
    """Copy an array of any backend (or host data) to a :class:`numpy.ndarray`.

    This is the one explicit host transfer; it synchronizes with the device.

    Examples
    --------
    >>> import xpnet as xn
    >>> xn.to_numpy([1.0, 2.0])
    array([1., 2.])
    """
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, np.generic):  # a NumPy scalar (NumPy's reductions give them)
        return np.asarray(x)
    if array_api_compat.is_torch_array(x):
        x = x.detach().cpu().resolve_conj()
        if str(x.dtype) == "torch.bfloat16":  # NumPy has none; float32 holds every value
            x = x.float()
        return x.numpy()
    if array_api_compat.is_cupy_array(x):
        return x.get()
    if type(x).__module__.startswith("array_api_strict"):
        # Non-default strict devices refuse __array__, like a GPU would.
        import array_api_strict as strict

        return np.asarray(x.to_device(strict.Device()))
    return np.asarray(x)


def synchronize(x: Any) -> None:
    """Wait until the device has finished computing `x`, an array or a list
    of arrays (for timing)."""
    if isinstance(x, np.ndarray | np.generic | float):  # the host computes eagerly
        return
    if isinstance(x, list | tuple):
        for item in x:
            synchronize(item)
        return
    if array_api_compat.is_cupy_array(x):
        import cupy

        cupy.cuda.get_current_stream().synchronize()
    elif array_api_compat.is_torch_array(x):
        if x.device.type == "cuda":
            import torch

            torch.cuda.synchronize(x.device)
    elif array_api_compat.is_jax_array(x):
        x.block_until_ready()


# --------------------------------------------------------------------------
# Host -> device: one placement per library
# --------------------------------------------------------------------------


def _place_numpy(host: np.ndarray, placement: Backend, copy: bool) -> Array:
    return host.copy() if copy else host


def _place_jax(host: np.ndarray, placement: Backend, copy: bool) -> Array:
    import jax

    if not _jax_x64_enabled():
        if host.dtype == np.float64:
            float_dtype(placement.xp, "float64")  # raises the explanatory error
        if host.dtype == np.int64:  # labels: JAX would warn and truncate
            host = host.astype(np.int32)
    # On the CPU device_put may wrap the host buffer without copying.
    return jax.device_put(host.copy() if copy else host, placement.device)


def _place_torch(host: np.ndarray, placement: Backend, copy: bool) -> Array:
    import torch

    if any(stride < 0 for stride in host.strides):  # x[::-1]: torch has no such views
        host = np.ascontiguousarray(host)
    return torch.asarray(host, device=placement.device, copy=True if copy else None)


def _place_cupy(host: np.ndarray, placement: Backend, copy: bool) -> Array:
    with placement.device:
        return placement.xp.asarray(host)


def _place_array_api(host: np.ndarray, placement: Backend, copy: bool) -> Array:
    # array_api_strict shares memory with the host array unless told not to
    return placement.xp.asarray(host, device=placement.device, copy=True if copy else None)


_PLACE: dict[str, Callable[[np.ndarray, Backend, bool], Array]] = {
    "numpy": _place_numpy,
    "jax": _place_jax,
    "torch": _place_torch,
    "cupy": _place_cupy,
}


def _host_with_dtype(data: Any, placement: Backend, name: str | None) -> np.ndarray:
    """`data` as a NumPy array of dtype `name` (None: as NumPy reads it)."""
    host = np.asarray(data)
    if name is None:
        return host
    if name in FLOAT_DTYPES:
        float_dtype(placement.xp, name)  # refuses float64 on JAX without x64
    # NumPy has no bfloat16: cross on float32, cast on the device.
    return host.astype(np.float32 if name == "bfloat16" else name, copy=False)


def host_cast(data: Any, placement: Backend, dtype: str | DType | None = None) -> np.ndarray | None:
    """Host data as the NumPy array that ``asarray(data, placement, dtype)``
    moves, still on the host (so its values can be checked there); None
    where the cast happens on the device (bfloat16, which NumPy lacks)."""
    name = None if dtype is None else dtype_name(dtype)
    return None if name == "bfloat16" else _host_with_dtype(data, placement, name)


def asarray(
    data: Any,
    placement: Backend,
    dtype: str | DType | None = None,
    *,
    copy: bool = False,
) -> Array:
    """Move host data (NumPy array, list, scalar) to `placement` in one transfer.

    Parameters
    ----------
    data : array_like
        Host data. Arrays of a device library are refused: convert them
        explicitly with :func:`to_numpy` first.
    placement : Backend
        Where the array should live.
    dtype : str or dtype, optional
        Name such as ``"float32"``, or a dtype of any library. None keeps
        the data's dtype (after NumPy's conversion of lists).
    copy : bool
        Guarantee the result does not share memory with `data`.
    """
    if is_device_array(data):
        raise TypeError(
            f"expected host data (numpy or lists), got an array of "
            f"{backend_name(namespace(data))}; use xpnet.to_numpy() first"
        )
    name = None if dtype is None else dtype_name(dtype)
    host = _host_with_dtype(data, placement, name)
    out = _PLACE.get(placement.name, _place_array_api)(host, placement, copy)
    if name == "bfloat16":
        out = placement.xp.astype(out, placement.xp.bfloat16)
    return out
