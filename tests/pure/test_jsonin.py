"""Bounded JSON: every input gets a value or JsonInputError, never another exception."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.core.jsonin import MAX_DEPTH, MAX_NUMBER_CHARS, JsonInputError, loads


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"level": 40}', {"level": 40}),
        (
            '{"level": 40.5, "x": [1, [2, {"y": null}]]}',
            {"level": 40.5, "x": [1, [2, {"y": None}]]},
        ),
        ('"[[[[[[[[[[[[[[[[[[[[[["', "[" * 22),  # brackets in strings are not nesting
        ('{"a": "\\"[[[[[[[[[[[[[["}', {"a": '"' + "[" * 14}),
        ("[" * MAX_DEPTH + "]" * MAX_DEPTH, [[[[[[[[]]]]]]]]),
        ("-" + "9" * (MAX_NUMBER_CHARS - 1), -int("9" * (MAX_NUMBER_CHARS - 1))),
        ("-2.2250738585072014e-308", -2.2250738585072014e-308),
    ],
)
def test_ordinary_json_reads_as_json_does(text: str, value: object) -> None:
    assert loads(text) == value == json.loads(text)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[" * 100_000, f"nested deeper than {MAX_DEPTH} levels"),
        ('{"a":' * 9 + "1" + "}" * 9, f"nested deeper than {MAX_DEPTH} levels"),
        ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "nested deeper"),
        ('{"level": ' + "9" * 5000 + "}", f"a number longer than {MAX_NUMBER_CHARS} characters"),
        ('{"level": 0.' + "0" * 5000 + "1}", "a number longer than"),
        ('{"level": 1e999}', "out of range"),
        ('{"level": -1e999}', "out of range"),
        ('{"level": NaN}', "NaN is not a number JSON allows"),
        ("Infinity", "Infinity is not a number JSON allows"),
        ("{", "invalid JSON"),
        ('{"a": 1', "invalid JSON"),
        ("", "invalid JSON"),
    ],
)
def test_json_past_a_bound_is_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(JsonInputError, match="invalid JSON") as err:
        loads(text)
    assert reason in str(err.value)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=300),
        st.text(alphabet='[]{}",:0123456789.eE-\\ ntrufals', max_size=300),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=5), inner, max_size=3)
            ),
            max_leaves=20,
        ).map(lambda v: json.dumps(v)),
    )
)
def test_any_text_gives_a_value_or_a_json_input_error(text: str) -> None:
    try:
        loads(text)
    except JsonInputError as err:
        assert str(err).startswith("invalid JSON")
