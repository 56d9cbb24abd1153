"""Backends: the only module that imports the array libraries.

Everything else in xpnet receives arrays and asks this module for their
namespace (``xp``), device and dtype. Each library's quirks live here:

* numpy     -- ``array_api_compat.numpy``; always available; device ``"cpu"``.
* cupy      -- ``array_api_compat.cupy``; usable only with a CUDA device.
* torch     -- ``array_api_compat.torch``; devices are ``torch.device``.
* jax       -- ``jax.numpy``; arrays are immutable, and float64 needs
  ``jax_enable_x64`` (we never let JAX downcast silently).
* array_api_strict -- the reference implementation; its non-default
  devices (``"device1"``) behave like a GPU: no implicit host conversion,
  no mixing of devices.

Host data (NumPy arrays, lists, Python scalars) is moved to a backend with
:func:`asarray`; device data comes back with :func:`to_numpy`. Random numbers
are always drawn on the host from a :class:`numpy.random.Generator`, so one
seed gives the same numbers on every backend.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

from xpnet._typing import Array, Device, DType, Namespace
from xpnet._validation import check_choice, unknown_name_error

__all__ = [
    "BACKENDS",
    "FLOAT_DTYPES",
    "Backend",
    "add_scaled_",
    "affine",
    "asarray",
    "available_backends",
    "backend",
    "backend_name",
    "backend_of",
    "copy_array",
    "default_backend",
    "describe_backends",
    "device_of",
    "dtype_name",
    "float_dtype",
    "get_backend",
    "host_numeric",
    "host_rng",
    "is_device_array",
    "is_host_data",
    "is_host_rng",
    "is_writeable",
    "isdtype",
    "matmul",
    "namespace",
    "quiet_float_errors",
    "read_npy",
    "reduce_max",
    "reduce_sum",
    "relu_",
    "relu_backward_",
    "set_backend",
    "synchronize",
    "to_numpy",
    "write_npy",
]

BACKENDS = ("numpy", "array_api_strict", "torch", "jax", "cupy")
"""Every backend xpnet knows, in the order :func:`available_backends` lists them."""

FLOAT_DTYPES = ("float32", "float64", "float16", "bfloat16")
DEFAULT_FLOAT = "float32"

# Which pip package provides each backend, for "not installed" errors.
_PIP_NAMES = {
    "array_api_strict": "array-api-strict",
    "torch": "torch",
    "jax": "jax",
    "cupy": "cupy-cuda12x",
}


# --------------------------------------------------------------------------
# Namespaces
# --------------------------------------------------------------------------


def _load(name: str) -> ModuleType:
    """Import backend `name` and return its array API namespace.

    Raises ImportError when the library is missing and RuntimeError when it is
    installed but unusable (cupy without a CUDA device).
    """
    if name == "numpy":
        return importlib.import_module("array_api_compat.numpy")
    if name == "array_api_strict":
        return importlib.import_module("array_api_strict")
    if name == "torch":
        importlib.import_module("torch")
        return importlib.import_module("array_api_compat.torch")
    if name == "jax":
        return importlib.import_module("jax.numpy")
    if name == "cupy":
        cupy = importlib.import_module("cupy")
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # CUDA driver missing or broken
            raise RuntimeError(f"cupy is installed but CUDA is not usable: {exc}") from exc
        if count < 1:
            raise RuntimeError("cupy is installed but no CUDA device was found")
        return importlib.import_module("array_api_compat.cupy")
    raise unknown_name_error("backend", name, BACKENDS)


_LOADED: dict[str, ModuleType] = {}


def _namespace_for(name: str) -> ModuleType:
    check_choice("backend", name, BACKENDS)
    xp = _LOADED.get(name)
    if xp is None:
        try:
            xp = _load(name)
        except ImportError as exc:
            raise ImportError(
                f"Backend {name!r} is not installed: pip install {_PIP_NAMES[name]} "
                f"(or the xpnet[{name}] extra)."
            ) from exc
        _LOADED[name] = xp
    return xp


def available_backends() -> list[str]:
    """Return the backends that are installed and usable here.

    ``cupy`` is listed only when a CUDA device is present.

    Examples
    --------
    >>> import xpnet as xn
    >>> "numpy" in xn.available_backends()
    True
    """
    found = []
    for name in BACKENDS:
        try:
            _namespace_for(name)
        except (ImportError, RuntimeError):
            continue
        found.append(name)
    return found


def _library_version(name: str) -> str:
    module = {"array_api_strict": "array_api_strict"}.get(name, name)
    return str(getattr(importlib.import_module(module), "__version__", "?"))


def _devices(name: str) -> list[str]:
    if name == "numpy":
        return ["cpu"]
    if name == "array_api_strict":
        return ["CPU_DEVICE", "device1", "device2"]
    if name == "torch":
        import torch

        found = ["cpu"]
        if torch.cuda.is_available():
            found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
        return found
    if name == "jax":
        import jax

        return [str(d) for d in jax.devices()]
    import cupy

    return [f"cuda:{i}" for i in range(cupy.cuda.runtime.getDeviceCount())]


def describe_backends() -> list[dict[str, Any]]:
    """For ``xpnet info``: each backend with its library version and devices,
    or the reason it cannot be used here."""
    rows = []
    for name in BACKENDS:
        try:
            _namespace_for(name)
            rows.append(
                {"name": name, "version": _library_version(name), "devices": _devices(name)}
            )
        except (ImportError, RuntimeError) as exc:
            rows.append({"name": name, "unavailable": str(exc).split(";")[0]})
    return rows


# array_namespace() inspects every argument on every call; kernels call this
# once per invocation, so cache the answer per array type.
_NAMESPACE_BY_TYPE: dict[type, Namespace] = {}
_SCALARS = (int, float, bool, complex)


def namespace(*arrays: Any) -> Namespace:
    """Return the array API namespace shared by `arrays`.

    Python scalars and ``None`` are ignored. Arrays of two libraries raise
    TypeError naming both.
    """
    xp = None
    for a in arrays:
        if a is None or isinstance(a, _SCALARS):
            continue
        kind = type(a)
        ns = _NAMESPACE_BY_TYPE.get(kind)
        if ns is None:
            try:
                ns = array_api_compat.array_namespace(a)
            except TypeError:
                raise TypeError(
                    f"expected an array of a supported library, got {kind.__name__}"
                ) from None
            _NAMESPACE_BY_TYPE[kind] = ns
        if xp is None:
            xp = ns
        elif ns is not xp:
            raise TypeError(
                "arrays of different libraries cannot be mixed: "
                f"{backend_name(xp)} and {backend_name(ns)}; move them to one "
                "backend first (xpnet.to_numpy, then the model's backend)"
            )
    if xp is None:
        raise TypeError("expected at least one array")
    return xp


_KIND_CACHE: dict[tuple[int, Any, str], bool] = {}


def isdtype(xp: Namespace, dtype: DType, kind: str) -> bool:
    """``xp.isdtype(dtype, kind)``, remembered: kernels ask it on every call
    and NumPy answers it slowly."""
    key = (id(xp), dtype, kind)
    found = _KIND_CACHE.get(key)
    if found is None:
        found = _KIND_CACHE[key] = bool(xp.isdtype(dtype, kind))
    return found


def backend_name(xp: Namespace) -> str:
    """Return the xpnet name (``"numpy"``, ``"torch"``, ...) of namespace `xp`."""
    if array_api_compat.is_numpy_namespace(xp):
        return "numpy"
    if array_api_compat.is_torch_namespace(xp):
        return "torch"
    if array_api_compat.is_jax_namespace(xp):
        return "jax"
    if array_api_compat.is_cupy_namespace(xp):
        return "cupy"
    if array_api_compat.is_array_api_strict_namespace(xp):
        return "array_api_strict"
    return getattr(xp, "__name__", repr(xp))


def device_of(x: Array) -> Device:
    """Return the device that array `x` lives on."""
    return array_api_compat.device(x)


def backend_of(x: Array) -> Backend:
    """The :class:`Backend` (library and device) that array `x` lives on."""
    xp = namespace(x)
    return Backend(backend_name(xp), xp, device_of(x))


_WRITEABLE_BY_TYPE: dict[type, bool] = {}


def is_writeable(x: Array) -> bool:
    """Whether `x` may be updated in place (False for JAX arrays).

    Decided once per array type: it is asked for xpnet's own parameters,
    gradients and optimizer state on every step, which are never read-only
    views.
    """
    kind = type(x)
    found = _WRITEABLE_BY_TYPE.get(kind)
    if found is None:
        found = _WRITEABLE_BY_TYPE[kind] = bool(array_api_compat.is_writeable_array(x))
    return found


def reduce_sum(xp: Namespace, x: Array, axis: int, keepdims: bool = False) -> Array:
    """``xp.sum`` for the per-step kernels; on NumPy the ufunc's own reduce,
    which skips the generic wrapper (a few microseconds a call at small sizes)."""
    if type(x) is np.ndarray:
        return np.add.reduce(x, axis=axis, keepdims=keepdims)
    return xp.sum(x, axis=axis, keepdims=keepdims)


def reduce_max(xp: Namespace, x: Array, axis: int, keepdims: bool = False) -> Array:
    """``xp.max``, with the same NumPy shortcut as :func:`reduce_sum`."""
    if type(x) is np.ndarray:
        return np.maximum.reduce(x, axis=axis, keepdims=keepdims)
    return xp.max(x, axis=axis, keepdims=keepdims)


def affine(x: Array, w: Array, b: Array | None) -> Array:
    """``x @ w + b`` in one pass where the library has it (PyTorch's addmm),
    else the product plus an in-place bias add on the fresh result."""
    if b is None:
        return x @ w
    if array_api_compat.is_torch_array(x):
        import torch

        return torch.addmm(b, x, w)
    z = x @ w
    if is_writeable(z):
        z += b
        return z
    return z + b


def add_scaled_(y: Array, alpha: float, x: Array) -> Array:
    """``y += alpha * x`` in place, for writable `y`; `x` may be overwritten
    (NumPy and CuPy scale it in place to avoid a temporary; PyTorch fuses)."""
    if array_api_compat.is_torch_array(y):
        return y.add_(x, alpha=alpha)
    x *= alpha
    y += x
    return y


def relu_(xp: Namespace, z: Array) -> Array:
    """``max(z, 0)`` written over `z` where the library allows it (saves one
    activation-sized array per ReLU layer); a new array on JAX."""
    if type(z) is np.ndarray:
        return np.maximum(z, 0.0, out=z)
    if array_api_compat.is_torch_array(z):
        return z.clamp_(min=0)
    if array_api_compat.is_cupy_array(z):
        import cupy

        return cupy.maximum(z, 0.0, out=z)
    return xp.maximum(z, 0.0)


def relu_backward_(xp: Namespace, dy: Array, y: Array) -> Array:
    """``where(y > 0, dy, 0)``, written over `dy` where the library allows it."""
    if type(dy) is np.ndarray:
        return np.multiply(dy, y > 0, out=dy)
    if array_api_compat.is_torch_array(dy):
        import torch

        # autograd's own ReLU backward, written over dy: one pass, no mask
        return torch.ops.aten.threshold_backward.grad_input(dy, y, 0, grad_input=dy)
    if array_api_compat.is_cupy_array(dy):
        import cupy

        return cupy.multiply(dy, y > 0, out=dy)
    return xp.where(y > 0, dy, 0.0)


def matmul(a: Array, b: Array, out: Array | None = None) -> Array:
    """``a @ b``, written into `out` when given and the library can (NumPy,
    CuPy, PyTorch), so a gradient buffer is reused instead of reallocated."""
    if out is None or not is_writeable(out) or out.shape != (a.shape[0], b.shape[1]):
        return a @ b
    if type(out) is np.ndarray:
        return np.matmul(a, b, out=out)
    if array_api_compat.is_torch_array(out):
        import torch

        return torch.matmul(a, b, out=out)
    if array_api_compat.is_cupy_array(out):
        import cupy

        return cupy.matmul(a, b, out=out)
    return a @ b


# --------------------------------------------------------------------------
# Devices
# --------------------------------------------------------------------------


def _resolve_device(name: str, device: Any) -> Device:
    """Turn the user's `device` (None, a string, an int or a device object)
    into the device object of backend `name`."""
    if name == "numpy":
        if device not in (None, "cpu"):
            raise ValueError(f"the numpy backend has only device 'cpu', got device={device!r}")
        return "cpu"
    if name == "array_api_strict":
        import array_api_strict as strict

        if device is None:
            return strict.Device()
        if isinstance(device, strict.Device):
            return device
        try:
            return strict.Device(str(device))
        except ValueError:
            raise ValueError(
                f"unknown array_api_strict device {device!r}; valid: 'CPU_DEVICE', "
                "'device1', 'device2'"
            ) from None
    if name == "torch":
        import torch

        if device is None:
            return torch.get_default_device()
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError):
            raise ValueError(f"unknown torch device {device!r}, e.g. 'cpu' or 'cuda:0'") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"torch device {device!r} requested but CUDA is not available")
        return dev
    if name == "jax":
        import jax

        if device is None:
            return jax.devices()[0]
        if isinstance(device, str):
            platform, _, index = device.partition(":")
            try:
                return jax.devices(platform)[int(index or 0)]
            except (RuntimeError, IndexError, ValueError):
                raise ValueError(
                    f"unknown jax device {device!r}; available: {jax.devices()}"
                ) from None
        return device
    if name == "cupy":
        import cupy

        if device is None:
            return cupy.cuda.Device()
        if isinstance(device, str):
            kind, _, index = device.partition(":")
            if kind not in ("cuda", "gpu"):
                raise ValueError(f"unknown cupy device {device!r}, e.g. 'cuda:0'")
            device = int(index or 0)
        if isinstance(device, int):
            if not 0 <= device < cupy.cuda.runtime.getDeviceCount():
                raise ValueError(f"no CUDA device {device}")
            return cupy.cuda.Device(device)
        return device
    raise unknown_name_error("backend", name, BACKENDS)


# --------------------------------------------------------------------------
# The current backend
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    """A backend and device: where a model's arrays live.

    Attributes
    ----------
    name : str
        One of :data:`BACKENDS`.
    xp : module
        The array API namespace.
    device : object
        The library's device object.
    """

    name: str
    xp: Namespace
    device: Device

    def __repr__(self) -> str:
        return f"Backend({self.name!r}, device={self.device!r})"


def get_backend(name: str | Namespace | None = None, device: Any = None) -> Backend:
    """Resolve a backend name (or namespace) and device into a :class:`Backend`.

    With ``name=None`` this is the default backend: the one set by
    :func:`set_backend` / :func:`backend`, else ``$XPNET_BACKEND``, else numpy.
    """
    if name is None:
        current = default_backend()
        if current is not None and device is None:
            return current
        name = current.name if current is not None else "numpy"
    if isinstance(name, ModuleType):
        name = backend_name(name)
    xp = _namespace_for(name)
    return Backend(name, xp, _resolve_device(name, device))


_CURRENT: contextvars.ContextVar[Backend | None] = contextvars.ContextVar(
    "xpnet_backend", default=None
)


def default_backend() -> Backend | None:
    """The backend chosen by the user, or None when none was chosen.

    :func:`set_backend` / :func:`backend` take precedence over the
    ``XPNET_BACKEND`` environment variable (``name`` or ``name:device``).
    """
    current = _CURRENT.get()
    if current is not None:
        return current
    env = os.environ.get("XPNET_BACKEND")
    if env:
        name, _, device = env.partition(":")
        return get_backend(name, device or None)
    return None


def set_backend(name: str, device: Any = None) -> Backend:
    """Make `name` (on `device`) the default backend and return it.

    Examples
    --------
    >>> import xpnet as xn
    >>> xn.set_backend("numpy")
    Backend('numpy', device='cpu')
    """
    if name is None:
        _CURRENT.set(None)
        return get_backend()
    chosen = get_backend(name, device)
    _CURRENT.set(chosen)
    return chosen


@contextlib.contextmanager
def backend(name: str, device: Any = None) -> Iterator[Backend]:
    """Use `name` (on `device`) as the default backend inside a ``with`` block.

    Examples
    --------
    >>> import xpnet as xn
    >>> with xn.backend("numpy") as b:
    ...     b.name
    'numpy'
    """
    token = _CURRENT.set(get_backend(name, device))
    try:
        yield _CURRENT.get()
    finally:
        _CURRENT.reset(token)


# --------------------------------------------------------------------------
# Dtypes
# --------------------------------------------------------------------------


def _jax_x64_enabled() -> bool:
    import jax

    return bool(jax.config.jax_enable_x64)


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
    if array_api_compat.is_jax_namespace(xp) and name == "float64" and not _jax_x64_enabled():
        raise TypeError(
            "float64 on the jax backend needs 64-bit mode: call "
            "jax.config.update('jax_enable_x64', True) at startup or set "
            "JAX_ENABLE_X64=1 in the environment"
        )
    if name == "bfloat16" and array_api_compat.is_numpy_namespace(xp):
        raise TypeError("numpy has no bfloat16; use float16, float32 or float64")
    try:
        return getattr(xp, name)
    except AttributeError:
        raise TypeError(f"backend {backend_name(xp)} has no dtype {name}") from None


def dtype_name(dtype: DType) -> str:
    """Return the plain name (``"float32"``) of a dtype of any backend."""
    if isinstance(dtype, str):
        return dtype
    if isinstance(dtype, type | np.dtype):  # numpy, cupy and jax dtypes
        return np.dtype(dtype).name
    return str(dtype).rsplit(".", 1)[-1]  # torch.float32, array_api_strict.float32


# --------------------------------------------------------------------------
# Moving data
# --------------------------------------------------------------------------


def is_host_data(x: Any) -> bool:
    """Whether `x` is host data: a NumPy array or scalar, a list/tuple, or a
    Python number."""
    return isinstance(x, np.ndarray | np.generic | list | tuple | int | float | bool)


def is_device_array(x: Any) -> bool:
    """Whether `x` is an array of a device library (anything array-API but NumPy)."""
    return not isinstance(x, np.ndarray | np.generic) and array_api_compat.is_array_api_obj(x)


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
    if array_api_compat.is_torch_array(x):
        return x.detach().cpu().resolve_conj().numpy()
    if array_api_compat.is_cupy_array(x):
        return x.get()
    if type(x).__module__.startswith("array_api_strict"):
        # Non-default strict devices refuse __array__, like a GPU would.
        import array_api_strict as strict

        return np.asarray(x.to_device(strict.Device()))
    return np.asarray(x)


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


def copy_array(x: Array) -> Array:
    """An independent copy of array `x` on its own device."""
    return namespace(x).asarray(x, copy=True)


def is_host_rng(x: Any) -> bool:
    """Whether `x` is one of the host random generators xpnet draws from."""
    return isinstance(x, np.random.Generator)


def asarray(
    data: Any,
    target: Backend,
    dtype: str | DType | None = None,
    *,
    copy: bool = False,
) -> Array:
    """Move host data (NumPy array, list, scalar) to `target` in one transfer.

    Parameters
    ----------
    data : array_like
        Host data. Arrays of a device library are refused: convert them
        explicitly with :func:`to_numpy` first.
    target : Backend
        Where the array should live.
    dtype : str or dtype, optional
        Name such as ``"float32"``, or a dtype of any library. None keeps
        the data's dtype (after NumPy's conversion of lists).
    copy : bool
        Guarantee the result does not share memory with `data`.
    """
    if not isinstance(data, np.ndarray | np.generic) and array_api_compat.is_array_api_obj(data):
        raise TypeError(
            f"expected host data (numpy or lists), got an array of "
            f"{backend_name(namespace(data))}; use xpnet.to_numpy() first"
        )
    xp = target.xp
    host = np.asarray(data)
    name = None
    if dtype is not None:
        name = dtype if isinstance(dtype, str) else dtype_name(dtype)
        if name in FLOAT_DTYPES:
            float_dtype(xp, name)  # refuses float64 on JAX without x64
        # NumPy has no bfloat16: cross on float32, cast on the device.
        host = host.astype(np.float32 if name == "bfloat16" else name, copy=False)
    if target.name == "numpy":
        return host.copy() if copy else host
    if target.name == "jax":
        import jax

        if not _jax_x64_enabled():
            if host.dtype == np.float64:
                float_dtype(xp, "float64")  # raises the explanatory error
            if host.dtype == np.int64:  # labels: JAX would warn and truncate
                host = host.astype(np.int32)
        # On the CPU device_put may wrap the host buffer without copying.
        out = jax.device_put(host.copy() if copy else host, target.device)
    elif target.name == "torch":
        import torch

        if any(stride < 0 for stride in host.strides):  # x[::-1]: torch has no such views
            host = np.ascontiguousarray(host)
        out = torch.asarray(host, device=target.device, copy=True if copy else None)
    elif target.name == "cupy":
        with target.device:
            out = xp.asarray(host)
    else:  # array_api_strict shares memory with the host array unless told not to
        out = xp.asarray(host, device=target.device, copy=True if copy else None)
    if name == "bfloat16":
        out = xp.astype(out, xp.bfloat16)
    return out


@contextlib.contextmanager
def quiet_float_errors() -> Iterator[None]:
    """Silence NumPy's overflow/invalid warnings inside the block.

    NumPy alone warns when a computation overflows; the other backends give
    the same inf/nan silently. Training reports a diverging run through its
    loss values (and ``TerminateOnNaN``), the same way on every backend.
    """
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        yield


def synchronize(x: Any) -> None:
    """Wait until the device has finished computing `x`, an array or a list
    of arrays (for timing)."""
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


def write_npy(fileobj: Any, array: np.ndarray) -> None:
    """Write one array in NumPy's ``.npy`` format, refusing object arrays."""
    np.lib.format.write_array(fileobj, np.ascontiguousarray(array), allow_pickle=False)


def read_npy(fileobj: Any) -> np.ndarray:
    """Read one ``.npy`` array; pickled (object) payloads are refused, so
    loading an untrusted file cannot run code."""
    return np.lib.format.read_array(fileobj, allow_pickle=False)


def host_rng(seed: int | np.random.Generator | None = None) -> np.random.Generator:
    """Return a host random generator; a Generator passes through unchanged.

    All of xpnet's randomness is drawn here and moved to the device, so a
    seed means the same numbers on every backend.
    """
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)
