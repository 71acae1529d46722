"""Structured conditions: ``{"left": "{{input.total}}", "op": ">", "right": 100}``.

Groups nest with ``{"and": [...]}``, ``{"or": [...]}`` and ``{"not": {...}}``. Operands
are templates, rendered against the node's scope before comparing. A number compared
with a numeric string compares as numbers (templates inside text produce strings);
ordering between things that do not compare is simply false.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

import regex
from pydantic import BaseModel, ConfigDict, Field, field_validator

Operator = Literal[
    "==",
    "!=",
    ">",
    ">=",
    "<",
    "<=",
    "contains",
    "not_contains",
    "exists",
    "not_exists",
    "matches",
    "starts_with",
    "ends_with",
    "in",
    "is_empty",
    "is_not_empty",
]
_UNARY = {"exists", "not_exists", "is_empty", "is_not_empty"}
REGEX_TIMEOUT_S = 0.05
MAX_PATTERN = 1000


class Comparison(BaseModel):
    """``left op right``."""

    model_config = ConfigDict(extra="forbid")
    left: Any
    op: Operator
    right: Any = None

    @field_validator("right")
    @classmethod
    def _pattern_compiles(cls, v: Any, info: Any) -> Any:
        if info.data.get("op") == "matches" and isinstance(v, str) and "{{" not in v:
            if len(v) > MAX_PATTERN:
                raise ValueError(f"pattern longer than {MAX_PATTERN} characters")
            try:
                regex.compile(v)
            except regex.error as e:
                raise ValueError(f"invalid regular expression: {e}") from e
        return v


class AllOf(BaseModel):
    """True when every member is."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    all_of: list[Condition] = Field(alias="and", min_length=1)


class AnyOf(BaseModel):
    """True when at least one member is."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    any_of: list[Condition] = Field(alias="or", min_length=1)


class Negation(BaseModel):
    """True when its member is false."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    negated: Condition = Field(alias="not")


Condition = Annotated[Comparison | AllOf | AnyOf | Negation, Field(union_mode="left_to_right")]
AllOf.model_rebuild()
AnyOf.model_rebuild()
Negation.model_rebuild()

Render = Callable[[Any], Any]


def evaluate(cond: Comparison | AllOf | AnyOf | Negation, render: Render) -> bool:
    """Evaluate a parsed condition, rendering operands with ``render``."""
    if isinstance(cond, AllOf):
        return all(evaluate(c, render) for c in cond.all_of)
    if isinstance(cond, AnyOf):
        return any(evaluate(c, render) for c in cond.any_of)
    if isinstance(cond, Negation):
        return not evaluate(cond.negated, render)
    left = render(cond.left)
    right = None if cond.op in _UNARY else render(cond.right)
    return compare(left, cond.op, right)


def compare(left: Any, op: str, right: Any) -> bool:
    """Apply one operator to two rendered values."""
    if op == "exists":
        return left is not None
    if op == "not_exists":
        return left is None
    if op == "is_empty":
        return left is None or (hasattr(left, "__len__") and len(left) == 0)
    if op == "is_not_empty":
        return not compare(left, "is_empty", None)
    if op in ("==", "!="):
        a, b = _coerce(left, right)
        return bool(a == b) == (op == "==")
    if op in (">", ">=", "<", "<="):
        a, b = _coerce(left, right)
        try:
            return bool(_ORDER[op](a, b))
        except TypeError:
            return False
    if op == "contains":
        return _contains(left, right)
    if op == "not_contains":
        return not _contains(left, right)
    if op == "in":
        return _contains(right, left)
    if op == "starts_with":
        return isinstance(left, str) and isinstance(right, str) and left.startswith(right)
    if op == "ends_with":
        return isinstance(left, str) and isinstance(right, str) and left.endswith(right)
    if op == "matches":
        return _matches(left, right)
    raise ValueError(f"unknown operator {op!r}")


_ORDER: dict[str, Callable[[Any, Any], Any]] = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}


def _number(v: str) -> float | None:
    try:
        return float(v.strip())
    except ValueError:
        return None


def _coerce(a: Any, b: Any) -> tuple[Any, Any]:
    if isinstance(a, int | float) and not isinstance(a, bool) and isinstance(b, str):
        nb = _number(b)
        return (float(a), nb) if nb is not None else (a, b)
    if isinstance(b, int | float) and not isinstance(b, bool) and isinstance(a, str):
        na = _number(a)
        return (na, float(b)) if na is not None else (a, b)
    return a, b


def _contains(container: Any, item: Any) -> bool:
    if isinstance(container, str):
        return item is not None and str(item) in container
    if isinstance(container, Mapping):
        # JSON object keys are text: anything else (a list, unhashable) is not a key.
        return isinstance(item, str) and item in container
    if isinstance(container, list | tuple):
        return item in container
    return False


def _matches(subject: Any, pattern: Any) -> bool:
    if not isinstance(subject, str) or not isinstance(pattern, str) or len(pattern) > MAX_PATTERN:
        return False
    try:
        return regex.search(pattern, subject, timeout=REGEX_TIMEOUT_S) is not None
    except (regex.error, TimeoutError):
        return False
