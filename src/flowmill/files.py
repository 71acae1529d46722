"""Reading workflow definition files (JSON or YAML)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from flowmill import jsonutil
from flowmill.domain.errors import DefinitionError, Issue


def read_definition(path: Path) -> dict[str, Any]:
    """Parse a ``.json``, ``.yaml`` or ``.yml`` file into a document.

    Raises:
        DefinitionError: The file cannot be read or parsed, or is not an object.
    """
    try:
        text = path.read_bytes()
    except OSError as e:
        raise DefinitionError(
            [Issue(str(path), f"cannot read the file: {e.strerror}", "io")]
        ) from e
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        else:
            data = jsonutil.loads(text)
    except (ValueError, yaml.YAMLError) as e:
        raise DefinitionError([Issue(str(path), f"not valid {_kind(path)}: {e}", "syntax")]) from e
    if not isinstance(data, dict):
        raise DefinitionError([Issue(str(path), "a workflow definition must be an object", "type")])
    return data


def _kind(path: Path) -> str:
    return "YAML" if path.suffix.lower() in (".yaml", ".yml") else "JSON"
