"""Saving and loading models: a zip of ``config.json`` and ``.npy`` arrays.

The format never uses pickle: the JSON says which layers to build and the
arrays are plain numbers, read with ``allow_pickle=False``, so loading an
untrusted file cannot run code. Writes are atomic: the archive is written to
a temporary file in the same folder, flushed to disk, then renamed over the
target, so a crash mid-save leaves the previous file untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from typing import Any

from xpnet import layers as _layers
from xpnet import losses as _losses
from xpnet import optimizers as _optimizers
from xpnet._backend import BACKENDS, available_backends, default_backend, read_npy, write_npy
from xpnet.model import Sequential

__all__ = ["load_model", "save_model"]

FORMAT = "xpnet-model"
VERSION = 1


def save_model(model: Sequential, path: str | os.PathLike[str]) -> None:
    """Write `model` (config, weights, compile settings, optimizer state) to `path`."""
    if not model.built:
        raise ValueError("cannot save a model that is not built yet (fit or build it first)")
    path = os.fspath(path)
    arrays: list[tuple[str, Any]] = [
        (f"params/{layer.name}/{name}", weight)
        for (layer, name), weight in zip(model._parameters(), model.get_weights(), strict=True)
    ]
    compiled = None
    if model.loss is not None and model.optimizer is not None:
        state = model.optimizer.get_state()
        compiled = {
            "loss": _losses.serialize(model.loss),
            "optimizer": _optimizers.serialize(model.optimizer),
            "metrics": [m for m in model._metric_names if isinstance(m, str)],
            "iterations": state["iterations"],
        }
        for key in sorted(state["slots"]):
            for slot, value in state["slots"][key].items():
                arrays.append((f"optimizer/{key}/{slot}", value))
    config = {
        "format": FORMAT,
        "version": VERSION,
        "backend": model.backend,
        "model": model.get_config(),
        "compile": compiled,
        "arrays": [name for name, _ in arrays],
    }
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".xpnet-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as raw:
            with zipfile.ZipFile(raw, "w", zipfile.ZIP_STORED) as archive:
                archive.writestr("config.json", json.dumps(config, indent=2))
                for i, (_, value) in enumerate(arrays):
                    with archive.open(f"arrays/{i}.npy", "w") as member:
                        write_npy(member, value)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def load_model(
    path: str | os.PathLike[str], backend: str | None = None, device: Any = None
) -> Sequential:
    """Load a model saved by :meth:`Sequential.save`.

    Parameters
    ----------
    backend : str, optional
        Where to load it. None: the default backend if one is set, else the
        backend it was saved from when that is available here, else numpy.
    device : optional
    """
    path = os.fspath(path)
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise ValueError(f"{path!r} is not an xpnet model file") from None
    with archive:
        try:
            config = json.loads(archive.read("config.json"))
        except KeyError:
            raise ValueError(f"{path!r} is not an xpnet model file (no config.json)") from None
        if config.get("format") != FORMAT:
            raise ValueError(f"{path!r} is not an xpnet model file")
        if config.get("version", 0) > VERSION:
            raise ValueError(f"{path!r} was written by a newer xpnet (format {config['version']})")
        names = config["arrays"]
        values = {}
        for i, name in enumerate(names):
            with archive.open(f"arrays/{i}.npy") as member:
                values[name] = read_npy(member)

    if backend is None and default_backend() is None:
        saved = config.get("backend")
        backend = saved if saved in BACKENDS and saved in available_backends() else "numpy"
    spec = config["model"]
    model = Sequential(
        [_layers.from_config(item["class_name"], item["config"]) for item in spec["layers"]],
        backend=backend,
        device=device,
        dtype=spec["dtype"],
        seed=spec["seed"],
        name=spec["name"],
    )
    model.build(spec["input_dim"])
    model.set_weights([values[n] for n in names if n.startswith("params/")])
    compiled = config.get("compile")
    if compiled is not None:
        model.compile(
            loss=_losses.get(compiled["loss"]),
            optimizer=_optimizers.get(compiled["optimizer"]),
            metrics=compiled["metrics"],
        )
        slots: dict[str, dict[str, Any]] = {}
        for name in names:
            if name.startswith("optimizer/"):
                key, slot = name[len("optimizer/") :].rsplit("/", 1)
                slots.setdefault(key, {})[slot] = values[name]
        model.optimizer.set_state(
            {"iterations": compiled["iterations"], "slots": slots}, model.target
        )
    return model
