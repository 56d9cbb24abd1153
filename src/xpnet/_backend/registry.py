"""Which backends xpnet knows, how each library is loaded, and which of them
are usable here.

Loading is lazy and remembered: a library is imported the first time a
backend of that name is asked for, never at ``import xpnet``.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from xpnet._backend.devices import list_devices
from xpnet._validation import check_choice, unknown_name_error

BACKENDS = ("numpy", "array_api_strict", "torch", "jax", "cupy")
"""Every backend xpnet knows, in the order :func:`available_backends` lists them."""

# Which pip package provides each backend, for "not installed" errors.
_PIP_NAMES = {
    "array_api_strict": "array-api-strict",
    "torch": "torch",
    "jax": "jax",
    "cupy": "cupy-cuda12x",
}


# --------------------------------------------------------------------------
# One loader per library
# --------------------------------------------------------------------------


def _load_numpy() -> ModuleType:
    return importlib.import_module("array_api_compat.numpy")


def _load_array_api_strict() -> ModuleType:
    return importlib.import_module("array_api_strict")


def _load_torch() -> ModuleType:
    importlib.import_module("torch")  # array_api_compat.torch imports lazily
    return importlib.import_module("array_api_compat.torch")


def _load_jax() -> ModuleType:
    return importlib.import_module("jax.numpy")


def _load_cupy() -> ModuleType:
    cupy = importlib.import_module("cupy")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA driver missing or broken
        raise RuntimeError(f"cupy is installed but CUDA is not usable: {exc}") from exc
    if count < 1:
        raise RuntimeError("cupy is installed but no CUDA device was found")
    return importlib.import_module("array_api_compat.cupy")


_LOADERS = {
    "numpy": _load_numpy,
    "array_api_strict": _load_array_api_strict,
    "torch": _load_torch,
    "jax": _load_jax,
    "cupy": _load_cupy,
}


def _load(name: str) -> ModuleType:
    """Import backend `name` and return its array API namespace.

    Raises ImportError when the library is missing and RuntimeError when it is
    installed but unusable (cupy without a CUDA device).
    """
    loader = _LOADERS.get(name)
    if loader is None:
        raise unknown_name_error("backend", name, BACKENDS)
    return loader()


_LOADED: dict[str, ModuleType] = {}


def _namespace_for(name: str) -> ModuleType:
    """The namespace of backend `name`, loaded once; a clear ImportError with
    the install command when its library is missing."""
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


# --------------------------------------------------------------------------
# What is usable here
# --------------------------------------------------------------------------


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


def library(name: str) -> ModuleType:
    """The library itself (``numpy``, ``torch``, ...), not its array API
    namespace: for code that is measured against the library written by hand
    (the benchmark references), so that this package stays the only importer.
    """
    check_choice("library", name, ("numpy", "torch", "jax", "cupy"))
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ImportError(
            f"{name} is not installed: pip install {_PIP_NAMES.get(name, name)}"
        ) from exc


def _library_version(name: str) -> str:
    return str(getattr(importlib.import_module(name), "__version__", "?"))


def describe_backends() -> list[dict[str, Any]]:
    """For ``xpnet info``: each backend with its library version and devices,
    or the reason it cannot be used here."""
    rows = []
    for name in BACKENDS:
        try:
            _namespace_for(name)
            rows.append(
                {"name": name, "version": _library_version(name), "devices": list_devices(name)}
            )
        except (ImportError, RuntimeError) as exc:
            rows.append({"name": name, "unavailable": str(exc).split(";")[0]})
    return rows
