"""The :class:`Backend` value (a library and a device: where a model's arrays
live) and the user's default choice of it.

The default is, in order: :func:`set_backend` / :func:`backend` (held in a
context variable, so threads and tasks do not see each other's choice), then
``$XPNET_BACKEND``, then none (callers fall back to numpy or to the data).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from xpnet._backend.devices import _resolve_device, device_of
from xpnet._backend.namespaces import backend_name, namespace
from xpnet._backend.registry import _namespace_for
from xpnet._typing import Array, Device, Namespace


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


def backend_of(x: Array) -> Backend:
    """The :class:`Backend` (library and device) that array `x` lives on."""
    xp = namespace(x)
    return Backend(backend_name(xp), xp, device_of(x))


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
