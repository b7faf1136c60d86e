"""What a provider receives, beyond the shared conversation vocabulary
(`services/runtime/conversation.py`): the generation request with its
customer grounding, and the failover chain's Started event."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.runtime.conversation import Fact, Message, ResponseFormat, Tool, ToolChoice


@dataclass(frozen=True, slots=True)
class Started:
    """The failover chain's first event: which catalog model answers."""

    model: str
    provider: str


@dataclass(frozen=True)
class Grounding:
    """The customer data behind a prompt (see common.proto Grounding)."""

    status: str  # FOUND, NOT_FOUND, … of services/runtime/conversation.py; "" for none
    query: str = ""
    customer_name: str = ""
    facts: tuple[Fact, ...] = ()
    focus: tuple[str, ...] = ()  # topics the conversation's category points at


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
