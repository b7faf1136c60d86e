"""Provider and EmbeddingProvider: the one interface every model provider
implements (offline, OpenAI and OpenAI-compatible servers, Anthropic, Groq,
Gemini), as each backend of a gateway is one translator behind one face.

`stream` yields the conversation's events (`services/runtime/conversation.py`):
text deltas as `str`, `ToolCallDelta`s, then one `Finish` and one `Usage`.
A provider fails only with the faults of `providers/faults.py`, raised
before the first event (the failover chain may then try the next model)
or after it (the stream ends with that error); what it cannot honour is an
`InvalidArgument` naming the field. Which models a provider serves, and
what each can do (tools, streaming, embeddings and their dimensions), the
catalog says; a provider that serves an embedding model implements
`EmbeddingProvider`, which the chain checks when it is built."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Protocol, runtime_checkable

from services.llm_gateway.providers.events import GenerationRequest


@runtime_checkable
class Provider(Protocol):
    name: str

    def stream(self, request: GenerationRequest) -> AsyncGenerator[object, None]:
        """The generation's events, as they arrive."""
        ...

    async def close(self) -> None:
        """Its connections closed; called once, when the service stops."""
        ...


@runtime_checkable
class EmbeddingProvider(Provider, Protocol):
    async def embed(
        self, upstream: str, texts: list[str], token_inputs: list[list[int]], dimensions: int, timeout_s: float | None
    ) -> tuple[list[list[float]], int]:
        """(one vector per input, the input tokens counted); `dimensions`
        0 for the model's own length."""
        ...
