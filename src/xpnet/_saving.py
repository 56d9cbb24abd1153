"""Writing model files: a zip of ``config.json`` and ``.npy`` arrays,
written atomically. Reading them back is :mod:`xpnet.io`'s job.

The archive is written to a temporary file in the same folder, flushed to
disk, then renamed over the target, so a crash mid-save leaves the previous
file untouched. The model is read through its public methods only.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import zipfile
from typing import Any

from xpnet._backend import write_npy
from xpnet._io_checks import CONFIG, FORMAT, VERSION, array_member

__all__ = ["save_model"]


def save_model(model: Any, path: str | os.PathLike[str]) -> None:
    """Write `model` (config, weights, compile settings, optimizer state) to
    `path` atomically; :meth:`xpnet.Sequential.save` calls this."""
    if not model.built:
        raise ValueError("cannot save a model that is not built yet (fit or build it first)")
    path = os.fspath(path)
    names = [f"params/{layer.name}/{name}" for layer in model.layers for name in layer.params]
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
    fd, tmp = _create_temporary(os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(fd, "wb") as raw:
            with zipfile.ZipFile(raw, "w", zipfile.ZIP_STORED) as archive:
                archive.writestr(CONFIG, json.dumps(config, indent=2))
                for i, (_, value) in enumerate(arrays):
                    with archive.open(array_member(i), "w") as member:
                        write_npy(member, value)
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
