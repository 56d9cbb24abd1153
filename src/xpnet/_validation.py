"""Small helpers that turn bad arguments into clear errors."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def unknown_name_error(kind: str, name: object, valid: Iterable[str]) -> ValueError:
    """Build the error for a name that is not one of `valid`.

    The message names the argument, suggests the closest valid name when
    there is one, and lists them all, e.g. ``Unknown activation 'rleu'. Did
    you mean 'relu'? Valid names: ...``.
    """
    valid = sorted(valid)
    message = f"Unknown {kind} {name!r}."
    if isinstance(name, str):  # compared in lower case, suggested as spelt ('PRelu': 'PReLU')
        by_lower = {v.lower(): v for v in valid}
        close = difflib.get_close_matches(name.lower(), by_lower, n=1, cutoff=0.5)
        if close:
            message += f" Did you mean {by_lower[close[0]]!r}?"
    message += " Valid names: " + ", ".join(repr(v) for v in valid) + "."
    return ValueError(message)


def check_choice(kind: str, value: object, valid: Iterable[str]) -> str:
    """Return `value` if it is one of `valid`, else raise `unknown_name_error`."""
    valid = tuple(valid)
    if not isinstance(value, str) or value not in valid:
        raise unknown_name_error(kind, value, valid)
    return value
