"""Saving and loading models: a zip of ``config.json`` and ``.npy`` arrays.

The format never uses pickle: the JSON says which layers to build and the
arrays are plain numbers, read with ``allow_pickle=False``, so loading an
untrusted file cannot run code. A damaged or malformed file is a ValueError
naming the problem, found before anything large is allocated (the checks
are in :mod:`xpnet._io_checks`). Writes are atomic (:mod:`xpnet._saving`):
a crash mid-save leaves the previous file untouched.
"""

from __future__ import annotations

import functools
import json
import os
import zipfile
from collections.abc import Callable
from typing import Any

from xpnet import _io_checks as _checks
from xpnet import layers as _layers
from xpnet import losses as _losses
from xpnet import optimizers as _optimizers
from xpnet._backend import (
    BACKENDS,
    FLOAT_DTYPES,
    available_backends,
    default_backend,
    read_npy,
)
from xpnet._io_checks import CONFIG, array_member, problem, zip_errors
from xpnet._saving import save_model
from xpnet._validation import check_choice
from xpnet.model import Sequential

__all__ = ["load_model", "save_model"]


def load_model(
    path: str | os.PathLike[str], backend: str | None = None, device: Any = None
) -> Sequential:
    """Load a model saved by :meth:`Sequential.save`.

    The whole file is checked before anything large is allocated; a damaged
    or malformed file raises ValueError naming the problem.

    Parameters
    ----------
    backend : str, optional
        Where to load it. None: the default backend if one is set, else the
        backend it was saved from when that is available here, else numpy.
    device : optional
    """
    path = os.fspath(path)
    size = os.stat(path).st_size
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError) as exc:
        raise ValueError(f"{path!r} is not an xpnet model file (unreadable as zip: {exc})") from exc
    with archive:
        _checks.check_directory(archive, path, size)
        config = _read_config(archive, path)
        names = config["arrays"]
        _checks.check_members(archive, path, len(names))
        shapes = dict(zip(names, _array_shapes(archive, names, path), strict=True))
        parts = _rebuild_parts(config, shapes, path)
        values = [_read_array(archive, i, path) for i in range(len(names))]
    return _assemble(config, parts, dict(zip(names, values, strict=True)), backend, device, path)


def _read_config(archive: zipfile.ZipFile, path: str) -> dict[str, Any]:
    if CONFIG not in archive.namelist():
        raise problem(path, f"missing member {CONFIG}")
    with zip_errors(path, CONFIG):
        raw = archive.read(CONFIG)
    try:
        config = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise problem(path, f"{CONFIG} is not valid JSON ({exc})") from exc
    _checks.check_config(config, path)
    return config


def _array_shapes(archive: zipfile.ZipFile, names: list[str], path: str) -> list[_checks.Shape]:
    """Every array's shape, from the ``.npy`` headers alone."""
    shapes = []
    for i, name in enumerate(names):
        member = array_member(i)
        with zip_errors(path, member), archive.open(member) as stream:
            info = archive.getinfo(member)
            shapes.append(_checks.npy_shape(stream, info, f"{member} ({name})", path))
    return shapes


def _read_array(archive: zipfile.ZipFile, i: int, path: str) -> Any:
    member = array_member(i)
    with zip_errors(path, member), archive.open(member) as stream:
        value = read_npy(stream)
        if stream.read(1):  # also makes zipfile check the CRC of the whole member
            raise problem(path, f"member {member} has data after its array")
    return value


def _build(path: str, what: str, make: Callable[..., Any], *args: Any) -> Any:
    """Call a constructor with settings from the file; its refusals name `what`."""
    try:
        return make(*args)
    except KeyError as exc:
        raise problem(path, f"{what}: missing setting {exc}") from exc
    except (TypeError, ValueError, OverflowError) as exc:
        raise problem(path, f"{what}: {exc}") from exc


def _rebuild_parts(
    config: dict[str, Any], shapes: dict[str, _checks.Shape], path: str
) -> dict[str, Any]:
    """Layers, loss and optimizer from the config, and the shapes of the
    arrays checked against them; nothing is built or allocated yet."""
    spec = config["model"]
    _build(path, "model['dtype']", check_choice, "dtype", spec["dtype"], FLOAT_DTYPES)
    layers = [
        _build(path, f"model['layers'][{i}] ({item['class_name']})", _layers.from_config,
               item["class_name"], item["config"])
        for i, item in enumerate(spec["layers"])
    ]  # fmt: skip
    first = layers[0].input_dim
    if first is not None and first != spec["input_dim"]:
        raise problem(
            path, f"model['input_dim'] is {spec['input_dim']} but its first layer's is {first}"
        )
    dim = spec["input_dim"]
    expected = _build(path, "model['layers']", _checks.parameter_shapes, layers, dim)
    params = {n[len("params/") :]: s for n, s in shapes.items() if n.startswith("params/")}
    _checks.check_parameters(params, expected, path)
    trainable = _checks.parameter_shapes(layers, dim, trainable_only=True)
    parts: dict[str, Any] = {"layers": layers, "loss": None, "optimizer": None}
    compiled = config["compile"]
    if compiled is not None:
        parts["loss"] = _build(path, "compile['loss']", _losses.get, compiled["loss"])
        optimizer = _build(path, "compile['optimizer']", _optimizers.get, compiled["optimizer"])
        state = {n[len("optimizer/") :]: s for n, s in shapes.items() if n.startswith("optimizer/")}
        _checks.check_optimizer_state(state, trainable, tuple(optimizer._slots), path)
        parts["optimizer"] = optimizer
    return parts


def _assemble(
    config: dict[str, Any],
    parts: dict[str, Any],
    values: dict[str, Any],
    backend: str | None,
    device: Any,
    path: str,
) -> Sequential:
    """Build the checked model on its backend and load its arrays."""
    has_state = any(name.startswith("optimizer/") for name in values)
    if backend is None and default_backend() is None:
        saved = config["backend"]
        if saved is not None or has_state:
            backend = saved if saved in BACKENDS and saved in available_backends() else "numpy"
        # else: saved before it had a backend; built on the host again, it
        # moves to the library of its first data, as the saved model would.
    spec = config["model"]
    model = Sequential(
        parts["layers"], backend=backend, device=device, dtype=spec["dtype"], seed=spec["seed"],
        name=spec["name"],
    )  # fmt: skip
    model.build(spec["input_dim"])
    model.set_weights([v for n, v in values.items() if n.startswith("params/")])
    compiled = config["compile"]
    if compiled is not None:
        options = {
            key: compiled[key] for key in ("jit_compile", "steps_per_execution") if key in compiled
        }  # files written before these existed lack them
        compile_ = functools.partial(model.compile, **options)
        _build(path, "compile", compile_, parts["loss"], parts["optimizer"], compiled["metrics"])
        slots: dict[str, dict[str, Any]] = {}
        for name, value in values.items():
            if name.startswith("optimizer/"):
                key, slot = name[len("optimizer/") :].rsplit("/", 1)
                slots.setdefault(key, {})[slot] = value
        model.optimizer.set_state(
            {"iterations": compiled["iterations"], "slots": slots},
            model.placement,
            dtype=model.dtype,
        )
    return model
