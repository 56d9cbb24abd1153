"""One configuration protocol and one ``serialize`` / ``get`` for every family.

Activations, initializers, losses, optimizers, schedules, metrics and layers
all derive from :class:`Configurable`: ``get_config()`` lists the
constructor arguments (JSON-ready), ``from_config(config)`` rebuilds the
object (``cls(**config)`` unless a class needs more), and ``repr`` shows the
config, e.g. ``SGD(learning_rate=0.1, momentum=0.9, nesterov=False)``.

:func:`serialize` wraps a config Keras's way, ``{"class_name": ...,
"config": {...}}``, and each family's :class:`Registry` turns that, a name
(any case, or an alias) or an instance into an instance.

Examples
--------
>>> from xpnet import losses
>>> loss = losses.get("mse")
>>> loss
MeanSquaredError(reduction='mean')
>>> losses.serialize(loss)
{'class_name': 'MeanSquaredError', 'config': {'reduction': 'mean'}}
>>> losses.get(losses.serialize(loss))
MeanSquaredError(reduction='mean')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Generic, TypeVar

from xpnet._validation import unknown_name_error

__all__ = ["ConfigValue", "Configurable", "Registry", "serialize"]

T = TypeVar("T", bound="Configurable")


class Configurable:
    """Base of every object a model file stores by its settings."""

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this object (JSON-ready)."""
        return {}

    @classmethod
    def from_config(cls: type[T], config: Mapping[str, Any]) -> T:
        """Rebuild an object from :meth:`get_config` output."""
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class ConfigValue(Configurable):
    """A configurable that is a value, not state (activations, initializers):
    equal to another of the same class and config."""

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]


def serialize(obj: Configurable) -> dict[str, Any]:
    """``{"class_name": ..., "config": {...}}``: what the family's ``get`` turns back into `obj`."""
    return {"class_name": type(obj).__name__, "config": obj.get_config()}


class Registry(Generic[T]):
    """One family's names: :meth:`get` turns a name, a config dict or an
    instance into an instance.

    Parameters
    ----------
    kind : str
        What the family is called in errors (``"loss"``, ``"layer"``).
    base : type
        Instances of it pass through :meth:`get`.
    by_name : mapping of str to class
        The names :meth:`get` accepts, in any case.
    aliases : mapping of str to str, optional
        Other names for entries of `by_name`.
    also : iterable of str
        Names the family's own ``get`` resolves before the registry (the
        metrics' ``"accuracy"``), offered as suggestions all the same.
    """

    def __init__(
        self,
        kind: str,
        base: type[T],
        by_name: Mapping[str, type[T]],
        aliases: Mapping[str, str] | None = None,
        also: Iterable[str] = (),
    ) -> None:
        aliases = aliases or {}
        self.kind, self.base = kind, base
        self.by_name = dict(by_name)
        self._by_key = {name.lower(): cls for name, cls in by_name.items()}
        self._by_key.update({alias.lower(): by_name[name] for alias, name in aliases.items()})
        self._by_class = {cls.__name__: cls for cls in by_name.values()}
        self._names = [*by_name, *aliases, *also]

    def get(self, identifier: Any) -> T:
        """Keras-style ``get``: an instance of the base passes through, a
        config dict ``{"class_name": ..., "config": {...}}`` is rebuilt, a
        name is made with its defaults; anything else is an error naming the
        family and, for a misspelt name, suggesting the closest one."""
        if isinstance(identifier, self.base):
            return identifier
        if isinstance(identifier, dict):
            return self.from_config(identifier.get("class_name"), identifier.get("config", {}))
        if not isinstance(identifier, str):
            raise TypeError(
                f"{self.kind} must be a name, a config dict or a {self.base.__name__}, "
                f"got {type(identifier).__name__}"
            )
        cls = self._by_key.get(identifier.lower())
        if cls is None:
            raise unknown_name_error(self.kind, identifier, self._names)
        try:
            return cls()
        except TypeError as exc:  # a class whose constructor needs arguments
            raise TypeError(
                f"{self.kind} {identifier!r} needs arguments ({exc}); pass an instance or a "
                f"config dict {{'class_name': {cls.__name__!r}, 'config': {{...}}}}"
            ) from None

    def from_config(self, class_name: Any, config: Mapping[str, Any]) -> T:
        """The instance of the class called `class_name` rebuilt from `config`."""
        cls = self._by_class.get(class_name) if isinstance(class_name, str) else None
        if cls is None:
            raise unknown_name_error(self.kind, class_name, self._by_class)
        return cls.from_config(config)
