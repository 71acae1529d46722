"""Templates: path resolution, type preservation, stringification, the expression seam."""

from __future__ import annotations

from typing import Any

import pytest

from flowmill.engine import templates
from flowmill.engine.templates import Expr, NeedsBlob, Path, Scope, TemplateError, render
from flowmill.testing import FakeCodeRunner

SCOPE = Scope(
    {"result": "hello processed", "n": 5, "items": [{"id": 1}, {"id": 2}], "input": "shadow"},
    {
        "trigger": {"type": "webhook.test", "data": {"message": "hi", "total": 120.0}},
        "nodes": {"fetch": {"output": {"body": {"ok": True}}}, "process-1": {"output": 7}},
        "vars": {"region": "eu"},
        "execution": {"id": "e1"},
    },
)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{result}}", "hello processed"),
        ("The processed result is: {{result}}", "The processed result is: hello processed"),
        ("{{n}}", 5),
        ("n={{n}}", "n=5"),
        ("{{ items[1].id }}", 2),
        ("{{items[-1].id}}", 2),
        ("{{items[-2].id}}", 1),  # back to the first
        ("{{items}}", [{"id": 1}, {"id": 2}]),
        ("list: {{items}}", 'list: [{"id":1},{"id":2}]'),
        ("{{items.length}}", 2),
        ("{{trigger.data.message}}", "hi"),
        ("{{trigger.data.total}}", 120.0),
        ("total {{trigger.data.total}}", "total 120"),
        ("{{nodes.fetch.output.body.ok}}", True),
        ("{{nodes.fetch.output.body.ok}}!", "true!"),
        ("{{nodes.process-1.output}}", 7),
        ('{{nodes["process-1"].output}}', 7),
        ("{{vars.region}}", "eu"),
        ("{{execution.id}}", "e1"),
        ("{{missing}}", None),
        ("[{{missing.deep[3]}}]", "[]"),
        ("{{input}}", "shadow"),  # input's own key wins over the context root
        ("no tags", "no tags"),
        ("{{a}} and {{b}}", " and "),
    ],
)
def test_templates_render_paths(template: str, expected: Any) -> None:
    assert templates.render(template, SCOPE) == expected


def test_templates_render_nested_structures() -> None:
    value = {"a": ["{{n}}", {"b": "x{{n}}"}], "c": 3}
    assert templates.render(value, SCOPE) == {"a": [5, {"b": "x5"}], "c": 3}


def test_templates_input_root_when_input_has_no_such_key() -> None:
    scope = Scope({"data": {"message": "m"}}, {})
    assert templates.render("{{input.data.message}}", scope) == "m"


@pytest.mark.parametrize(
    "body", ["a + 1", "x > 3", "foo()", "true", "null", "`t`", "a ? b : c", "a.b()"]
)
def test_templates_non_paths_are_expressions(body: str) -> None:
    part = templates.parse("{{" + body + "}}").whole
    assert isinstance(part, Expr)


@pytest.mark.parametrize("body", ["a", "a.b", "a[0]", "a['x y']", 'a["k"].c[2]', "a-b.c"])
def test_templates_paths_parse_as_paths(body: str) -> None:
    assert isinstance(templates.parse("{{ " + body + " }}").whole, Path)


@pytest.mark.parametrize("literal", ["true", "false", "null", "undefined"])
def test_templates_literals_parse_as_expressions(literal: str) -> None:
    assert templates.parse("{{" + literal + "}}").whole == Expr(literal)


def test_templates_expression_without_sandbox_is_an_error() -> None:
    with pytest.raises(
        TemplateError,
        match=r"^\{\{n \+ 1\}\} is an expression, not a path; expressions run in the "
        "JavaScript sandbox, which is not available here$",
    ):
        templates.render("{{ n + 1 }}", SCOPE)


async def test_templates_expressions_go_to_the_evaluator_in_one_batch() -> None:
    fake = FakeCodeRunner({"n + 1": lambda s: s["n"] + 1, "n * 2": 10})
    out = await templates.render_async(
        {"a": "{{ n + 1 }}", "b": "x{{n * 2}}y", "c": "{{n + 1}}"}, SCOPE, fake
    )
    assert out == {"a": 6, "b": "x10y", "c": 6}
    assert fake.calls == [("expression", "n + 1"), ("expression", "n * 2")]


