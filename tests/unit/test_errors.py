"""Flowmill's errors: one root, builtins kept, node failure types derived from classes."""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

import pytest

from flowmill.domain import errors
from flowmill.domain.errors import (
    FlowmillError,
    Invalid,
    NodeError,
    NodeFailure,
    NotFound,
    WorkflowNotFound,
)

SRC = Path(errors.__file__).resolve().parents[1]
BUILTIN_EXCEPTIONS = {
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException)
}
# Exceptions that are deliberately not Flowmill's: private control flow inside one
# module, a test helper's assertion, a fault that must look like the network's own.
OUTSIDE_THE_ROOT = {"NeverHappened", "InjectedFault"}


def _exception_classes() -> dict[str, tuple[str, list[str]]]:
    """Every class in ``src/flowmill``: name -> (file, names of its bases)."""
    found: dict[str, tuple[str, list[str]]] = {}
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                bases = [
                    b.id if isinstance(b, ast.Name) else b.attr
                    for b in node.bases
                    if isinstance(b, ast.Name | ast.Attribute)
                ]
                found.setdefault(node.name, (str(path.relative_to(SRC)), bases))
    return found


def test_errors_every_exception_class_descends_from_flowmill_error() -> None:
    classes = _exception_classes()

    def chain(name: str, seen: frozenset[str] = frozenset()) -> set[str]:
        if name in seen or name not in classes:
            return {name}
        out = {name}
        for base in classes[name][1]:
            out |= chain(base, seen | {name})
        return out

    strays = []
    for name, (path, _) in classes.items():
        ancestors = chain(name)
        is_exception = bool(ancestors & BUILTIN_EXCEPTIONS) or "HTTPException" in ancestors
        if not is_exception or name.startswith("_") or name in OUTSIDE_THE_ROOT:
            continue
        if "FlowmillError" not in ancestors and name != "FlowmillError":
            strays.append(f"{path}: {name}")
    assert not strays, "exceptions outside FlowmillError:\n" + "\n".join(sorted(strays))


def test_errors_named_classes_keep_the_builtin_they_stand_for() -> None:
    assert issubclass(NotFound, LookupError) and issubclass(NotFound, FlowmillError)
    assert issubclass(Invalid, ValueError) and issubclass(Invalid, FlowmillError)
    assert issubclass(errors.DefinitionError, Invalid)
    with pytest.raises(LookupError):
        raise WorkflowNotFound("wf")


def _node_failures() -> list[type[NodeFailure]]:
    import flowmill.nodes.agent
    import flowmill.nodes.connectors.database
    import flowmill.nodes.connectors.email
    import flowmill.nodes.delay
    import flowmill.nodes.loop
    import flowmill.nodes.wait  # noqa: F401 - their failure classes register as subclasses

    out: list[type[NodeFailure]] = []
    stack: list[type[NodeFailure]] = [NodeFailure]
    while stack:
        cls = stack.pop()
        out.append(cls)
        stack.extend(cls.__subclasses__())
    return [c for c in out if c is not NodeFailure]


@pytest.mark.parametrize("cls", _node_failures(), ids=lambda c: c.__name__)
def test_errors_a_node_failure_type_is_its_class_name(cls: type[NodeFailure]) -> None:
    err = cls("what happened")
    assert isinstance(err, NodeError)
    assert err.to_dict()["type"] == (cls.error_type or cls.__name__)
    assert err.retriable is cls.retriable_by_default
    assert cls("again", retriable=not cls.retriable_by_default).retriable is not (
        cls.retriable_by_default
    )
    assert err.details == {}
    assert cls("with facts", details={"status": 503}).details == {"status": 503}


def test_errors_node_failure_types_users_see_are_unchanged() -> None:
    """The types are stored on runs and matched by users' error routes: renaming a class
    must not silently rename what they see."""
    seen = {c.error_type or c.__name__ for c in _node_failures()}
    assert seen >= {
        "InvalidConfig", "CredentialError", "Timeout", "NodeTimeout", "InvalidOutput",
        "OutputTooLarge", "SandboxUnavailable", "ControlUnavailable", "ChildFailed",
        "RecordBusy", "InvalidLoop", "MaxIterationsExceeded", "InvalidDelay",
        "DatabaseUnavailable", "QueryError", "DriverMissing", "ConnectionError",
        "MaxToolRoundsExceeded", "WaitTimeout", "HttpError",
    }  # fmt: skip
