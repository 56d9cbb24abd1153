"""Devices: what each library calls its devices, and turning the user's
``device=`` into the library's device object.

Each library has one resolver (``None``, a string, an int or a device
object in; the device object out, or a ValueError naming the valid devices)
and one lister (for ``xpnet info``), side by side below.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import array_api_compat

from xpnet._typing import Array, Device
from xpnet._validation import unknown_name_error

# --------------------------------------------------------------------------
# numpy: the host, always "cpu"
# --------------------------------------------------------------------------


def _numpy_device(device: Any) -> Device:
    if device not in (None, "cpu"):
        raise ValueError(f"the numpy backend has only device 'cpu', got device={device!r}")
    return "cpu"


def _numpy_devices() -> list[str]:
    return ["cpu"]


# --------------------------------------------------------------------------
# array_api_strict: named devices that behave like a GPU
# --------------------------------------------------------------------------


def _strict_device(device: Any) -> Device:
    import array_api_strict as strict

    if device is None:
        return strict.Device()
    if isinstance(device, strict.Device):
        return device
    try:
        return strict.Device(str(device))
    except ValueError:
        raise ValueError(
            f"unknown array_api_strict device {device!r}; valid: 'CPU_DEVICE', 'device1', 'device2'"
        ) from None


def _strict_devices() -> list[str]:
    return ["CPU_DEVICE", "device1", "device2"]


# --------------------------------------------------------------------------
# torch: torch.device, "cpu" or "cuda:N"
# --------------------------------------------------------------------------


def _torch_device(device: Any) -> Device:
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


def _torch_devices() -> list[str]:
    import torch

    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return found


# --------------------------------------------------------------------------
# jax: "platform:index" strings name jax.devices(platform)[index]
# --------------------------------------------------------------------------


def _jax_device(device: Any) -> Device:
    import jax

    if device is None:
        return jax.devices()[0]
    if not isinstance(device, str):
        return device
    platform, _, index = device.partition(":")
    try:
        return jax.devices(platform)[int(index or 0)]
    except (RuntimeError, IndexError, ValueError):
        raise ValueError(f"unknown jax device {device!r}; available: {jax.devices()}") from None


def _jax_devices() -> list[str]:
    import jax

    return [str(d) for d in jax.devices()]


# --------------------------------------------------------------------------
# cupy: CUDA devices by index, "cuda:N" or "gpu:N"
# --------------------------------------------------------------------------


def _cupy_device(device: Any) -> Device:
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


def _cupy_devices() -> list[str]:
    import cupy

    return [f"cuda:{i}" for i in range(cupy.cuda.runtime.getDeviceCount())]


# --------------------------------------------------------------------------
# The table, and the functions the rest of _backend calls
# --------------------------------------------------------------------------

_DEVICES: dict[str, tuple[Callable[[Any], Device], Callable[[], list[str]]]] = {
    "numpy": (_numpy_device, _numpy_devices),
    "array_api_strict": (_strict_device, _strict_devices),
    "torch": (_torch_device, _torch_devices),
    "jax": (_jax_device, _jax_devices),
    "cupy": (_cupy_device, _cupy_devices),
}


def _library(name: str) -> tuple[Callable[[Any], Device], Callable[[], list[str]]]:
    found = _DEVICES.get(name)
    if found is None:
        raise unknown_name_error("backend", name, _DEVICES)
    return found


def _resolve_device(name: str, device: Any) -> Device:
    """Turn the user's `device` (None, a string, an int or a device object)
    into the device object of backend `name`."""
    resolve, _ = _library(name)
    return resolve(device)


def list_devices(name: str) -> list[str]:
    """The devices of backend `name` on this machine, as strings."""
    _, listing = _library(name)
    return listing()


def device_of(x: Array) -> Device:
    """Return the device that array `x` lives on."""
    return array_api_compat.device(x)
