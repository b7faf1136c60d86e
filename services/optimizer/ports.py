"""What the judge and the variant writer need of a model, as plain types:
a whole answer as text, and which provider serves a model (for the field
policy). The adapter in clients.py implements it over gRPC; a test fakes it."""

from __future__ import annotations

from typing import Protocol

from services.runtime.conversation import Message, ResponseFormat


class GenerationFailed(Exception):
    """The model service or the model did not answer."""


class TextGeneration(Protocol):
    async def provider_of(self, model: str) -> str:
        """The provider that serves a catalog model; "" when nobody can say."""

    async def complete(
        self,
        model: str,
        messages: list[Message],
        *,
        temperature: float,
        response_format: ResponseFormat | None = None,
        timeout_s: float = 60.0,
    ) -> str:
        """The model's whole answer, from that model alone; GenerationFailed."""
