"""Writing model and weights files atomically, and reading weights files.

A model file (:meth:`~xpnet.Sequential.save`) is a zip of ``config.json``
and ``.npy`` arrays; reading it back is :mod:`xpnet.io`'s job. A weights
file (:meth:`~xpnet.Sequential.save_weights`) is an uncompressed ``.npz``:
one ``<layer>/<weight>.npy`` member per weight, in ``get_weights`` order,
so ``numpy.load(path)["dense/kernel"]`` reads it too (never pickle).

Either archive is written to a temporary file in the same folder, flushed
to disk, then renamed over the target, so a crash mid-save leaves the
previous file untouched. The model is read through its public methods only.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import zipfile
from collections import Counter
from collections.abc import Callable
from typing import Any, BinaryIO

from xpnet import _io_checks as _checks
from xpnet._backend import read_npy, write_npy
from xpnet._io_checks import CONFIG, FORMAT, VERSION, array_member

__all__ = ["load_weights", "save_model", "save_weights"]

_NPY = ".npy"


def weight_keys(model: Any) -> list[str]:
    """``"layer/weight"`` for every weight of `model`, in ``get_weights`` order."""
    return [f"{layer.name}/{name}" for layer in model.layers for name in layer.weight_names]


def save_model(model: Any, path: str | os.PathLike[str]) -> None:
    """Write `model` (config, weights, compile settings, optimizer state) to
    `path` atomically; :meth:`xpnet.Sequential.save` calls this."""
    if not model.built:
        raise ValueError("cannot save a model that is not built yet (fit or build it first)")
    names = [f"params/{key}" for key in weight_keys(model)]
    arrays: list[tuple[str, Any]] = list(zip(names, model.get_weights(), strict=True))
    compiled = model.get_compile_config()
    if compiled is not None:
        state = model.optimizer.get_state()
        compiled["iterations"] = state["iterations"]
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

    def write(archive: zipfile.ZipFile) -> None:
        archive.writestr(CONFIG, json.dumps(config, indent=2))
        for i, (_, value) in enumerate(arrays):
            with archive.open(array_member(i), "w") as member:
                write_npy(member, value)

    _write_atomically(os.fspath(path), write)


def save_weights(model: Any, path: str | os.PathLike[str]) -> None:
    """Write every weight of `model` to `path` atomically (an ``.npz``)."""
    if not model.built:
        raise ValueError("cannot save the weights of a model that is not built yet")
    keys = weight_keys(model)
    twice = sorted(key for key, n in Counter(keys).items() if n > 1)
    if twice:
        raise ValueError(f"weights {twice} appear twice: give the layers unique names")
    arrays = list(zip(keys, model.get_weights(), strict=True))

    def write(archive: zipfile.ZipFile) -> None:
        for key, value in arrays:
            with archive.open(key + _NPY, "w") as member:
                write_npy(member, value)

    _write_atomically(os.fspath(path), write)


def load_weights(model: Any, path: str | os.PathLike[str]) -> None:
    """Check the weights file `path` against `model` in full, then load it.

    A file that is damaged, or whose names, count or shapes are not the
    model's, is a ValueError raised before any weight changes.
    """
    if not model.built:
        raise ValueError(
            "the model is not built yet: build it (or give it its input size) before load_weights"
        )
    expected = {
        f"{layer.name}/{name}": tuple(int(s) for s in layer.weight(name).shape)
        for layer in model.layers
        for name in layer.weight_names
    }
    model.set_weights(_read_weights(os.fspath(path), expected))


def _read_weights(path: str, expected: dict[str, _checks.Shape]) -> list[Any]:
    size = os.stat(path).st_size
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError) as exc:
        raise ValueError(
            f"{path!r} is not an xpnet weights file (unreadable as zip: {exc})"
        ) from exc
    kind = "weights"
    with archive:
        _checks.check_directory(archive, path, size, kind=kind)
        infos = archive.infolist()
        others = [i.filename for i in infos if not i.filename.endswith(_NPY)]
        if others:
            raise _checks.problem(path, f"member(s) {others} are not .npy arrays", kind)
        found = {}
        for info in infos:
            key = info.filename[: -len(_NPY)]
            with _checks.zip_errors(path, info.filename, kind), archive.open(info) as stream:
                found[key] = _checks.npy_shape(stream, info, info.filename, path, kind)
        _checks.check_weights(found, expected, path)
        values = []
        for info in infos:
            with _checks.zip_errors(path, info.filename, kind), archive.open(info) as stream:
                values.append(read_npy(stream))
                if stream.read(1):  # also makes zipfile check the CRC of the whole member
                    raise _checks.problem(path, f"{info.filename} has data after its array", kind)
    return values


def _write_atomically(path: str, write: Callable[[zipfile.ZipFile], None]) -> None:
    """Let `write` fill a new uncompressed zip, then rename it over `path`."""

    def write_zip(raw: BinaryIO) -> None:
        with zipfile.ZipFile(raw, "w", zipfile.ZIP_STORED) as archive:
            write(archive)

    write_atomically(path, write_zip)


def write_atomically(path: str, write: Callable[[BinaryIO], None]) -> None:
    """Let `write` fill a new file beside `path`, then rename it over `path`:
    a crash or an error leaves any previous file whole, and no partial one."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write {path}: the folder {folder} does not exist")
    fd, tmp = _create_temporary(folder)
    try:
        with os.fdopen(fd, "wb") as raw:
            write(raw)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def _create_temporary(folder: str) -> tuple[int, str]:
    """Create a new, empty temporary file in `folder`; return ``(fd, path)``.

    Unlike ``tempfile.mkstemp`` (always 0600), the file is created with mode
    0666, which the kernel narrows by the user's umask, so the saved model
    gets the permissions any other new file would (typically 0644). Reading
    the umask would mean setting it, which races with other threads.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = os.path.join(folder, f".xpnet-{secrets.token_hex(8)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:  # a name already taken: draw another
            continue
