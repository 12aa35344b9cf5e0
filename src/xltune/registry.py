"""A small name -> object registry, as peft's tuners and lm-eval's tasks use.

Each method, task and objective registers itself in its own module (one decorator line), so adding one touches
nothing central. Lookups of unknown names raise :class:`~xltune.errors.XLTuneError` listing the valid names,
closest first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from .errors import XLTuneError, unknown_name

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            self.add(name, obj)
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        if name in self._items and self._items[name] is not obj:
            raise XLTuneError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = obj

    def get(self, name: str, context: str = "") -> T:
        try:
            return self._items[name]
        except KeyError:
            raise unknown_name(self.kind, name, self._items, context) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
