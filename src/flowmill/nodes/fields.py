"""Config fields with a meaning of their own, described in a type's JSON Schema.

An editor draws a config form from the schema alone (``GET /api/node-types``); a
keyword of ours beside a field tells it what the field is, so a plugin's field gets the
same editing as a built-in one.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field
from pydantic_core import PydanticUndefined

from flowmill.credentials.kinds import CredentialKind

CREDENTIAL_TYPES_KEY = "x-credential-types"
"""The JSON Schema keyword of a config field naming a credential: the types it takes."""


def credential_field(*types: CredentialKind, default: Any = PydanticUndefined, **kw: Any) -> Any:
    """A config field naming a credential of the vault (its id, name or a template).

    Its JSON Schema carries ``x-credential-types``, the credential types the node can
    use, so the editor's picker lists only those. It guides the editor only: what the
    node accepts at run time is the node's own check.

    Args:
        *types: The credential types the node can use; at least one.
        default: The field's default; required when not given.
        **kw: More arguments of :func:`pydantic.Field` (``min_length``...).

    Returns:
        The field, as :func:`pydantic.Field` returns it.
    """
    if not types:
        raise TypeError("credential_field() takes at least one credential type")
    return Field(default, json_schema_extra={CREDENTIAL_TYPES_KEY: list(types)}, **kw)
