"""Named entries with ``register`` and ``get``, whose ``get`` of an unknown name says what is
missing: the name asked for and the names known (papermill's engine and translator
registries are the model). The views, the export targets and the evaluation engines are
each one."""
from __future__ import annotations

from typing import Any, Generic, Iterator, TypeVar

from toolkit.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries by name, in the order they were registered; ``kind`` names what they are
    in messages ("view", "export target"); ``unknown`` is the error ``get`` raises, a
    :class:`~toolkit.errors.UnknownNameError` of the registry's own domain when callers
    catch that domain's errors (an unknown engine is also a configuration error)."""

    unknown: type[UnknownNameError] = UnknownNameError

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def key(self, name: Any) -> str:
        """The name ``name`` is registered under: itself (a registry may derive it)."""
        return name

    def register(self, name: Any, entry: T) -> T:
        """Make ``entry`` known as ``name`` (replacing what was there); returns ``entry``."""
        self._entries[self.key(name)] = entry
        return entry

    def unregister(self, name: Any) -> None:
        """Forget ``name``; nothing happens when it is not known."""
        self._entries.pop(self.key(name), None)

    def get(self, name: Any) -> T:
        """The entry registered as ``name``; :class:`~toolkit.errors.UnknownNameError`
        naming it and the known names when there is none."""
        key = self.key(name)
        try:
            return self._entries[key]
        except KeyError:
            raise self.unknown(f"no {self.kind} is registered as {key!r}; known: "
                               f"{', '.join(sorted(self._entries)) or 'none'}") from None

    def find(self, name: Any) -> T | None:
        """The entry registered as ``name``, or None: for callers with a fallback."""
        return self._entries.get(self.key(name))

    def names(self) -> list[str]:
        """The known names, in the order they were registered."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return self.key(name) in self._entries

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._entries.values()))
