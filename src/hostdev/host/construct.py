"""Positional constructors for the host model's frozen dataclasses, for the scan's hot path.

A frozen dataclass's generated ``__init__`` routes every field through
``object.__setattr__``; with PciDevice's nineteen fields that was close to half of a scan's
parse pass (callgrind, docs/benchmarks.md). `positional_constructor(cls)` returns a function
with the class's signature, to be called with every field, that stores each one through its
slot's descriptor: an equal object, made in less than half the instructions. Like dataclasses
itself, it compiles that function from generated source.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, is_dataclass
from typing import Any, ParamSpec, TypeVar, cast

P = ParamSpec("P")
T = TypeVar("T")


def positional_constructor(cls: Callable[P, T]) -> Callable[P, T]:
    """A constructor of the slots dataclass cls, called with every field (no defaults)."""
    if not (isinstance(cls, type) and is_dataclass(cls) and "__slots__" in cls.__dict__):
        raise TypeError(f"{cls!r} is not a dataclass with slots")
    names = [f.name for f in fields(cls)]
    source = "\n".join(
        [
            f"def make({', '.join(names)}):",
            "    obj = new(cls)",
            *(f"    set_{name}(obj, {name})" for name in names),
            "    return obj",
        ]
    )
    namespace: dict[str, Any] = {"new": object.__new__, "cls": cls}
    namespace.update({f"set_{name}": cls.__dict__[name].__set__ for name in names})
    exec(source, namespace)
    return cast(Callable[P, T], namespace["make"])
