"""Type aliases shared by the package.

The array API standard has no single array class, so these aliases are
``Any`` at run time; they exist to make signatures say what they mean.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, TypeAlias

Array: TypeAlias = Any
"""An array of any supported library (numpy, cupy, torch, jax, array-api-strict)."""

Namespace: TypeAlias = ModuleType
"""An array API namespace, as returned by ``array_api_compat.array_namespace``."""

Device: TypeAlias = Any
"""A device object of the array's library (``"cpu"``, ``torch.device``, ...)."""

DType: TypeAlias = Any
"""A dtype object of the array's library (``xp.float32``, ...)."""

__all__ = ["Array", "DType", "Device", "Namespace"]
