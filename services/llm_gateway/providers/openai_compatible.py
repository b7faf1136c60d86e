"""OpenAICompatibleProvider: the official `openai` SDK against OpenAI or any
server that speaks its chat-completions API (vLLM, Ollama, LM Studio) at a
configurable base URL.

The SDK owns the contract (auth, base URL, request shape, error types); the
stream is read through its raw streaming response over the aiohttp transport
with SSE lines parsed by orjson, its cheapest path (`make bench` shows the
difference against parsed chunk objects)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import httpx2
import openai
import orjson

from services.llm_gateway.providers.events import Finish, GenerationRequest, Usage
from services.runtime.faults import (
    DeadlineExceeded,
    FailedPrecondition,
    Fault,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
)

FINISH_REASONS = {"stop": "stop", "length": "length", "tool_calls": "tool_calls", "content_filter": "content_filter"}


def _retry_after(error: openai.APIStatusError) -> float | None:
    raw = error.response.headers.get("retry-after") if error.response is not None else None
    try:
        return float(raw) if raw else None
    except ValueError:
        return None


def provider_fault(error: Exception, provider: str) -> Fault:
    """The fault a caller sees for an SDK error; never echoes the API key."""
    if isinstance(error, openai.APITimeoutError):
        return DeadlineExceeded(f"{provider}: the provider did not answer in time")
    if isinstance(error, openai.APIConnectionError):
        return Unavailable(f"{provider}: cannot reach the provider")
    if isinstance(error, openai.APIStatusError):
        status = error.status_code
        if status == 429:
            return ResourceExhausted(f"{provider}: rate limited by the provider", retry_after_s=_retry_after(error))
        if status in (401, 403):
            return FailedPrecondition(f"{provider}: the provider rejected the configured API key")
        if status == 404:
            return NotFound(f"{provider}: the provider does not know this model", field="model")
        if status in (400, 422):
            return InvalidArgument(f"{provider}: {error.message}")
        return Unavailable(f"{provider}: the provider failed with HTTP {status}", retry_after_s=_retry_after(error))
    return Unavailable(f"{provider}: {type(error).__name__}")


class OpenAICompatibleProvider:
    def __init__(self, api_key: str, base_url: str | None, timeout_s: float, name: str = "openai"):
        self.name = name
        self._timeout_s = timeout_s
        # Retries and failover are the gateway's decision, not the SDK's.
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url or None, max_retries=0, http_client=openai.DefaultAioHttpClient()
        )

    async def stream(self, request: GenerationRequest) -> AsyncIterator[object]:
        params: dict = {
            "model": request.upstream_model,
            "messages": [{"role": role, "content": content} for role, content in request.messages],
            "stream": True,
            "stream_options": {"include_usage": True},
            "timeout": min(self._timeout_s, request.timeout_s) if request.timeout_s else self._timeout_s,
        }
        if request.temperature is not None:
            params["temperature"] = request.temperature
        if request.max_tokens is not None:
            params["max_tokens"] = request.max_tokens
        finish = "stop"
        usage = None
        try:
            async with self._client.chat.completions.with_streaming_response.create(**params) as response:
                async for line in response.iter_lines():
                    if not line.startswith("data: "):
                        continue  # blank separators and ": keep-alive" comments
                    data = line[6:]
                    if data == "[DONE]":
                        break
                    chunk = orjson.loads(data)
                    if "error" in chunk:
                        raise Unavailable(f"{self.name}: the provider failed mid-stream")
                    for choice in chunk.get("choices") or ():
                        text = (choice.get("delta") or {}).get("content")
                        if text:
                            yield text
                        if choice.get("finish_reason"):
                            finish = FINISH_REASONS.get(choice["finish_reason"], "stop")
                    if chunk.get("usage"):
                        counts = chunk["usage"]
                        usage = Usage(counts.get("prompt_tokens") or 0, counts.get("completion_tokens") or 0)
        except openai.OpenAIError as error:
            raise provider_fault(error, self.name) from None
        except (aiohttp.ClientError, httpx2.TransportError, orjson.JSONDecodeError) as error:
            # The connection broke or sent garbage after the stream began.
            raise Unavailable(f"{self.name}: the provider stream broke ({type(error).__name__})") from None
        yield usage or Usage(0, 0)
        yield Finish(finish)

    async def close(self) -> None:
        await self._client.close()
