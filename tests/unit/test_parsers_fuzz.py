"""Property-based tests of what parses user input: templates, conditions, definitions.

Whatever comes in, only the documented validation error may come out, and in bounded
time (hypothesis' ``deadline`` fails an example that takes longer). The template scanner
is also checked against the regular expression it replaced, which was right but took
quadratic time on ``"{{" * n``.
"""

from __future__ import annotations

import re
from typing import Any, get_args

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from flowmill.domain.definition import load_definition
from flowmill.domain.errors import DefinitionError
from flowmill.engine import templates
from flowmill.engine.conditions import Condition, Operator, compare, evaluate
from flowmill.engine.templates import Expr, Path, Scope, TemplateError
from flowmill.engine.validation import load_and_compile
from flowmill.nodes.registry import NodeRegistry

FUZZ = settings(
    max_examples=300,
    deadline=2000,  # ms; generous for a loaded 2-core machine, far below a stall
    suppress_health_check=[HealthCheck.too_slow],
)
_OLD_TAG = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)

template_text = st.text(alphabet="{}ab. [0]\"'$-_\n", max_size=60)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


def _old_parse(text: str) -> tuple[Any, ...]:
    """What the quadratic regex produced: literal text and tag bodies, in order."""
    parts: list[Any] = []
    pos = 0
    for m in _OLD_TAG.finditer(text):
        if m.start() > pos:
            parts.append(text[pos : m.start()])
        parts.append(("tag", m.group(1)))
        pos = m.end()
    if pos < len(text):
        parts.append(text[pos:])
    return tuple(parts)


def _shape(tpl: templates.Template) -> tuple[Any, ...]:
    return tuple(p if isinstance(p, str) else ("tag", p.text) for p in tpl.parts)


@FUZZ
@given(template_text)
@example("{{{a}}}")
@example("{{" * 40 + "}}")
@example("}}{{a}}{{")
def test_parsers_template_scanner_finds_the_tags_the_old_pattern_found(text: str) -> None:
    tpl = templates.parse(text)
    if "{{" not in text:
        assert tpl.parts == (text,)
    else:
        assert _shape(tpl) == _old_parse(text)
        for part in tpl.parts:
            if isinstance(part, Path):
                # The path the tag was read as, spelt exactly as in the text.
                assert part.text.strip() in text


@pytest.mark.parametrize(
    "text",
    ["{{" * 100_000, '{{ nodes["' * 20_000, "{{ a" * 50_000 + "}}", "}}" * 100_000],
    ids=["open-braces", "open-index", "one-long-tag", "close-braces"],
)
def test_parsers_template_scanner_adversarial_inputs_parse_to_their_text(text: str) -> None:
    parts = templates.parse(text).parts
    assert "".join(p if isinstance(p, str) else "{{" + p.text + "}}" for p in parts) == text
    issues = templates.expression_issues(text, expressions_enabled=True)
    assert all(isinstance(i, str) for i in issues)


def test_parsers_template_tag_longer_than_the_cap_is_a_validation_issue() -> None:
    long_tag = "{{ " + "a + " * 3000 + "1 }}"
    issues = templates.expression_issues(long_tag, expressions_enabled=True)
    assert any("longer than 10000" in i for i in issues), issues
    assert templates.expression_issues("{{ a + 1 }}", expressions_enabled=True) == []


def test_parsers_definition_with_too_many_templates_is_refused_before_parsing_them() -> None:
    many = {f"k{i}": "{{input.x}}" for i in range(templates.MAX_TAGS_PER_DEFINITION + 1)}
    doc = {
        "name": "many",
        "nodes": [
            {"id": "t", "type": "trigger"},
            {"id": "m", "type": "transform", "config": {"mapping": many}},
        ],
        "edges": [{"source": "t", "target": "m"}],
    }
    with pytest.raises(DefinitionError) as caught:
        load_and_compile(doc, NodeRegistry.from_entry_points())
    assert [i.code for i in caught.value.issues] == ["too_many_templates"]


@FUZZ
@given(text=template_text, data=json_values)
def test_parsers_template_render_raises_only_template_errors(text: str, data: Any) -> None:
    scope = Scope(data, {"trigger": {"data": data}, "nodes": {}, "vars": {}})
    templates.referenced_nodes(text)
    templates.expression_issues(text, expressions_enabled=False)
    try:
        templates.render(text, scope)
    except TemplateError:
        assert any(isinstance(t, Expr) for t in templates.iter_tags(text))


_CONDITION = TypeAdapter(Condition)


@FUZZ
@given(json_values)
@example({"left": "{{a}}", "op": "matches", "right": "(a+)+$"})
@example({"and": [{"not": {"left": 1, "op": "in", "right": [1]}}]})
def test_parsers_condition_parse_raises_only_validation_errors(raw: Any) -> None:
    try:
        cond = _CONDITION.validate_python(raw)
    except ValidationError:
        return
    assert evaluate(cond, lambda v: v) in (True, False)


@FUZZ
@given(left=json_values, op=st.sampled_from(get_args(Operator)), right=json_values)
def test_parsers_condition_compare_never_raises(left: Any, op: str, right: Any) -> None:
    assert compare(left, op, right) in (True, False)


_REGISTRY = NodeRegistry.from_entry_points()
node_docs = st.fixed_dictionaries(
    {"id": st.text(max_size=6), "type": st.sampled_from([*_REGISTRY, "nope"])},
    optional={"config": json_values, "retry": json_values, "on_error": json_values},
)
definitions = st.fixed_dictionaries(
    {"name": st.text(max_size=10)},
    optional={
        "nodes": st.lists(node_docs, max_size=5) | json_values,
        "edges": st.lists(
            st.fixed_dictionaries(
                {"source": st.text(max_size=4), "target": st.text(max_size=4)},
                optional={"sourceHandle": st.text(max_size=6)},
            ),
            max_size=5,
        )
        | json_values,
        "steps": st.lists(node_docs, max_size=4) | json_values,
        "settings": json_values,
    },
)


@FUZZ
@given(st.one_of(definitions, json_values))
def test_parsers_definition_loader_raises_only_definition_errors(doc: Any) -> None:
    for load in (load_definition, lambda d: load_and_compile(d, _REGISTRY)):
        try:
            load(doc)
        except DefinitionError as e:
            issues = e.issues
        else:
            continue
        assert issues and all(i.message for i in issues)
