"""Shared fixtures: the backend matrix every test runs over.

``xp`` is parametrized over numpy, array_api_strict (default device and the
GPU-like ``Device("device1")``), torch (CPU), jax (with 64-bit mode) and cupy
(with a CUDA device). A backend that is not installed or not usable skips
with the reason. ``XPNET_BACKENDS=numpy,torch`` narrows the list (the nox
sessions use it).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from xpnet import _backend

try:  # float64 gradient checks need JAX's 64-bit mode; set before any array exists
    import jax

    jax.config.update("jax_enable_x64", True)
except ImportError:
    pass

# The backend fixtures are session-scoped; the one function-scoped autouse
# fixture below only resets global state, so Hypothesis may reuse it.
settings.register_profile("xpnet", suppress_health_check=[HealthCheck.function_scoped_fixture])
settings.load_profile("xpnet")

# (fixture id, backend name, device)
MATRIX = [
    ("numpy", "numpy", None),
    ("array_api_strict", "array_api_strict", None),
    ("array_api_strict-device1", "array_api_strict", "device1"),
    ("torch", "torch", None),
    ("jax", "jax", None),
    ("cupy", "cupy", None),
]


def _selected() -> set[str] | None:
    names = os.environ.get("XPNET_BACKENDS", "").strip()
    return {n.strip() for n in names.split(",") if n.strip()} or None


@pytest.fixture(scope="session", params=MATRIX, ids=[m[0] for m in MATRIX])
def placement(request) -> _backend.Backend:
    """The backend and device under test."""
    case_id, name, device = request.param
    selected = _selected()
    if selected is not None and name not in selected and case_id not in selected:
        pytest.skip(f"{case_id} not selected by XPNET_BACKENDS")
    try:
        return _backend.get_backend(name, device)
    except ImportError as exc:
        pytest.skip(f"{name} is not installed: {exc}")
    except RuntimeError as exc:
        pytest.skip(f"{name} is not usable here: {exc}")


@pytest.fixture(scope="session")
def xp(placement):
    """The array API namespace under test."""
    return placement.xp


@pytest.fixture(scope="session")
def device(placement):
    """The device under test (``device1`` for the GPU-like strict case)."""
    return placement.device


@pytest.fixture(scope="session")
def make(placement):
    """``make(host_data, dtype="float64")``: move host data to the backend under test."""

    def make(data, dtype="float64"):
        return _backend.asarray(np.asarray(data), placement, dtype)

    return make


@pytest.fixture(autouse=True)
def _no_default_backend():
    """Tests start with no default backend chosen, whatever the last one did."""
    token = _backend._CURRENT.set(None)
    yield
    _backend._CURRENT.reset(token)
