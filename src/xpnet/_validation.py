"""Small helpers that turn bad arguments into clear errors."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any


def unknown_name_error(kind: str, name: object, valid: Iterable[str]) -> ValueError:
    """Build the error for a name that is not one of `valid`.

    The message names the argument, suggests the closest valid name when
    there is one, and lists them all, e.g. ``Unknown activation 'rleu'. Did
    you mean 'relu'? Valid names: ...``.
    """
    valid = sorted(valid)
    message = f"Unknown {kind} {name!r}."
    close = closest_name(name, valid)
    if close is not None:
        message += f" Did you mean {close!r}?"
    message += " Valid names: " + ", ".join(repr(v) for v in valid) + "."
    return ValueError(message)


def closest_name(name: object, valid: Iterable[str]) -> str | None:
    """The valid name `name` was probably meant to be, or None.

    Compared in lower case and suggested as spelt (``'PRelu'``: ``'PReLU'``).
    A name is close when it is a typo of one (similarity ratio 0.6 or more:
    ``'aucc'`` → ``'auc'``) or the start of exactly one (``'f1'`` →
    ``'f1_score'``); an unrelated word gets no suggestion (``'nosuch'`` is
    not ``'torch'``, ratio 0.55).
    """
    if not isinstance(name, str) or not name:
        return None
    by_lower = {v.lower(): v for v in valid}
    key = name.lower()
    close = difflib.get_close_matches(key, by_lower, n=1, cutoff=0.6)
    if close:
        return by_lower[close[0]]
    starting = [v for v in by_lower if v.startswith(key)]
    return by_lower[starting[0]] if len(key) >= 2 and len(starting) == 1 else None


def check_choice(kind: str, value: object, valid: Iterable[str]) -> str:
    """Return `value` if it is one of `valid`, else raise `unknown_name_error`."""
    valid = tuple(valid)
    if not isinstance(value, str) or value not in valid:
        raise unknown_name_error(kind, value, valid)
    return value


def check_positive_int(name: str, value: Any) -> int:
    """`value` if it is an int >= 1 (not a bool), else a ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value
