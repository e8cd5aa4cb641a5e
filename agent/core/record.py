"""`@record`: a frozen dataclass whose generated methods are shared, not made per class.

`@dataclass(frozen=True)` writes five methods for every class (`__repr__`, `__eq__`,
`__hash__`, `__setattr__`, `__delattr__`) by compiling source text, and each class keeps its
own code objects for the life of the process. The agent defines 82 such classes
(events, config sections, replies); on the example config their methods were half a megabyte
of the memory a Pi pays for at idle (README, "Memory and floods"). A record keeps only the
generated `__init__` (it differs per class) and uses one function of each kind for all, which
read the field names the class stores: the same behaviour as a frozen dataclass (same repr
text, same equality and hashing, the same `FrozenInstanceError`), and `dataclasses.fields`,
`replace` and `asdict` work on it unchanged.

A leaf that imports nothing of ours: the config model uses it too.
"""

from __future__ import annotations

import dataclasses
import reprlib
from operator import attrgetter
from typing import Any, TypeVar, dataclass_transform

T = TypeVar("T")

# The stored reading of the fields, per class: a function giving the compared values
# (what `__eq__` and `__hash__` use) and the names `__repr__` shows.
_KEY = "__record_key__"
_SHOWN = "__record_shown__"


def _no_fields(_: object) -> tuple[()]:
    return ()


def _key_of(names: tuple[str, ...]) -> Any:
    # attrgetter of one name gives the value itself rather than a 1-tuple: for equality and
    # hashing the two are the same, and it is the faster.
    # staticmethod: stored on the class, a plain function would be bound to the instance.
    return attrgetter(*names) if names else staticmethod(_no_fields)


@reprlib.recursive_repr()
def _repr(self: Any) -> str:
    shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in getattr(self, _SHOWN))
    return f"{type(self).__qualname__}({shown})"


def _eq(self: Any, other: object) -> Any:
    if other.__class__ is self.__class__:
        key = getattr(self, _KEY)
        return bool(key(self) == key(other))
    return NotImplemented


def _hash(self: Any) -> int:
    return hash(getattr(self, _KEY)(self))


def _is_frozen_name(self: Any, name: str) -> bool:
    # As a frozen dataclass's own: every name on the record class itself; on a subclass that
    # is no record, its fields only.
    cls = type(self)
    return _KEY in cls.__dict__ or name in cls.__dataclass_fields__


def _setattr(self: Any, name: str, value: Any) -> None:
    if _is_frozen_name(self, name):
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")
    object.__setattr__(self, name, value)


def _delattr(self: Any, name: str) -> None:
    if _is_frozen_name(self, name):
        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")
    object.__delattr__(self, name)


def _has_own_hash(cls: type) -> bool:
    # dataclasses' rule: a `__hash__` the class wrote counts; the None Python puts there for a
    # class that defines `__eq__` alone does not.
    own = cls.__dict__.get("__hash__", dataclasses.MISSING)
    return own is not dataclasses.MISSING and not (own is None and "__eq__" in cls.__dict__)


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field, dataclasses.Field))
def record(cls: type[T]) -> type[T]:
    """Make `cls` a frozen dataclass with shared `__repr__`, `__eq__`, `__hash__`."""
    own = {name for name in ("__repr__", "__eq__") if name in cls.__dict__}
    own_hash = _has_own_hash(cls)
    # repr and eq off: dataclasses writes neither, nor (eq being off) a `__hash__`. frozen on:
    # its `__init__` then sets fields with object.__setattr__; the per-class `__setattr__` and
    # `__delattr__` it writes are replaced below and freed.
    made: Any = dataclasses.dataclass(frozen=True, repr=False, eq=False)(cls)
    fields = dataclasses.fields(made)
    setattr(made, _KEY, _key_of(tuple(f.name for f in fields if f.compare)))
    setattr(made, _SHOWN, tuple(f.name for f in fields if f.repr))
    shared = {"__repr__": _repr, "__eq__": _eq, "__setattr__": _setattr, "__delattr__": _delattr}
    for name, method in shared.items():
        if name not in own:
            setattr(made, name, method)
    if not own_hash:
        made.__hash__ = _hash
    return cls
