"""An agent's tool-calling conversation as durable state. Pure: no I/O here.

The ``agent`` node keeps a conversation that calls tools in its parked run's state
(:class:`ToolLoop`, stored as JSON each time the node parks), in one of two phases:

- ``wait``: the model's answer calling tools was recorded (once per round, before any
  tool starts: ``Control.record_once``), every call has its child execution (or an
  error of its own: unknown tool, arguments that are not an object), and the node
  is parked until the children end.
- ``ask``: the results are in the conversation; the model is asked (again, after a
  retriable failure that parked the node).

A run repeated after a crash, or two runs racing after two wakes, act on the same
recorded answer, and each child is started with the slot
``tool:<round>:<index>:<call id>``, so a repeated start finds the child it started
(``Control.start_child``). A tool call therefore runs once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flowmill import jsonutil
from flowmill.agents.ports import ChatMessage, ChatReply, Role, ToolCall, ToolResult, Usage

#: Key of a parked agent run's state holding its tool loop.
STATE_KEY = "agent_tools"
#: A tool's result is cut to this many characters for the model (the output keeps it whole).
MAX_RESULT_CHARS = 20_000
#: Parks-and-asks-again after a failed model call once tools have run, before giving up.
MAX_MODEL_RETRIES = 3


def message_to_json(m: ChatMessage) -> dict[str, Any]:
    """A chat message as stored in the state."""
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "name": c.name, "arguments": c.arguments} for c in m.tool_calls
        ]
    if m.tool_results:
        out["tool_results"] = [
            {"call_id": r.call_id, "content": r.content, "is_error": r.is_error}
            for r in m.tool_results
        ]
    return out


def message_from_json(raw: Mapping[str, Any]) -> ChatMessage:
    """The chat message stored by :func:`message_to_json`."""
    role: Role = "assistant" if raw.get("role") == "assistant" else "user"
    return ChatMessage(
        role,
        str(raw.get("content") or ""),
        tuple(
            ToolCall(str(c["id"]), str(c["name"]), c.get("arguments"))
            for c in raw.get("tool_calls") or ()
        ),
        tuple(
            ToolResult(str(r["call_id"]), str(r["content"]), bool(r.get("is_error")))
            for r in raw.get("tool_results") or ()
        ),
    )


def answer_to_json(reply: ChatReply) -> dict[str, Any]:
    """A model's answer calling tools, as recorded for its round."""
    return {
        "text": reply.text,
        "model": reply.model,
        "usage": [reply.usage.input_tokens, reply.usage.output_tokens],
        "tool_calls": message_to_json(ChatMessage("assistant", "", reply.tool_calls)).get(
            "tool_calls", []
        ),
    }


def answer_from_json(raw: Mapping[str, Any]) -> ChatReply:
    """The answer recorded by :func:`answer_to_json`."""
    used = raw.get("usage") or [0, 0]
    calls = message_from_json({"role": "assistant", "tool_calls": raw.get("tool_calls")})
    return ChatReply(
        str(raw.get("text") or ""),
        str(raw.get("model") or ""),
        Usage(int(used[0]), int(used[1])),
        "tool_calls",
        calls.tool_calls,
    )


def result_text(value: Any) -> str:
    """A tool's output as the text a model reads (strings as they are, else JSON)."""
    text = value if isinstance(value, str) else jsonutil.dumps(value)
    return text[:MAX_RESULT_CHARS]


def error_text(error: Any) -> str:
    """A failed tool's error as the text a model reads."""
    if isinstance(error, Mapping):
        kind, message = error.get("type"), error.get("message")
        return f"the tool failed: {kind}: {message}" if kind else f"the tool failed: {message}"
    return f"the tool failed: {error}"


@dataclass
class ToolLoop:
    """The state of an agent conversation that calls tools.

    Attributes:
        phase: ``wait`` or ``ask`` (module docstring).
        round: Rounds of tool calls so far (1 from the first answer with calls).
        messages: The conversation sent to the model: history, the user's message,
            then assistant calls and their results, oldest first.
        calls: The current round's calls: ``{id, name, arguments, execution_id,
            error}`` (``error``: answered without a child).
        made: Every call answered so far: ``{name, arguments, execution_id, result,
            error, round}``.
        usage: Tokens summed over the model calls so far.
        model: The model that answered last.
        request: What each model call repeats: ``model, system, max_tokens,
            temperature, timeout_s``.
        turn: The exchange's identity: ``agent_id, message, conversation_id,
            client_id, asked_at``.
        failures: Failed model calls since the last answer (parked, asked again).
    """

    phase: str
    round: int
    messages: list[ChatMessage]
    calls: list[dict[str, Any]]
    request: dict[str, Any]
    turn: dict[str, Any]
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    made: list[dict[str, Any]] = field(default_factory=list)
    failures: int = 0

    @staticmethod
    def calls_of(answer: tuple[ToolCall, ...]) -> list[dict[str, Any]]:
        """A model answer's calls as a round's pending calls."""
        return [
            {"id": c.id, "name": c.name, "arguments": c.arguments, "execution_id": None}
            for c in answer
        ]

    def add_usage(self, usage: Usage) -> None:
        """Count one more model call's tokens."""
        self.usage = Usage(
            self.usage.input_tokens + usage.input_tokens,
            self.usage.output_tokens + usage.output_tokens,
        )

    def to_state(self) -> dict[str, Any]:
        """The loop as a parked run's state (JSON)."""
        return {
            STATE_KEY: {
                "phase": self.phase,
                "round": self.round,
                "messages": [message_to_json(m) for m in self.messages],
                "calls": self.calls,
                "request": self.request,
                "turn": self.turn,
                "usage": [self.usage.input_tokens, self.usage.output_tokens],
                "model": self.model,
                "made": self.made,
                "failures": self.failures,
            }
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any] | None) -> ToolLoop | None:
        """The loop a parked run's state holds; ``None`` when it holds none."""
        raw = (state or {}).get(STATE_KEY)
        if not isinstance(raw, Mapping):
            return None
        used = raw.get("usage") or [0, 0]
        return cls(
            phase=str(raw["phase"]),
            round=int(raw["round"]),
            messages=[message_from_json(m) for m in raw.get("messages") or ()],
            calls=[dict(c) for c in raw.get("calls") or ()],
            request=dict(raw["request"]),
            turn=dict(raw["turn"]),
            usage=Usage(int(used[0]), int(used[1])),
            model=str(raw.get("model") or ""),
            made=[dict(m) for m in raw.get("made") or ()],
            failures=int(raw.get("failures") or 0),
        )
