"""Small helpers that turn bad arguments into clear errors."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any


def unknown_name_error(kind: str, name: object, valid: Iterable[str]) -> ValueError:
    """Build the error for a name that is not one of `valid`.

    The message names the argument, suggests the closest valid name when
    there is one, and lists them all, e.g. ``Unknown activation 'rleu'. Did
    you mean 'relu'? Valid names: ...``.
    """
    valid = sorted(valid)
    message = f"Unknown {kind} {name!r}."
    if isinstance(name, str):
        close = difflib.get_close_matches(name.lower(), valid, n=1, cutoff=0.5)
        if close:
            message += f" Did you mean {close[0]!r}?"
    message += " Valid names: " + ", ".join(repr(v) for v in valid) + "."
    return ValueError(message)


def check_choice(kind: str, value: object, valid: Iterable[str]) -> str:
    """Return `value` if it is one of `valid`, else raise `unknown_name_error`."""
    valid = tuple(valid)
    if not isinstance(value, str) or value not in valid:
        raise unknown_name_error(kind, value, valid)
    return value


def resolve(
    kind: str,
    identifier: Any,
    base: type,
    by_name: Mapping[str, type],
    aliases: Mapping[str, str] | None = None,
) -> Any:
    """Keras-style ``get``: an instance of `base` passes through, a config dict
    ``{"class_name": ..., "config": {...}}`` is rebuilt, a name (any case, or
    an alias) is instantiated with its defaults; anything else is an error
    that names `kind` and, for a misspelt name, suggests the closest one."""
    aliases = aliases or {}
    if isinstance(identifier, base):
        return identifier
    if isinstance(identifier, dict):
        by_class = {cls.__name__: cls for cls in by_name.values()}
        cls = by_class.get(identifier.get("class_name", ""))
        if cls is None:
            raise unknown_name_error(kind, identifier.get("class_name"), by_class)
        config = identifier.get("config", {})
        maker = getattr(cls, "from_config", None)
        return maker(config) if maker is not None else cls(**config)
    if not isinstance(identifier, str):
        raise TypeError(
            f"{kind} must be a name or a {base.__name__} instance, got {type(identifier).__name__}"
        )
    key = identifier.lower()
    key = aliases.get(key, key)
    if key not in by_name:
        raise unknown_name_error(kind, identifier, [*by_name, *aliases])
    return by_name[key]()
