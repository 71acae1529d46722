"""The editor's test helpers: a plugin node type, installed for a real server too.

``GreetingNode`` stands for a third-party plugin: the editor must offer it, with a form
drawn from its config schema, with no UI code written for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from flowmill.nodes.base import NodeConfig, NodeContext, NodeType

# not tests.conftest's: a server process imports this module to load the plugin
ROOT = Path(__file__).resolve().parents[1]


class GreetingConfig(NodeConfig):
    """Who to greet, and how."""

    name: str = Field(min_length=1, description="Who to greet (templates allowed).")
    style: Literal["plain", "shout"] = "plain"
    repeat: int = Field(1, ge=1, le=5)


class GreetingNode(NodeType[GreetingConfig]):
    """Outputs a greeting."""

    type_name = "greeting"
    Config = GreetingConfig
    description: ClassVar[str] = "Greet someone (a plugin)."
    category: ClassVar[str] = "demo plugins"
    icon: ClassVar[str] = "smile"

    async def execute(self, ctx: NodeContext, config: GreetingConfig) -> Any:
        name = await ctx.render(config.name)
        text = " ".join([f"Hello, {name}!"] * config.repeat)
        return {"greeting": text.upper() if config.style == "shout" else text}


def install_greeting_plugin(folder: Path) -> dict[str, str]:
    """Make ``GreetingNode`` an installed plugin for processes started with the returned
    environment (a distribution's metadata with its entry point, on ``PYTHONPATH``)."""
    info = folder / "flowmill_greeting-1.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: flowmill-greeting\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[flowmill.nodes]\ngreeting = tests.editor_support:GreetingNode\n"
    )
    return {"PYTHONPATH": f"{folder}:{ROOT}"}
