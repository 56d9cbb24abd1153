"""The backend package: choosing backends, moving data, dtypes, randomness.

Device resolution is tested in ``test_backend_devices.py``, the per-library
fast paths in ``test_backend_fastpaths.py``.
"""

from __future__ import annotations

import ast
import pathlib

import numpy as np
import pytest

import xpnet as xn
from helpers import assert_close
from xpnet import _backend
from xpnet._backend import registry

SRC = pathlib.Path(xn.__file__).parent
BACKEND_LIBRARIES = {
    "numpy",
    "cupy",
    "torch",
    "jax",
    "jaxlib",
    "array_api_compat",
    "array_api_strict",
}


def test_only_the_backend_package_imports_array_libraries():
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if "_backend" in path.relative_to(SRC).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            offenders += [
                f"{path.name}: {n}" for n in names if n.split(".")[0] in BACKEND_LIBRARIES
            ]
    assert offenders == []


def test_available_backends_lists_numpy_first_and_only_known_names():
    found = xn.available_backends()
    assert found[0] == "numpy"
    assert set(found) <= set(_backend.BACKENDS)


@pytest.mark.parametrize("name", ["array_api_strict", "torch", "jax"])
def test_installed_backends_are_listed(name):
    pytest.importorskip(name)
    assert name in xn.available_backends()


def test_cupy_is_listed_only_with_a_cuda_device():
    try:
        import cupy

        usable = cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        usable = False
    assert ("cupy" in xn.available_backends()) == usable


def test_set_backend_and_context_manager_restore():
    assert _backend.default_backend() is None
    xn.set_backend("numpy")
    assert _backend.default_backend().name == "numpy"
    with xn.backend("array_api_strict", device="device1") as inner:
        assert inner.name == "array_api_strict"
        assert _backend.default_backend() is inner
        assert xn.get_backend().device == inner.device
    assert _backend.default_backend().name == "numpy"
    xn.set_backend(None)
    assert _backend.default_backend() is None


def test_environment_variable_sets_the_default(monkeypatch):
    pytest.importorskip("array_api_strict")
    monkeypatch.setenv("XPNET_BACKEND", "array_api_strict:device1")
    chosen = _backend.default_backend()
    assert chosen.name == "array_api_strict" and str(chosen.device).endswith("'device1')")
    xn.set_backend("numpy")  # an explicit choice wins over the environment
    assert _backend.default_backend().name == "numpy"


def test_unknown_backend_suggests_and_changes_nothing():
    xn.set_backend("numpy")
    with pytest.raises(ValueError, match="Unknown backend 'nmupy'. Did you mean 'numpy'"):
        xn.set_backend("nmupy")
    assert _backend.default_backend().name == "numpy"


def test_missing_backend_is_an_import_error_with_the_install_hint(monkeypatch):
    monkeypatch.setitem(registry._LOADED, "cupy", None)
    monkeypatch.delitem(registry._LOADED, "cupy")

    def refuse(name):
        raise ImportError("no module")

    monkeypatch.setattr(registry, "_load", refuse)
    with pytest.raises(ImportError, match="pip install cupy-cuda12x"):
        xn.set_backend("cupy")


def test_an_unusable_library_is_a_runtime_error(monkeypatch):
    monkeypatch.delitem(registry._LOADED, "cupy", raising=False)

    def no_gpu(name):
        raise RuntimeError("cupy is installed but no CUDA device was found")

    monkeypatch.setattr(registry, "_load", no_gpu)
    with pytest.raises(RuntimeError, match="no CUDA device"):
        xn.get_backend("cupy")
    assert "cupy" not in xn.available_backends()


def test_the_package_reexports_its_modules_names():
    from xpnet._backend import selection

    assert all(hasattr(_backend, name) for name in _backend.__all__)
    # the private names tests replace or reset are the modules' own objects
    assert _backend._LOADED is registry._LOADED and _backend._load is registry._load
    assert _backend._CURRENT is selection._CURRENT


def test_to_numpy_round_trip(placement, make):
    host = np.arange(6.0).reshape(2, 3)
    x = make(host)
    assert _backend.device_of(x) == placement.device
    back = xn.to_numpy(x)
    assert isinstance(back, np.ndarray)
    np.testing.assert_array_equal(back, host)


def test_asarray_casts_and_places(placement):
    x = _backend.asarray([[1, 2], [3, 4]], placement, "float32")
    assert x.dtype == placement.xp.float32
    assert _backend.device_of(x) == placement.device
    assert _backend.namespace(x) is placement.xp


def test_asarray_copy_does_not_alias(placement):
    host = np.zeros(3)
    x = _backend.asarray(host, placement, "float64", copy=True)
    host[0] = 5.0
    assert float(xn.to_numpy(x)[0]) == 0.0


def test_asarray_refuses_arrays_of_another_library(placement):
    if placement.name == "numpy":
        pytest.skip("numpy arrays are host data")
    x = _backend.asarray([1.0], placement)
    with pytest.raises(TypeError, match="expected host data"):
        _backend.asarray(x, _backend.get_backend("numpy"))


def test_namespace_rejects_mixed_libraries_and_non_arrays():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="different libraries cannot be mixed: numpy and torch"):
        _backend.namespace(np.zeros(2), torch.zeros(2))
    with pytest.raises(TypeError, match="expected an array"):
        _backend.namespace("not an array")


@pytest.mark.parametrize("name", ["float32", "float64"])
def test_float_dtype_names(name, xp):
    assert _backend.dtype_name(_backend.float_dtype(xp, name)) == name
    assert _backend.float_dtype(xp) == xp.float32  # the default


def test_non_float_dtype_is_a_type_error(xp):
    with pytest.raises(TypeError, match="dtype must be a floating dtype"):
        _backend.float_dtype(xp, "int32")


def test_jax_float64_without_x64_is_an_explained_error():
    jax = pytest.importorskip("jax")
    placement = xn.get_backend("jax")
    jax.config.update("jax_enable_x64", False)
    try:
        with pytest.raises(TypeError, match="jax_enable_x64"):
            _backend.float_dtype(placement.xp, "float64")
        with pytest.raises(TypeError, match="jax_enable_x64"):
            _backend.asarray(np.zeros(2), placement)
        labels = _backend.asarray(np.arange(3), placement)  # int64 labels become int32
        assert str(labels.dtype) == "int32"
    finally:
        jax.config.update("jax_enable_x64", True)


def test_host_rng_same_seed_same_numbers():
    a = _backend.host_rng(7).normal(size=5)
    b = _backend.host_rng(7).normal(size=5)
    np.testing.assert_array_equal(a, b)
    gen = _backend.host_rng(3)
    assert _backend.host_rng(gen) is gen


def test_is_writeable(placement, make):
    assert _backend.is_writeable(make([1.0])) == (placement.name != "jax")


def test_backend_of(placement, make):
    found = _backend.backend_of(make([1.0]))
    assert found.name == placement.name and found.device == placement.device
    assert_close(make([1.0]), [1.0])
