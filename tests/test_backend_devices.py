"""Device resolution (``xpnet._backend.devices``): each library's ``device=``
in, its device object out; an unknown device is a ValueError that names the
valid ones, and changes nothing."""

from __future__ import annotations

import pytest

import xpnet as xn
from xpnet._backend import BACKENDS, devices


def test_numpy_has_only_the_cpu():
    assert xn.get_backend("numpy").device == "cpu"
    assert xn.get_backend("numpy", device="cpu").device == "cpu"
    for bad in ("cuda", "cuda:0", 0):
        with pytest.raises(ValueError, match="numpy backend has only device 'cpu'"):
            xn.get_backend("numpy", device=bad)
    assert devices.list_devices("numpy") == ["cpu"]


def test_array_api_strict_devices_by_name_or_object():
    strict = pytest.importorskip("array_api_strict")
    assert xn.get_backend("array_api_strict").device == strict.Device()
    assert xn.get_backend("array_api_strict", device="device1").device == strict.Device("device1")
    given = strict.Device("device2")
    assert xn.get_backend("array_api_strict", device=given).device is given
    message = "unknown array_api_strict device 'gpu7'; valid: 'CPU_DEVICE', 'device1', 'device2'"
    with pytest.raises(ValueError, match=message):
        xn.get_backend("array_api_strict", device="gpu7")
    assert devices.list_devices("array_api_strict") == ["CPU_DEVICE", "device1", "device2"]


def test_torch_devices():
    torch = pytest.importorskip("torch")
    assert xn.get_backend("torch").device == torch.get_default_device()
    assert xn.get_backend("torch", device="cpu").device == torch.device("cpu")
    assert xn.get_backend("torch", device=torch.device("cpu")).device == torch.device("cpu")
    with pytest.raises(ValueError, match="unknown torch device 'tpu9', e.g. 'cpu' or 'cuda:0'"):
        xn.get_backend("torch", device="tpu9")
    with pytest.raises(ValueError, match="unknown torch device"):
        xn.get_backend("torch", device=1.5)
    assert devices.list_devices("torch")[0] == "cpu"


def test_torch_cuda_without_cuda_is_a_value_error():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    for bad in ("cuda", "cuda:0"):
        with pytest.raises(ValueError, match="requested but CUDA is not available"):
            xn.get_backend("torch", device=bad)
    assert devices.list_devices("torch") == ["cpu"]


def test_jax_devices_by_platform_and_index():
    jax = pytest.importorskip("jax")
    first = jax.devices()[0]
    assert xn.get_backend("jax").device == first
    assert xn.get_backend("jax", device=first).device is first
    cpu = jax.devices("cpu")[0]
    assert xn.get_backend("jax", device="cpu").device == cpu
    assert xn.get_backend("jax", device="cpu:0").device == cpu
    for bad in ("cpu:99", "cpu:x", "nonesuch:0"):
        with pytest.raises(ValueError, match=rf"unknown jax device '{bad}'; available: \["):
            xn.get_backend("jax", device=bad)
    assert devices.list_devices("jax") == [str(d) for d in jax.devices()]


def test_cupy_devices():
    try:
        xn.get_backend("cupy")
    except (ImportError, RuntimeError) as exc:
        pytest.skip(f"cupy is not usable here: {exc}")
    with pytest.raises(ValueError, match="unknown cupy device 'tpu:0', e.g. 'cuda:0'"):
        xn.get_backend("cupy", device="tpu:0")
    with pytest.raises(ValueError, match="no CUDA device 999"):
        xn.get_backend("cupy", device="cuda:999")
    assert xn.get_backend("cupy", device="cuda:0").device.id == 0


def test_every_known_backend_has_a_resolver_and_a_listing():
    assert set(devices._DEVICES) == set(BACKENDS)


def test_unknown_backend_name_suggests_the_closest():
    with pytest.raises(ValueError, match="Unknown backend 'nmupy'. Did you mean 'numpy'"):
        devices._resolve_device("nmupy", None)
    with pytest.raises(ValueError, match="Unknown backend 'troch'. Did you mean 'torch'"):
        devices.list_devices("troch")


def test_a_bad_device_keeps_the_default_backend():
    chosen = xn.set_backend("numpy")
    with pytest.raises(ValueError, match="only device 'cpu'"):
        xn.set_backend("numpy", device="cuda:0")
    with pytest.raises(ValueError, match="only device 'cpu'"), xn.backend("numpy", device="gpu"):
        pass
    assert xn.get_backend() is chosen


def test_device_of_matches_the_backend(placement, make):
    assert devices.device_of(make([1.0, 2.0])) == placement.device
