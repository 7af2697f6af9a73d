"""One registry helper for every kind of component.

Each kind (extractors, detectors, models, optimisers, schedulers, ...) keeps one
``Registry`` instance; components register by name with a decorator, lookups of an
unknown name fail with the sorted list of known names, and argparse ``choices`` come
from ``Registry.list()`` so there is never a second list of names to keep in step.
"""
from __future__ import annotations

import argparse

from typing import Any, Callable, Dict, Generic, List, Optional, Tuple, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, base: Optional[type] = None):
        self.kind = kind
        self.base = base
        self._items: Dict[str, T] = {}

    def register(self, name: str, obj: Optional[T] = None) -> Callable[[T], T]:
        """Use as ``@REG.register("name")`` or ``REG.register("name", obj)``."""

        def deco(item: T) -> T:
            if name in self._items:
                raise KeyError(f"{self.kind} {name!r} is already registered")
            if self.base is not None and isinstance(item, type) and not issubclass(item, self.base):
                raise TypeError(f"{self.kind} {name!r}: {item!r} is not a subclass of {self.base.__name__}")
            self._items[name] = item
            return item

        if obj is not None:
            return deco(obj)  # type: ignore[return-value]
        return deco

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(
                f"unknown {self.kind} {name!r}; registered: {', '.join(self.list()) or '(none)'}"
            ) from None

    def create(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self.get(name)(*args, **kwargs)  # type: ignore[operator]

    def list(self) -> List[str]:
        return sorted(self._items)

    def names_type(self, noun: Optional[str] = None) -> Callable[[str], Tuple[str, ...]]:
        """An argparse ``type`` for a comma-separated list of registered names ("a,b"); an
        unknown name is a usage error listing the known ones."""
        noun = noun or self.kind

        def parse(value: str) -> Tuple[str, ...]:
            names = tuple(s.strip() for s in value.split(",") if s.strip())
            for n in names:
                if n not in self._items:
                    raise argparse.ArgumentTypeError(f"unknown {noun} {n!r}; choose from {', '.join(self.list())}")
            return names

        return parse

    def ordered(self) -> List[str]:
        """Names in registration order, for kinds whose order means something (pipeline steps)."""
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.list()})"
