"""The layering of DESIGN.md §2, checked on the import graph read from the source.

Layers, bottom first: each may import its own layer and those below, never above. Every
import counts: at module level, inside functions (a deferred import is still a
dependency) and under ``TYPE_CHECKING`` (an annotation is one too). The imports that
break the rule today, and the cycles, are listed by name: a new one fails, and so does
a listed one that is gone (take it off the list, so that it cannot come back unseen).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import flowmill

SRC = Path(flowmill.__file__).resolve().parent

#: Bottom first. A name is a package or module under ``flowmill.`` (the longest that
#: matches wins); ``flowmill`` is the package's own ``__init__``.
LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    ("base", frozenset({
        "domain", "clock", "ids", "jsonutil", "constants", "coalesce", "extras", "plugins",
        "files", "faults", "fairness", "logs", "quotas", "tasks",
        # pure: trigger configs, schedules and their keys, read by store and queue too
        "triggers.definitions", "triggers.schedule", "triggers.keys",
        # a stored value's reference, and the port of the bytes behind it
        "blobs.ref", "blobs.ports",
    })),
    # user code in isolation: a leaf, it knows nothing of the engine
    ("sandbox", frozenset({"sandbox"})),
    # the executor, with the node contract it runs (base class, registry) and the
    # context it logs in
    ("engine", frozenset({
        "engine", "progress", "nodes.base", "nodes.registry", "observability.logcontext",
    })),
    # what nodes are given: outbound HTTP, credentials, models
    ("node services", frozenset({"net", "credentials", "agents"})),
    ("nodes", frozenset({"nodes"})),
    ("adapters", frozenset({
        "store", "queue", "channels", "projections", "retention", "realtime.news", "blobs",
    })),
    ("settings", frozenset({"config"})),
    ("triggers", frozenset({"triggers"})),
    ("assembly", frozenset({
        "runtime", "wiring", "validation", "observability", "flowmill", "blobs.build",
    })),
    # the API process: HTTP routes, realtime streams, the background services
    ("api", frozenset({"api", "realtime", "ui", "background", "runs", "observability.server"})),
    ("entry points", frozenset({
        "cli", "cli_api", "cli_errors", "cli_executions", "cli_local", "cli_projections",
        "cli_quotas", "cli_remote", "cli_retention", "cli_triggers", "cli_workflows",
        "__main__", "testing", "testkit",
    })),
)  # fmt: skip

#: Imports that go up today (importer, imported), each a debt with its reason.
KNOWN_UPWARD: frozenset[tuple[str, str]] = frozenset(
    {
        # the SQL adapters of credentials and agents live beside their ports, not in store/
        ("flowmill.agents.backend", "flowmill.store.database"),
        ("flowmill.agents.store", "flowmill.store.database"),
        ("flowmill.agents.store", "flowmill.store.executions"),
        ("flowmill.agents.store", "flowmill.store.tables"),
        ("flowmill.credentials.vault", "flowmill.store.database"),
        ("flowmill.credentials.vault", "flowmill.store.executions"),
        ("flowmill.credentials.vault", "flowmill.store.tables"),
        # the NodeServices port names the services' types (annotations only)
        ("flowmill.engine.services", "flowmill.agents.ports"),
        ("flowmill.engine.services", "flowmill.credentials.use"),
        ("flowmill.engine.services", "flowmill.net.ssrf"),
        # a node's context makes the record of a credential's use
        ("flowmill.nodes.base", "flowmill.credentials.use"),
        # large values: the services name the blob store's type (annotation only), the
        # output cap moves a large output into it, and the HTTP node streams a response
        # into it. A port for writing (beside blobs.ports' one for bytes) pays these.
        ("flowmill.engine.services", "flowmill.blobs.store"),
        ("flowmill.engine.middleware", "flowmill.blobs.spill"),
        ("flowmill.nodes.http_request", "flowmill.blobs.store"),
    }
)

#: Import cycles today, each a debt.
KNOWN_CYCLES: frozenset[frozenset[str]] = frozenset(
    {
        # the agent port's HTTP client type, and NodeServices' agent backend type
        frozenset({"flowmill.agents.ports", "flowmill.engine.services"}),
        # the CLI's workflow commands register on the app that imports them
        frozenset({"flowmill.cli", "flowmill.cli_workflows"}),
    }
)


def modules() -> dict[str, Path]:
    """Dotted name -> file, for every module of the package."""
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(path: Path, known: Mapping[str, Path]) -> set[str]:
    """The package's modules that ``path`` imports (the package when a name is taken
    from its ``__init__``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] == "flowmill":
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    found.add(sub if sub in known else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "flowmill")
    return {m for m in found if m in known}


def graph() -> dict[str, set[str]]:
    """Module -> the modules it imports."""
    known = modules()
    return {name: imports(path, known) - {name} for name, path in known.items()}


def cycles(g: Mapping[str, set[str]]) -> set[frozenset[str]]:
    """Groups of modules that import each other, directly or not (Tarjan's strongly
    connected components of more than one module, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: set[frozenset[str]] = set()
    for root in sorted(g):
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(g[root])))]
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(g[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[v])
                if low[v] == index[v]:
                    group = set()
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        group.add(w)
                        if w == v:
                            break
                    if len(group) > 1:
                        out.add(frozenset(group))
    return out


def layer_of(module: str) -> int:
    """The layer of a dotted module name (by its longest prefix in :data:`LAYERS`)."""
    parts = module.split(".")[1:] or ["flowmill"]
    for n in range(len(parts), 0, -1):
        name = ".".join(parts[:n])
        for i, (_, members) in enumerate(LAYERS):
            if name in members:
                return i
    raise AssertionError(f"{module}: in no layer of LAYERS (add its package there)")


def upward(g: Mapping[str, set[str]]) -> set[tuple[str, str]]:
    return {(a, b) for a, bs in g.items() for b in bs if layer_of(b) > layer_of(a)}


def test_layering_every_module_has_a_layer() -> None:
    for module in modules():
        layer_of(module)


def test_layering_no_new_upward_import() -> None:
    found = upward(graph())
    new = sorted(found - KNOWN_UPWARD)
    assert not new, "imports going up a layer (DESIGN.md §2):\n" + "\n".join(
        f"  {a} ({LAYERS[layer_of(a)][0]}) -> {b} ({LAYERS[layer_of(b)][0]})" for a, b in new
    )
    gone = sorted(KNOWN_UPWARD - found)
    assert not gone, f"fixed: take these off KNOWN_UPWARD: {gone}"


def test_layering_no_new_import_cycle() -> None:
    found = cycles(graph())
    new = [sorted(c) for c in found - KNOWN_CYCLES]
    assert not new, f"new import cycles: {new}"
    gone = [sorted(c) for c in KNOWN_CYCLES - found]
    assert not gone, f"fixed: take these off KNOWN_CYCLES: {gone}"


def test_layering_the_sandbox_is_a_leaf() -> None:
    """The sandbox's worker processes import it: it takes nothing from the engine or
    any layer above the base, whatever KNOWN_UPWARD says."""
    base = LAYERS[0][1] | {"sandbox"}
    g = graph()
    leaks = {
        (a, b)
        for a, bs in g.items()
        if a.startswith("flowmill.sandbox")
        for b in bs
        if b.split(".")[1] not in base
    }
    assert not leaks, sorted(leaks)
