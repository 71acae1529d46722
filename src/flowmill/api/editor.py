"""What the visual editor needs beyond the workflow routes: the node catalogue and
validation without saving.

Both are public API like the rest (DESIGN §11: the web app is a client of the public
API): ``curl`` gets the same catalogue and the same problems.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from flowmill.api.deps import Caller, Ctx
from flowmill.api.errors import ERROR_RESPONSES, field_path
from flowmill.api.jsonvalue import JsonObject
from flowmill.api.schemas import (
    NodeHandlesOut,
    NodeTypeList,
    NodeTypeOut,
    ValidationOut,
    ValidationProblem,
    VersionDefinitionIn,
)
from flowmill.api.views import canonical, document_of
from flowmill.domain.errors import DefinitionError
from flowmill.nodes.catalog import NodeTypeInfo, describe

router = APIRouter(prefix="/api", tags=["editor"], responses=ERROR_RESPONSES)

_NODE = re.compile(r"^nodes\[([^\]]+)\]")
_EDGE = re.compile(r"^edges\[(\d+)\]")


@router.get("/node-types", response_model=NodeTypeList, summary="List node types")
async def list_node_types(ctx: Ctx, caller: Caller) -> NodeTypeList:
    """Every node type this server runs, built-in and plugin, with the JSON Schema of
    its config: an editor renders its palette and config forms from this alone."""
    return NodeTypeList(items=[_type_out(i) for i in describe(ctx.runtime.engine.registry)])


@router.post("/workflows/validate", response_model=ValidationOut, summary="Validate a definition")
async def validate_workflow(ctx: Ctx, caller: Caller, body: JsonObject) -> ValidationOut:
    """Check a definition by the rules a save applies (``flowmill validate``'s), without
    saving it, and list every problem found, each naming its node or edge.

    Always 200 for a JSON object: an invalid definition is an answer here, not an error.
    """
    try:
        parsed = VersionDefinitionIn.model_validate(body)
    except ValidationError as e:
        problems = [
            _problem(field_path(err["loc"]), str(err.get("type", "invalid")), err["msg"], body)
            for err in e.errors()
        ]
        return ValidationOut(valid=False, problems=problems)
    document = document_of(parsed)
    try:
        await canonical(ctx.runtime.engine, document, caller.tenant_id)
    except DefinitionError as e:
        return ValidationOut(valid=False, problems=problems_of(e, document))
    return ValidationOut(valid=True, problems=[])


@router.api_route(
    "/workflows/validate", methods=["GET", "PUT", "PATCH", "DELETE"], include_in_schema=False
)
async def validate_other_methods() -> None:
    """``/validate`` is not a workflow id: other methods on it are a 405, not a 422."""
    raise StarletteHTTPException(405)


def problems_of(error: DefinitionError, document: dict[str, Any]) -> list[ValidationProblem]:
    """The validation error's issues as problems naming their node or edge.

    The one place that knows the shape of validation's issues: when validation reports
    its problems differently, only this adapter changes.
    """
    return [_problem(i.path, i.code, i.message, document) for i in error.issues]


def _problem(path: str, code: str, message: str, document: Any) -> ValidationProblem:
    node_id: str | None = None
    edge: int | None = None
    if m := _NODE.match(path):
        node_id = _node_id(m.group(1), document)
    elif m := _EDGE.match(path):
        edge = int(m.group(1))
    return ValidationProblem(
        path=path, node_id=node_id, edge_index=edge, code=code, message=message
    )


def _node_id(key: str, document: Any) -> str | None:
    """``nodes[x]`` names a node by id, or by index when the node has no valid id."""
    nodes = document.get("nodes") if isinstance(document, dict) else None
    if not isinstance(nodes, list):
        return key
    ids = [n.get("id") for n in nodes if isinstance(n, dict)]
    if key in ids:
        return key
    if key.isdigit() and int(key) < len(nodes):
        found = nodes[int(key)].get("id") if isinstance(nodes[int(key)], dict) else None
        return found if isinstance(found, str) else None
    return key


def _type_out(info: NodeTypeInfo) -> NodeTypeOut:
    h = info.handles
    return NodeTypeOut(
        type=info.type,
        label=info.label,
        description=info.description,
        category=info.category,
        icon=info.icon,
        is_trigger=info.is_trigger,
        plugin=info.plugin,
        handles=NodeHandlesOut(
            input=h.input, outputs=list(h.outputs), outputs_from=h.outputs_from, error=h.error
        ),
        code_fields=list(info.code_fields),
        config_schema=info.config_schema,
    )
