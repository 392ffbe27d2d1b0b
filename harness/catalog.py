"""One kind of decorator registry for the three the harness has (commands, training methods,
eval checks): a name -> entry table that a decorator fills as its module is imported.

A name is registered once: a second, different entry under a taken name (a plugin's check
called `json_valid`, a typo'd copy of a method) is refused with both origins named, where a
plain dict would let the later import silently replace the first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


def _origin(fn: Callable) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


class Catalog(dict[str, T], Generic[T]):
    """`catalog.register(name, entry, fn)`: `entry` under `name`, `fn` the function it came from
    (its module and name identify it; the same function imported again is no conflict)."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind
        self._origins: dict[str, str] = {}

    def register(self, name: str, entry: T, fn: Callable) -> None:
        origin = _origin(fn)
        if name in self and self._origins.get(name) != origin:
            raise ValueError(f"{self.kind} {name!r} is registered twice: by {self._origins.get(name)} and by {origin}; "
                             "rename one of them")
        self[name] = entry
        self._origins[name] = origin

    def decorator(self, name: str, make_entry: Callable[[Callable], T]) -> Callable[[Callable], Callable]:
        """A decorator that registers `make_entry(fn)` under `name` and returns `fn` unchanged."""

        def wrap(fn: Callable) -> Callable:
            self.register(name, make_entry(fn), fn)
            return fn

        return wrap
