"""`@record` behaves as `@dataclass(frozen=True)` does, with its methods shared.

Each case defines the same class twice, once with each decorator, and holds the two to the
same answers; the last tests show what the sharing is for.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from agent.core.record import record

Decorator = Callable[[type[Any]], type[Any]]
BOTH = pytest.mark.parametrize(
    "decorate", [dataclasses.dataclass(frozen=True), record], ids=["dataclass", "record"]
)


def point(decorate: Decorator) -> type[Any]:
    class Point:
        x: int
        y: str = "b"
        note: list[int] = dataclasses.field(default_factory=list, compare=False, repr=False)

    return decorate(Point)


def empty(decorate: Decorator) -> type[Any]:
    class Empty:
        pass

    return decorate(Empty)


def single(decorate: Decorator) -> type[Any]:
    class Single:
        value: tuple[int, ...]

    return decorate(Single)


@BOTH
def test_repr_shows_the_fields_that_ask_to_be_shown(decorate: Decorator) -> None:
    cls = point(decorate)
    assert repr(cls(1, "a'b", [3])) == 'point.<locals>.Point(x=1, y="a\'b")'
    assert repr(empty(decorate)()) == "empty.<locals>.Empty()"


@BOTH
def test_equal_and_hash_by_the_compared_fields_of_the_same_class(decorate: Decorator) -> None:
    cls = point(decorate)
    assert cls(1, "a", [1]) == cls(1, "a", [2])  # `note` is not compared
    assert hash(cls(1, "a", [1])) == hash(cls(1, "a", [2]))
    assert cls(1, "a") != cls(2, "a")
    assert cls(1, "a") != cls(1, "b")
    other = point(decorate)  # same fields, another class: never equal
    assert cls(1, "a") != other(1, "a")
    assert cls(1) != (1, "b")
    assert len({cls(1), cls(1), cls(2)}) == 2
    one = empty(decorate)
    assert one() == one()
    assert hash(one()) == hash(one())
    holder = single(decorate)
    assert holder((1, 2)) == holder((1, 2))
    assert holder((1, 2)) != holder((1,))
    assert hash(holder((1, 2))) == hash(holder((1, 2)))


@BOTH
def test_unhashable_field_makes_an_unhashable_record(decorate: Decorator) -> None:
    holder = single(decorate)
    with pytest.raises(TypeError, match="unhashable"):
        hash(holder([1]))


@BOTH
def test_frozen_every_name_with_the_dataclass_error(decorate: Decorator) -> None:
    value = point(decorate)(1)
    for name in ("x", "not_a_field"):
        with pytest.raises(dataclasses.FrozenInstanceError, match=f"assign to field '{name}'"):
            setattr(value, name, 2)
        with pytest.raises(dataclasses.FrozenInstanceError, match=f"delete field '{name}'"):
            delattr(value, name)
    assert value.x == 1


@BOTH
def test_a_plain_subclass_may_set_its_own_names_not_the_fields(decorate: Decorator) -> None:
    class Sub(point(decorate)):  # type: ignore[misc]
        pass

    value = Sub(1)
    value.extra = 5
    assert value.extra == 5
    del value.extra
    with pytest.raises(dataclasses.FrozenInstanceError):
        value.x = 2
    assert value != point(decorate)(1)  # another class


@BOTH
def test_the_dataclass_tools_work_on_it(decorate: Decorator) -> None:
    cls = point(decorate)
    value = cls(1, "a", [7])
    assert dataclasses.is_dataclass(value)
    assert [f.name for f in dataclasses.fields(value)] == ["x", "y", "note"]
    assert dataclasses.replace(value, x=9) == cls(9, "a")
    assert dataclasses.asdict(value) == {"x": 1, "y": "a", "note": [7]}
    assert cls.__match_args__ == ("x", "y", "note")
    match value:
        case cls(1, y):
            assert y == "a"
        case _:
            pytest.fail("match by position")


@BOTH
def test_a_record_inside_itself_repr_does_not_recurse(decorate: Decorator) -> None:
    holder = single(decorate)
    inner: list[Any] = []
    value = holder(inner)  # type: ignore[arg-type]
    inner.append(value)
    assert repr(value) == "single.<locals>.Single(value=[...])"


@BOTH
def test_methods_the_class_writes_are_kept(decorate: Decorator) -> None:
    class Own:
        x: int

        def __repr__(self) -> str:
            return "own"

        def __hash__(self) -> int:
            return 7

    cls = decorate(Own)
    assert repr(cls(1)) == "own"
    assert hash(cls(1)) == hash(cls(2)) == 7
    assert cls(1) == cls(1)


@BOTH
def test_its_own_eq_is_kept_and_the_hash_still_made_from_the_fields(decorate: Decorator) -> None:
    # dataclasses' rule: the None Python puts in `__hash__` beside an `__eq__` is no choice.
    class Loose:
        x: int

        def __eq__(self, other: object) -> bool:
            return True

    cls = decorate(Loose)
    assert cls(1) == cls(2)
    assert hash(cls(1)) == hash(cls(1))
    assert hash(cls(1)) != hash(cls(2))


def test_the_methods_are_one_function_for_every_record() -> None:
    first, second = point(record), single(record)
    for name in ("__repr__", "__eq__", "__hash__", "__setattr__", "__delattr__"):
        assert getattr(first, name) is getattr(second, name), name
    made = point(dataclasses.dataclass(frozen=True))
    assert made.__repr__ is not point(dataclasses.dataclass(frozen=True)).__repr__
