"""Benchmark parameters: backends (XPNET_BACKENDS narrows them), sizes, dtypes."""

from __future__ import annotations

import os

import pytest

from xpnet import _backend

try:
    import jax

    jax.config.update("jax_enable_x64", True)  # float64 cases on JAX
except ImportError:
    pass


def _backends():
    chosen = os.environ.get("XPNET_BACKENDS")
    names = _backend.available_backends()
    if chosen:
        names = [n for n in names if n in {c.strip() for c in chosen.split(",")}]
    return names


def pytest_generate_tests(metafunc):
    if "backend_name" in metafunc.fixturenames:
        metafunc.parametrize("backend_name", _backends())
    if "size" in metafunc.fixturenames:
        sizes = os.environ.get("XPNET_BENCH_SIZES", "S,M,L").split(",")
        metafunc.parametrize("size", [s.strip() for s in sizes])
    if "dtype" in metafunc.fixturenames:
        metafunc.parametrize("dtype", ["float32", "float64"])


@pytest.fixture
def sync_benchmark(benchmark):
    """``benchmark`` for device work: waits for the result before the clock stops."""

    def run(fn):
        return benchmark(lambda: _backend.synchronize(fn()))

    return run
