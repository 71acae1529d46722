"""From an agent's character and a conversation to what the model is sent. Pure.

The seed's ``character`` is free-form JSON; these keys have a meaning:

- ``name``: who the agent is ("Ava, of Rosa's Bakery");
- ``persona`` (or ``bio``): a description, in the agent's voice or about it;
- ``style``: how it writes (text, or a list of rules);
- ``instructions``: what it must and must not do;
- ``examples``: ``[{"user": "...", "assistant": "..."}]`` exchanges to imitate.

Other keys are listed as ``key: value`` lines, so nothing the tenant wrote is dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from flowmill import jsonutil
from flowmill.agents.ports import ChatMessage, Turn

KNOWN = ("name", "persona", "bio", "style", "instructions", "examples")


def _lines(value: Any) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, Sequence):
        return "\n".join(f"- {_lines(v)}" for v in value)
    return jsonutil.dumps(value)


def system_prompt(character: Mapping[str, Any]) -> str:
    """The system prompt of a character."""
    parts: list[str] = []
    if character.get("name"):
        parts.append(f"You are {_lines(character['name'])}.")
    for key in ("persona", "bio"):
        if character.get(key):
            parts.append(_lines(character[key]))
    if character.get("style"):
        parts.append(f"Style:\n{_lines(character['style'])}")
    if character.get("instructions"):
        parts.append(f"Instructions:\n{_lines(character['instructions'])}")
    examples = character.get("examples")
    if isinstance(examples, Sequence) and not isinstance(examples, str) and examples:
        shown = []
        for example in examples:
            if isinstance(example, Mapping):
                shown.append(
                    f"User: {_lines(example.get('user', ''))}\n"
                    f"You: {_lines(example.get('assistant', ''))}"
                )
        if shown:
            parts.append("Examples of how you answer:\n" + "\n\n".join(shown))
    extra = [f"{k}: {_lines(v)}" for k, v in character.items() if k not in KNOWN and v]
    if extra:
        parts.append("\n".join(extra))
    return "\n\n".join(parts)


def conversation(history: Iterable[Turn], message: str) -> tuple[ChatMessage, ...]:
    """History (oldest first) and the new user message, as chat messages.

    Turns of another role are dropped; two turns of the same role in a row (a reply
    lost to a failed send, say) are merged, since providers want them alternating.
    """
    out: list[ChatMessage] = []
    pairs: list[tuple[str, str]] = [(t.role, t.content) for t in history]
    for role, content in [*pairs, ("user", message)]:
        if role not in ("user", "assistant") or not content:
            continue
        if out and out[-1].role == role:
            out[-1] = ChatMessage(out[-1].role, f"{out[-1].content}\n\n{content}")
        else:
            out.append(ChatMessage("user" if role == "user" else "assistant", content))
    while out and out[0].role != "user":  # Anthropic wants the user first
        out.pop(0)
    return tuple(out)
