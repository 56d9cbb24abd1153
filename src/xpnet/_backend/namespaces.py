"""Which library an array belongs to: its array API namespace (``xp``) and
xpnet's name for it.

Every kernel opens with ``xp = namespace(...)`` on its inputs, so the answer
is cached per array type.
"""

from __future__ import annotations

from typing import Any

import array_api_compat

from xpnet._typing import Namespace

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
