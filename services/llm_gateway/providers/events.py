"""What a provider receives and yields. Text deltas are plain `str` so the
per-token path allocates nothing extra; everything else is a small frozen
dataclass."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Finish:
    reason: str  # "stop", "length", "tool_calls" or "content_filter"
    model: str = ""  # catalog model that answered (set by the failover chain)
    provider: str = ""


@dataclass(frozen=True, slots=True)
class Started:
    """The failover chain's first event: which catalog model answers."""

    model: str
    provider: str


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """OpenAI's tool_choice: "auto", "none", "required" or "function" (with
    its name); `single_call` is `parallel_tool_calls: false`."""

    mode: str
    function_name: str = ""
    single_call: bool = False


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a streamed tool call: id and name on its first piece."""

    index: int
    id: str = ""
    name: str = ""
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str = ""
    parameters: dict | None = None  # JSON Schema

    def schema(self) -> dict:
        """The argument schema; a function without one takes no arguments."""
        return self.parameters or {"type": "object", "properties": {}}


@dataclass(frozen=True, slots=True)
class Message:
    role: str  # "system", "user", "assistant" or "tool"
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str = ""
    name: str = ""


@dataclass(frozen=True, slots=True)
class Fact:
    topic: str
    label: str
    value: str
    record_id: str


@dataclass(frozen=True)
class Grounding:
    """The customer data behind a prompt (see common.proto Grounding)."""

    status: str  # "found", "not_found", "ambiguous", "no_identifier", "unavailable", ""
    query: str = ""
    customer_name: str = ""
    facts: tuple[Fact, ...] = ()


@dataclass(frozen=True)
class ResponseFormat:
    type: str  # "text", "json_object" or "json_schema"
    json_schema: dict | None = None  # the OpenAI json_schema object


@dataclass(frozen=True)
class GenerationRequest:
    upstream_model: str
    messages: list[Message]
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    response_format: ResponseFormat | None = None
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None  # None: the provider's default (auto)
    tools_optional: bool = False  # offered, not needed: a model without tools answers without them
    grounding: Grounding = field(default_factory=lambda: Grounding(status=""))
    timeout_s: float | None = None

    def question(self) -> str:
        """The newest user message."""
        return next((m.content for m in reversed(self.messages) if m.role == "user"), "")