async def test_templates_render_async_resolves_paths_beside_expressions() -> None:
    fake = FakeCodeRunner({"n + 1": lambda s: s["n"] + 1})
    out = await templates.render_async(
        {"p": "{{ n }}", "e": "{{ n + 1 }}", "t": "{{ trigger.data.message }}"}, SCOPE, fake
    )
    assert out == {"p": 5, "e": 6, "t": "hi"}


def test_templates_validation_flags_expressions_only_without_sandbox() -> None:
    assert templates.expression_issues("{{ a + 1 }}", expressions_enabled=True) == []
    issues = templates.expression_issues("{{ a + 1 }}", expressions_enabled=False)
    assert issues and "sandbox" in issues[0]
    assert templates.expression_issues("{{ }}", expressions_enabled=True) == ["empty {{ }}"]
    assert templates.expression_issues("{{a", expressions_enabled=True) == ["unbalanced {{ }}"]


def test_templates_referenced_nodes() -> None:
    value = {"u": "{{nodes.fetch.output.url}}", "v": ["{{nodes['b c'].output}}"], "w": "{{x}}"}
    assert templates.referenced_nodes(value) == {"fetch", "b c"}
    assert templates.nodes_in_code("return nodes.a.output + nodes['b'].output") == {"a", "b"}
    assert templates.nodes_in_code('return nodes["c d"].output') == {"c d"}
    # A whole node's output, and expressions indexing with either quote.
    assert templates.referenced_nodes("{{nodes.fetch}}") == {"fetch"}
    expr = {"x": "{{ nodes[\"c d\"].output + nodes['e'].output }}"}
    assert templates.referenced_nodes(expr) == {"c d", "e"}


def test_templates_scope_names_are_the_context_then_input_and_its_keys() -> None:
    scope = Scope({"n": 1, "nodes": "shadowed", 2: "not a name"}, {"nodes": {"a": {}}})
    assert scope.names() == {
        "nodes": {"a": {}},  # a context root wins over an input key of the same name
        "input": {"n": 1, "nodes": "shadowed", 2: "not a name"},
        "n": 1,
    }
    assert Scope([1], {}).names() == {"input": [1]}


def test_templates_index_into_a_blob_list_and_input_paths_ask_for_it() -> None:
    from flowmill.blobs.ref import BlobRef

    ref = BlobRef("01a24bea-cc0e-716c-89f9-8e6fde611bb4", 99, "application/json", "json")
    scope = Scope({"rows": ref.to_value(), "doc": ref.to_value()}, {})
    # "input" is not one of the input's keys here, so "input.doc" walks the input itself.
    for text in ("{{rows[1]}}", "{{input.doc.items}}"):
        with pytest.raises(NeedsBlob) as asked:
            render(text, scope)
        assert asked.value.ref == ref
    scope.loaded[ref.id] = ["a", "b"]
    assert render("{{rows[1]}}", scope) == "b"
    assert render("{{rows[-1]}}", scope) == "b"
    assert render("{{rows[2]}}", scope) is None
    scope.loaded[ref.id] = {"items": [1, 2]}
    assert render("{{input.doc.items}}", scope) == [1, 2]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        (True, "true"),
        (False, "false"),
        (1.0, "1"),
        (1.5, "1.5"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),  # JavaScript writes 1e21 and above with an exponent
        ({"a": 1}, '{"a":1}'),
        ("s", "s"),
    ],
)
def test_templates_stringify_like_javascript(value: Any, text: str) -> None:
    assert templates.stringify(value) == text


