"""What a provider receives and yields. Text deltas are plain `str` so the
per-token path allocates nothing extra."""

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
class GenerationRequest:
    upstream_model: str
    messages: list[tuple[str, str]]  # (role, content), roles as in OpenAI
    temperature: float | None = None
    max_tokens: int | None = None
    grounding: Grounding = field(default_factory=lambda: Grounding(status=""))
    timeout_s: float | None = None
