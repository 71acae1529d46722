"""Structured conditions."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from flowmill.engine import conditions
from flowmill.engine.conditions import Condition

adapter: TypeAdapter[Any] = TypeAdapter(Condition)


def check(cond: dict[str, Any], scope: dict[str, Any]) -> bool:
    def render(v: Any) -> Any:
        if isinstance(v, str) and v.startswith("{{") and v.endswith("}}"):
            return scope.get(v[2:-2].strip())
        return v

    return conditions.evaluate(adapter.validate_python(cond), render)


@pytest.mark.parametrize(
    ("cond", "scope", "expected"),
    [
        ({"left": "{{total}}", "op": ">", "right": 100}, {"total": 120}, True),
        ({"left": "{{total}}", "op": ">", "right": 100}, {"total": 80}, False),
        ({"left": "{{total}}", "op": ">=", "right": "100"}, {"total": 100}, True),
        ({"left": "{{total}}", "op": "<", "right": 100}, {"total": "99.5"}, True),
        ({"left": "{{total}}", "op": ">", "right": 1}, {"total": "abc"}, False),
        ({"left": "{{total}}", "op": ">", "right": 1}, {"total": None}, False),
        ({"left": "{{s}}", "op": "==", "right": "x"}, {"s": "x"}, True),
        ({"left": "{{s}}", "op": "==", "right": 5}, {"s": "5"}, True),
        ({"left": "{{s}}", "op": "!=", "right": "x"}, {"s": "y"}, True),
        ({"left": "{{s}}", "op": "contains", "right": "ell"}, {"s": "hello"}, True),
        ({"left": "{{s}}", "op": "contains", "right": 2}, {"s": [1, 2]}, True),
        ({"left": "{{s}}", "op": "not_contains", "right": 3}, {"s": [1, 2]}, True),
        ({"left": "{{s}}", "op": "in", "right": ["a", "b"]}, {"s": "a"}, True),
        ({"left": "{{s}}", "op": "exists"}, {"s": 0}, True),
        ({"left": "{{s}}", "op": "exists"}, {}, False),
        ({"left": "{{s}}", "op": "not_exists"}, {}, True),
        ({"left": "{{s}}", "op": "is_empty"}, {"s": []}, True),
        ({"left": "{{s}}", "op": "is_not_empty"}, {"s": "x"}, True),
        ({"left": "{{s}}", "op": "matches", "right": "^a.c$"}, {"s": "abc"}, True),
        ({"left": "{{s}}", "op": "matches", "right": "^a.c$"}, {"s": 5}, False),
        ({"left": "{{s}}", "op": "starts_with", "right": "ab"}, {"s": "abc"}, True),
        ({"left": "{{s}}", "op": "ends_with", "right": "bc"}, {"s": "abc"}, True),
        (
            {"and": [{"left": 1, "op": "==", "right": 1}, {"left": 1, "op": "==", "right": 2}]},
            {},
            False,
        ),
        (
            {"or": [{"left": 1, "op": "==", "right": 1}, {"left": 1, "op": "==", "right": 2}]},
            {},
            True,
        ),
        ({"not": {"left": 1, "op": "==", "right": 2}}, {}, True),
        (
            {
                "and": [
                    {"or": [{"left": "{{a}}", "op": ">", "right": 1}]},
                    {"not": {"left": "{{b}}", "op": "exists"}},
                ]
            },
            {"a": 2},
            True,
        ),
    ],
)
def test_conditions_evaluate(cond: dict[str, Any], scope: dict[str, Any], expected: bool) -> None:
    assert check(cond, scope) is expected


@pytest.mark.parametrize(
    "cond",
    [
        {"left": 1, "op": "~=", "right": 2},
        {"left": 1, "op": ">", "right": 2, "extra": 1},
        {"and": []},
        {"left": "x", "op": "matches", "right": "("},
        {"nope": 1},
    ],
)
def test_conditions_reject_bad_shapes(cond: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        adapter.validate_python(cond)


def test_conditions_catastrophic_regex_times_out_as_false() -> None:
    assert conditions.compare("a" * 5000 + "!", "matches", r"^(a|aa)+$") is False


# Rows added for survivors of the mutation run (docs/testing.md): each pins one branch
# of `compare` that no other row reached.
@pytest.mark.parametrize(
    ("left", "op", "right", "expected"),
    [
        ("abc", "not_contains", "b", False),
        ("abc", "not_contains", "z", True),
        ([1, 2], "not_contains", 3, True),
        (5, "<=", 5, True),
        (6, "<=", 5, False),
        ("10", "<=", 9, False),  # the string is read as a number
        (9, "<=", "10", True),
        ("abc", "starts_with", "ab", True),
        (123, "starts_with", "1", False),  # only text starts with text
        ("abc", "starts_with", 1, False),
        ("abc", "ends_with", "bc", True),
        (123, "ends_with", "3", False),
        ("abc", "ends_with", 3, False),
        (10, "==", "10", True),
        ("10", "==", 10, True),
        (10, "==", "ten", False),
        ("ten", "==", 10, False),
        (True, "==", "1", False),  # booleans are not numbers
        ("1", "==", True, False),
        ("abc", "!=", "abd", True),
        ({"a": 1}, "contains", "a", True),  # an object contains its keys
        ({"a": 1}, "contains", "b", False),
        ({"1": 1}, "contains", 1, False),  # keys are text: 1 is not the key "1"
        (5, "contains", 5, False),  # a number contains nothing
        ("a" * 1000, "matches", "a" * 1000, True),  # the longest pattern allowed
        ("a" * 1001, "matches", "a" * 1001, False),  # one longer is refused
    ],
)
def test_conditions_compare_table(left: Any, op: str, right: Any, expected: bool) -> None:
    assert conditions.compare(left, op, right) is expected


def test_conditions_compare_unknown_operator_is_named() -> None:
    with pytest.raises(ValueError, match="unknown operator 'nope'"):
        conditions.compare(1, "nope", 2)


def test_conditions_unary_operators_do_not_render_a_right_operand() -> None:
    # A stray "right" on "exists" is ignored, not rendered: rendering it could fail (a
    # path into a node that has not run) and fail a condition that needs only "left".
    rendered: list[Any] = []

    def render(value: Any) -> Any:
        rendered.append(value)
        if value == "{{ boom }}":
            raise AssertionError("the right operand of a unary operator was rendered")
        return value

    for op in ("exists", "not_exists", "is_empty", "is_not_empty"):
        cond = adapter.validate_python({"left": "x", "op": op, "right": "{{ boom }}"})
        conditions.evaluate(cond, render)
    assert rendered == ["x"] * 4
