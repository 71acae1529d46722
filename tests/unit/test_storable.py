"""The checks behind every value Flowmill accepts from outside (``domain.storable``).

The API tests see these as 422s; here each boundary is pinned exactly, so a check that
drifts by one (a 64-bit bound, a nesting level) or stops walking fails a test.
"""

from __future__ import annotations

from typing import Any

import pytest

from flowmill.domain.errors import UnstorableJson
from flowmill.domain.storable import MAX_DEPTH, check_json, check_text


def _nested(levels: int) -> Any:
    value: Any = "leaf"
    for _ in range(levels):
        value = [value]
    return value


def test_storable_check_text_refuses_nul_naming_it() -> None:
    assert check_text("plain ünïcode") == "plain ünïcode"
    with pytest.raises(UnstorableJson, match=r"^must not contain NUL \(\\u0000\) characters$"):
        check_text("a\x00b")


def test_storable_check_text_refuses_a_lone_surrogate_naming_it() -> None:
    with pytest.raises(UnstorableJson, match=r"^must be valid Unicode \(no lone surrogates\)$"):
        check_text("a\ud800b")


def test_storable_check_json_accepts_every_storable_kind_and_returns_the_value() -> None:
    value = {"s": "x", "t": True, "f": False, "n": None, "i": 1, "x": 1.5, "l": [None, True]}
    assert check_json(value) is value
    for scalar in (None, True, False, 0, -1.25, "", []):
        assert check_json(scalar) == scalar


@pytest.mark.parametrize("good", [-(2**63), 2**64 - 1])
def test_storable_check_json_accepts_integers_at_the_64_bit_bounds(good: int) -> None:
    assert check_json({"n": good}) == {"n": good}


@pytest.mark.parametrize("bad", [-(2**63) - 1, 2**64])
def test_storable_check_json_refuses_integers_past_the_64_bit_bounds(bad: int) -> None:
    with pytest.raises(UnstorableJson, match=r"^integers must fit in 64 bits$"):
        check_json([1, {"n": bad}])


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_storable_check_json_refuses_numbers_that_are_not_finite(bad: float) -> None:
    with pytest.raises(UnstorableJson, match=r"^numbers must be finite$"):
        check_json({"a": [0.5, bad]})


def test_storable_check_json_nests_exactly_max_depth_levels() -> None:
    assert check_json(_nested(MAX_DEPTH)) == _nested(MAX_DEPTH)
    with pytest.raises(UnstorableJson, match=f"^must not nest deeper than {MAX_DEPTH} levels$"):
        check_json(_nested(MAX_DEPTH + 1))
    deep_object: Any = "leaf"
    for _ in range(MAX_DEPTH):
        deep_object = {"k": deep_object}
    assert check_json(deep_object) is deep_object
    with pytest.raises(UnstorableJson, match="nest deeper"):
        check_json({"k": deep_object})


def test_storable_check_json_walks_past_booleans_and_nulls_to_what_follows() -> None:
    # The walk goes on after a value that needs no check: a stop there would let the
    # NUL in the sibling through (stack order: the last item is looked at first).
    for filler in (True, None):
        with pytest.raises(UnstorableJson, match="NUL"):
            check_json(["a\x00", filler])
        with pytest.raises(UnstorableJson, match="NUL"):
            check_json({"bad": "a\x00", "ok": filler})


def test_storable_check_json_checks_object_keys() -> None:
    with pytest.raises(UnstorableJson, match="NUL"):
        check_json({"k\x00": 1})
    with pytest.raises(UnstorableJson, match=r"^object keys must be strings$"):
        check_json({1: "x"})


def test_storable_check_json_refuses_values_json_cannot_hold() -> None:
    with pytest.raises(UnstorableJson, match=r"^unsupported JSON value of type bytes$"):
        check_json({"b": b"raw"})
