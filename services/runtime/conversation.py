"""The vocabulary of a conversation, shared by every service: messages,
tools and tool calls, customer facts, and the events of a streamed answer.
Text deltas are plain `str`, so the per-token path allocates nothing
extra; everything else is a small frozen dataclass. The protos carry the
same things between services (`services/runtime/conversation_wire.py`
translates); inside a service, code speaks these."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ROLES = ("system", "user", "assistant", "tool")
# How the customer of a turn was found: the grounding's status ("" when
# the turn was not about a customer at all).
FOUND, NOT_FOUND, AMBIGUOUS = "found", "not_found", "ambiguous"
NO_IDENTIFIER, UNAVAILABLE = "no_identifier", "unavailable"
FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter")


@dataclass(frozen=True, slots=True)
class Fact:
    """One thing the data says about a customer, with the record it came
    from and, for personal data, its kind (see the field policy)."""

    topic: str
    label: str
    value: str
    record_id: str
    pii_kind: str = ""


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str = ""
    parameters: dict[str, Any] | None = None  # JSON Schema

    def schema(self) -> dict[str, Any]:
        """The argument schema; a function without one takes no arguments."""
        return self.parameters or {"type": "object", "properties": {}}


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """OpenAI's tool_choice: "auto", "none", "required" or "function" (with
    its name); `single_call` is `parallel_tool_calls: false`."""

    mode: str
    function_name: str = ""
    single_call: bool = False


@dataclass(frozen=True, slots=True)
class Message:
    role: str  # one of ROLES
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str = ""
    name: str = ""


@dataclass(frozen=True)
class ResponseFormat:
    type: str  # "text", "json_object" or "json_schema"
    json_schema: dict[str, Any] | None = None  # the OpenAI json_schema object


# -- the events of a streamed answer, after its text deltas (str) ---------


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a streamed tool call: id and name on its first piece."""

    index: int
    id: str = ""
    name: str = ""
    arguments: str = ""


class ToolCallAssembly:
    """Streamed tool-call pieces into whole calls, the one place they are
    put together: the first piece of a call names it (id, name), later
    ones append to its arguments."""

    def __init__(self) -> None:
        self._calls: dict[int, ToolCall] = {}

    def add(self, piece: ToolCallDelta) -> None:
        call = self._calls.get(piece.index) or ToolCall("", "", "")
        self._calls[piece.index] = ToolCall(
            piece.id or call.id, piece.name or call.name, call.arguments + piece.arguments
        )

    def calls(self) -> list[ToolCall]:
        """The whole calls, in the order of their index."""
        return [self._calls[index] for index in sorted(self._calls)]

    def __bool__(self) -> bool:
        return bool(self._calls)


@dataclass(frozen=True, slots=True)
class Finish:
    reason: str  # one of FINISH_REASONS
    model: str = ""  # catalog model that answered (set by the failover chain)
    provider: str = ""


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class StreamError:
    """The end of a stream that failed after it had started."""

    code: str  # a gRPC status name, e.g. "UNAVAILABLE"
    message: str