def test_templates_path_into_a_blob_reference_asks_for_it_and_a_whole_one_passes() -> None:
    from flowmill.blobs.ref import BlobRef

    ref = BlobRef("01a24bea-cc0e-716c-89f9-8e6fde611bb3", 99, "application/json", "json")
    scope = Scope({"doc": ref.to_value()}, {})
    assert render("{{doc}}", scope) == ref.to_value()  # passed on, nothing read
    assert render("{{doc.$flowmill_blob.size}}", scope) == 99  # its own fields: nothing read
    for text in ("{{doc.items[1].name}}", "{{doc.items.length}}", "got {{doc}}"):
        with pytest.raises(NeedsBlob) as asked:
            render(text, scope)
        assert asked.value.ref == ref
        assert asked.value.args == (ref.id,)  # the log line names the blob to load
    scope.loaded[ref.id] = {"items": [{"name": "a"}, {"name": "b"}]}
    assert render("{{doc.items[1].name}}", scope) == "b"
    assert render("{{doc.items.length}}", scope) == 2
    assert render("got {{doc.items[0]}}", scope) == 'got {"name":"a"}'


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("{{result.length}}", 15),  # text has a length
        ("{{items.length}}", 2),
        ("{{result.size}}", None),  # and nothing else
        ("{{items.size}}", None),
        ("{{n.length}}", None),  # a number has no length
        ("{{result[0]}}", None),  # only lists are indexed
        ("{{items[-1].id}}", 2),
        ("{{items[-2].id}}", 1),  # back to the first
        ("{{items[2]}}", None),
    ],
)
def test_templates_paths_walk_lengths_and_indexes(path: str, value: Any) -> None:
    assert templates.render(path, SCOPE) == value


def test_templates_tag_scan_meets_adjacent_empty_and_overlapping_braces() -> None:
    # Tags that touch, an empty tag with no space, and a "{{" inside a tag: each tag is
    # found once, and the scan goes on right after its closing braces.
    assert templates.count_tags("{{a}}{{b}}") == 2
    assert render("{{n}}{{n}}", SCOPE) == "55"
    assert templates.count_tags("{{}}") == 1
    assert templates.expression_issues("{{}}", expressions_enabled=True) == ["empty {{ }}"]
    assert templates.count_tags("{{a{{}}") == 1
    assert templates.count_tags("x}}{{") == 0


async def test_templates_expressions_inside_lists_get_their_values() -> None:
    fake = FakeCodeRunner({"n + 1": lambda s: s["n"] + 1})
    assert await templates.render_async(["{{ n + 1 }}", {"k": ["{{ n + 1 }}"]}], SCOPE, fake) == [
        6,
        {"k": [6]},
    ]


async def test_templates_without_a_sandbox_the_first_expression_is_named() -> None:
    with pytest.raises(TemplateError, match=r"^\{\{a \+ 1\}\} is an expression"):
        await templates.render_async(["{{ a + 1 }}", "{{ b + 2 }}"], SCOPE, None)


def test_templates_a_scope_given_loaded_blobs_reads_them() -> None:
    from flowmill.blobs.ref import BlobRef

    ref = BlobRef("01a24bea-cc0e-716c-89f9-8e6fde611bb5", 9, "application/json", "json")
    scope = Scope({"doc": ref.to_value()}, {}, loaded={ref.id: {"name": "x"}})
    assert render("{{doc.name}}", scope) == "x"


def test_templates_a_tag_may_be_max_tag_chars_long_and_no_longer() -> None:
    limit = templates.MAX_TAG_CHARS
    assert templates.expression_issues("{{" + "a" * limit + "}}", expressions_enabled=True) == []
    assert templates.expression_issues(
        "{{" + "a" * (limit + 1) + "}}", expressions_enabled=True
    ) == [
        f"a {{{{ }}}} of {limit + 1} characters is longer than {limit}; "
        "put long logic in a code node"
    ]
    assert templates.expression_issues("{{ n + 1 }}", expressions_enabled=False) == [
        "{{n + 1}} is an expression, not a path like {{input.field}}; "
        "expressions need the JavaScript sandbox"
    ]


def test_templates_long_texts_render_uncached_alike() -> None:
    text = "x" * 5000 + "{{n}}"  # past the cache's bound: parsed each time
    assert render(text, SCOPE) == "x" * 5000 + "5"


def test_templates_count_tags_walks_objects_and_lists_only() -> None:
    assert templates.count_tags("plain text") == 0
    assert templates.count_tags(7) == 0
    assert templates.count_tags({"a": "{{x}}", "b": ["{{y}} {{z}}", 3, None], "c": True}) == 3
