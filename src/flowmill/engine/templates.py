"""``{{ }}`` templates: paths resolved against a node's input, then its context.

``"{{a.b[0].c}}"`` alone in a string keeps the value's type; inside text the value is
stringified (JSON for objects). Anything that is not a plain path is an *expression*
and goes to an :class:`ExpressionEvaluator` (the JavaScript sandbox); without one it is
an error, never evaluated in Python.

Parsing is linear in the text: tags are found with two ``str.find`` calls each, never
with a lazy ``.*?`` pattern between the braces (it took quadratic time on ``"{{" * n``, and
one 32 KB request held the event loop for seconds). A tag's body is capped at
:data:`MAX_TAG_CHARS`; validation also caps the tags of a definition
(:data:`MAX_TAGS_PER_DEFINITION`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

from flowmill import jsonutil
from flowmill.domain.errors import Invalid

_IDENT = r"[A-Za-z_$][A-Za-z0-9_$\-]*"
_PATH = re.compile(
    rf"""^\s*(?P<path>{_IDENT}(?:\.{_IDENT}|\[\s*-?\d+\s*\]|\[\s*"[^"\\]*"\s*\]|\[\s*'[^'\\]*'\s*\])*)\s*$"""
)
_SEGMENT = re.compile(
    rf"""\.?({_IDENT})|\[\s*(-?\d+)\s*\]|\[\s*"([^"\\]*)"\s*\]|\[\s*'([^'\\]*)'\s*\]"""
)

MAX_TAG_CHARS = 10_000
"""Longest ``{{ }}`` body accepted (an expression longer than this belongs in code)."""
MAX_TAGS_PER_DEFINITION = 10_000
"""Most ``{{ }}`` tags one workflow definition may hold."""

CONTEXT_ROOTS = ("input", "trigger", "nodes", "vars", "execution", "item", "index", "env")


class TemplateError(Invalid):
    """A template cannot be parsed or evaluated."""


class ExpressionEvaluator(Protocol):
    """Evaluates non-path ``{{ }}`` expressions (JavaScript, in the sandbox)."""

    async def evaluate_many(
        self, expressions: Sequence[str], scope: Mapping[str, Any]
    ) -> list[Any]:
        """Values of ``expressions``, each evaluated with ``scope``'s names bound.

        One call per rendered value, so a sandbox pays its round trip once.
        """
        ...


def _no_expressions(expression: str) -> TemplateError:
    return TemplateError(
        f"{{{{{expression}}}}} is an expression, not a path; expressions run "
        "in the JavaScript sandbox, which is not available here"
    )


@dataclass(frozen=True)
class Path:
    """A parsed path like ``nodes.fetch.output.items[0]``."""

    text: str
    parts: tuple[str | int, ...]


@dataclass(frozen=True)
class Expr:
    """A ``{{ }}`` body that is not a plain path."""

    text: str


Part = str | Path | Expr


@dataclass(frozen=True)
class Template:
    """A parsed string: literal text and ``{{ }}`` parts."""

    parts: tuple[Part, ...]

    @property
    def whole(self) -> Path | Expr | None:
        """The single tag when the string is nothing but one tag (type is kept)."""
        if len(self.parts) == 1 and not isinstance(self.parts[0], str):
            return self.parts[0]
        return None

    @property
    def is_static(self) -> bool:
        """No tags at all."""
        return all(isinstance(p, str) for p in self.parts)


_CACHED_CHARS = 4096


def parse(text: str) -> Template:
    """Parse a string into literal text and tags (short texts cached: templates repeat).

    Long texts are not cached, so a few thousand large requests cannot pin gigabytes.
    """
    if "{{" not in text:
        return Template((text,))
    if len(text) > _CACHED_CHARS:
        return _parse(text)
    return _parse_cached(text)


@lru_cache(maxsize=4096)
def _parse_cached(text: str) -> Template:
    return _parse(text)


def _parse(text: str) -> Template:
    parts: list[Part] = []
    pos = 0
    for start, end in _tag_spans(text):
        if start > pos:
            parts.append(text[pos:start])
        parts.append(_parse_tag(text[start + 2 : end]))
        pos = end + 2
    if pos < len(text):
        parts.append(text[pos:])
    return Template(tuple(parts))


def _tag_spans(text: str) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of each tag: ``text[start:start+2]`` is ``{{``, ``text[end:end+2]``
    is the first ``}}`` after it. Linear: each character is looked at a bounded number of
    times, and a ``{{`` without a closing ``}}`` ends the scan (the rest is text)."""
    pos = 0
    while True:
        start = text.find("{{", pos)
        if start < 0:
            return
        end = text.find("}}", start + 2)
        if end < 0:
            return
        yield start, end
        pos = end + 2


def count_tags(value: Any) -> int:
    """How many ``{{ }}`` tags ``value`` holds (strings, lists and objects, recursively)."""
    if isinstance(value, str):
        return sum(1 for _ in _tag_spans(value)) if "{{" in value else 0
    if isinstance(value, Mapping):
        return sum(count_tags(v) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(count_tags(v) for v in value)
    return 0


def _parse_tag(body: str) -> Path | Expr:
    m = _PATH.match(body)
    if not m:
        return Expr(body)
    text = m.group("path")
    parts: list[str | int] = []
    for seg in _SEGMENT.finditer(text):
        ident, index, dq, sq = seg.groups()
        if index is not None:
            parts.append(int(index))
        else:
            parts.append(ident if ident is not None else (dq if dq is not None else sq))
    if len(parts) == 1 and parts[0] in ("true", "false", "null", "undefined"):
        return Expr(body)  # a literal, which JavaScript evaluates
    return Path(text, tuple(parts))


class Scope:
    """What templates see: a node's ``input`` first, then the named context roots."""

    __slots__ = ("context", "input")

    def __init__(self, input: Any, context: Mapping[str, Any]) -> None:
        self.input = input
        self.context = context

    def lookup(self, path: Path) -> Any:
        """Resolve a path; a missing step yields ``None``."""
        head = path.parts[0]
        if isinstance(self.input, Mapping) and head in self.input:
            value: Any = self.input
        elif head == "input":
            return _walk(self.input, path.parts[1:])
        elif head in self.context:
            value = self.context
        else:
            return None
        return _walk(value, path.parts)

    def names(self) -> dict[str, Any]:
        """Every name visible to an expression: context roots, then input's keys."""
        names = dict(self.context)
        names["input"] = self.input
        if isinstance(self.input, Mapping):
            for k, v in self.input.items():
                if isinstance(k, str) and k not in names:
                    names[k] = v
        return names


def _walk(value: Any, parts: tuple[str | int, ...]) -> Any:
    for part in parts:
        if value is None:
            return None
        if isinstance(part, int):
            if isinstance(value, list | tuple) and -len(value) <= part < len(value):
                value = value[part]
            else:
                return None
        elif isinstance(value, Mapping):
            value = value.get(part)
        elif (isinstance(value, list | tuple) and part == "length") or (
            isinstance(value, str) and part == "length"
        ):
            value = len(value)
        else:
            return None
    return value


Evaluated = Mapping[str, Any]
"""Values of a value's expressions, keyed by expression text (see :func:`expressions_in`)."""


def expressions_in(value: Any) -> list[str]:
    """The distinct expression texts inside ``value``, in order of appearance."""
    seen: dict[str, None] = {}
    for tag in iter_tags(value):
        if isinstance(tag, Expr):
            seen.setdefault(tag.text.strip(), None)
    return list(seen)


async def evaluate(value: Any, scope: Scope, evaluator: ExpressionEvaluator | None) -> Evaluated:
    """Evaluate every expression inside ``value`` in one call to ``evaluator``."""
    exprs = expressions_in(value)
    if not exprs:
        return {}
    if evaluator is None:
        raise _no_expressions(exprs[0])
    values = await evaluator.evaluate_many(exprs, scope.names())
    return dict(zip(exprs, values, strict=True))


async def render_async(
    value: Any, scope: Scope, evaluator: ExpressionEvaluator | None = None
) -> Any:
    """Render ``value``, evaluating its expressions first (in the sandbox)."""
    return render(value, scope, await evaluate(value, scope, evaluator))


def render(value: Any, scope: Scope, evaluated: Evaluated | None = None) -> Any:
    """Render templates inside ``value`` (strings, lists and objects, recursively).

    Args:
        value: What to render.
        scope: Names for paths.
        evaluated: Values of the expressions inside ``value`` (from :func:`evaluate`).

    Raises:
        TemplateError: An expression was not evaluated beforehand.
    """
    if isinstance(value, str):
        return render_string(value, scope, evaluated)
    if isinstance(value, Mapping):
        return {k: render(v, scope, evaluated) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, scope, evaluated) for v in value]
    return value


def render_string(text: str, scope: Scope, evaluated: Evaluated | None = None) -> Any:
    """Render one string; a lone tag keeps its value's type."""
    tpl = parse(text)
    if tpl.is_static:
        return text
    whole = tpl.whole
    if whole is not None:
        return _value(whole, scope, evaluated)
    out: list[str] = []
    for part in tpl.parts:
        out.append(part if isinstance(part, str) else stringify(_value(part, scope, evaluated)))
    return "".join(out)


def _value(part: Path | Expr, scope: Scope, evaluated: Evaluated | None) -> Any:
    if isinstance(part, Path):
        return scope.lookup(part)
    key = part.text.strip()
    if evaluated is None or key not in evaluated:
        raise _no_expressions(key)
    return evaluated[key]


def stringify(value: Any) -> str:
    """Text form of a value inside a string, as JavaScript template literals print it."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    if isinstance(value, int):
        return str(value)
    return jsonutil.dumps(value)


def iter_tags(value: Any) -> Iterator[Path | Expr]:
    """Every tag inside ``value``, recursively."""
    if isinstance(value, str):
        for part in parse(value).parts:
            if not isinstance(part, str):
                yield part
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from iter_tags(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from iter_tags(v)


def referenced_nodes(value: Any) -> set[str]:
    """Node ids that paths like ``nodes.<id>...`` inside ``value`` refer to.

    The runner loads only these outputs for a step, so a long chain does not reload
    every earlier output at every step.
    """
    found: set[str] = set()
    for tag in iter_tags(value):
        if isinstance(tag, Path):
            if len(tag.parts) >= 2 and tag.parts[0] == "nodes" and isinstance(tag.parts[1], str):
                found.add(tag.parts[1])
        else:
            found.update(_NODES_IN_CODE.findall(tag.text))
            found.update(m[0] or m[1] for m in _NODES_INDEXED.findall(tag.text))
    return found


_NODES_IN_CODE = re.compile(rf"\bnodes\s*\.\s*({_IDENT})")
_NODES_INDEXED = re.compile(r"""\bnodes\s*\[\s*(?:"([^"]+)"|'([^']+)')\s*\]""")


def nodes_in_code(code: str) -> set[str]:
    """Node ids a piece of user code refers to as ``nodes.x`` or ``nodes["x"]``."""
    return set(_NODES_IN_CODE.findall(code)) | {m[0] or m[1] for m in _NODES_INDEXED.findall(code)}


def expression_issues(value: Any, *, expressions_enabled: bool) -> list[str]:
    """Problems with the tags in ``value`` that can be found without running anything."""
    issues: list[str] = []
    for tag in iter_tags(value):
        if len(tag.text) > MAX_TAG_CHARS:
            issues.append(
                f"a {{{{ }}}} of {len(tag.text)} characters is longer than {MAX_TAG_CHARS}; "
                "put long logic in a code node"
            )
        elif isinstance(tag, Expr):
            if not tag.text.strip():
                issues.append("empty {{ }}")
            elif not expressions_enabled:
                issues.append(
                    f"{{{{{tag.text.strip()}}}}} is an expression, not a path like "
                    "{{input.field}}; expressions need the JavaScript sandbox"
                )
    if isinstance(value, str) and value.count("{{") != value.count("}}"):
        issues.append("unbalanced {{ }}")
    return issues
