"""OpenAIFormatProvider: providers that speak the OpenAI chat-completions
wire format through their official SDK: OpenAI (`openai`), Groq (`groq`)
and any OpenAI-compatible server (vLLM, Ollama, LM Studio) by base URL.

The SDK owns the connection: auth, base URL, headers, timeouts, its aiohttp
transport and its error types. The request body is encoded once with orjson
and posted through the SDK client's `post` (its documented way to send a
request of your own), and the raw stream's SSE lines are parsed with orjson:
the typed `create()` walks every message through its parameter transform and
JSON-encodes the body again, which cost about 2 ms before the first token and
3 ms of CPU per streamed request (`python -m bench.provider_paths`)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import aiohttp
import orjson

from services.llm_gateway.providers import faults
from services.llm_gateway.providers.events import GenerationRequest
from services.runtime.conversation import Finish, Message, ToolCallDelta, Usage

# What `with_streaming_response` sets: the SDK hands back the raw response
# with its body unread, to be streamed.
STREAM_HEADERS = {"X-Stainless-Raw-Response": "stream", "Content-Type": "application/json"}
FINISH_REASONS = {"stop": "stop", "length": "length", "tool_calls": "tool_calls", "content_filter": "content_filter"}


def openai_message(message: Message) -> dict[str, Any]:
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.name:
        out["name"] = message.name
    if message.tool_calls:
        out["content"] = message.content or None
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    return out


def openai_params(request: GenerationRequest, usage_option: bool = True) -> dict[str, Any]:
    params: dict[str, Any] = {
        "model": request.upstream_model,
        "messages": [openai_message(m) for m in request.messages],
        "stream": True,
    }
    if usage_option:
        params["stream_options"] = {"include_usage": True}
    if request.temperature is not None:
        params["temperature"] = request.temperature
    if request.top_p is not None:
        params["top_p"] = request.top_p
    if request.max_tokens is not None:
        params["max_tokens"] = request.max_tokens
    if request.stop:
        params["stop"] = list(request.stop)
    if request.seed is not None:
        params["seed"] = request.seed
    if request.response_format is not None and request.response_format.type != "text":
        params["response_format"] = (
            {"type": "json_schema", "json_schema": request.response_format.json_schema}
            if request.response_format.type == "json_schema"
            else {"type": "json_object"}
        )
    if request.tools:
        params["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.schema(),
                },
            }
            for t in request.tools
        ]
        choice = request.tool_choice
        if choice is not None:
            params["tool_choice"] = (
                {"type": "function", "function": {"name": choice.function_name}}
                if choice.mode == "function"
                else choice.mode
            )
            if choice.single_call:
                params["parallel_tool_calls"] = False
    return params


class _ChunkReader:
    """chat.completion.chunk objects as provider events; the finish reason
    and usage they carry on the way (Groq's under `x_groq`)."""

    def __init__(self, provider: str):
        self._provider = provider
        self.finish = "stop"
        self.usage: Usage | None = None

    def read(self, chunk: dict[str, Any]) -> list[object]:
        if "error" in chunk:
            raise faults.broken_stream_fault(self._provider, "error event")
        events: list[object] = []
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content"):
                events.append(delta["content"])
            for call in delta.get("tool_calls") or ():
                function = call.get("function") or {}
                events.append(
                    ToolCallDelta(
                        index=call.get("index", 0),
                        id=call.get("id") or "",
                        name=function.get("name") or "",
                        arguments=function.get("arguments") or "",
                    )
                )
            if choice.get("finish_reason"):
                self.finish = FINISH_REASONS.get(choice["finish_reason"], "stop")
        counts = chunk.get("usage") or (chunk.get("x_groq") or {}).get("usage")
        if counts:
            self.usage = Usage(counts.get("prompt_tokens") or 0, counts.get("completion_tokens") or 0)
        return events


def _events_of(line: bytes, reader: _ChunkReader) -> list[object]:
    """The events of one line of the SSE body: a `data:` line's chunk;
    nothing for blank separators, `: keep-alive` comments and `[DONE]` (the
    body is read on to its end rather than left: a fully read response
    returns its connection to the pool)."""
    if not line.startswith(b"data:"):
        return []
    data = line[5:].strip()
    if data == b"[DONE]":
        return []
    return reader.read(orjson.loads(data))


class OpenAIFormatProvider:
    """`client` is an SDK client with the OpenAI chat-completions surface:
    `openai.AsyncOpenAI` or `groq.AsyncGroq`. `sdk` is that SDK's module,
    whose error types are mapped. `path` is the SDK's chat-completions path
    under its base URL. Groq reports streamed usage in the last chunk's
    `x_groq.usage` and takes no `stream_options`."""

    def __init__(
        self,
        name: str,
        client: Any,  # openai.AsyncOpenAI or groq.AsyncGroq: one surface, two classes
        sdk: Any,
        timeout_s: float,
        usage_option: bool = True,
        path: str = "/chat/completions",
    ):
        self.name = name
        self._client = client
        self._sdk = sdk
        self._timeout_s = timeout_s
        self._usage_option = usage_option
        self._path = path

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[object, None]:
        body = orjson.dumps(openai_params(request, self._usage_option))
        timeout = min(self._timeout_s, request.timeout_s) if request.timeout_s else self._timeout_s
        reader = _ChunkReader(self.name)
        with faults.translated(self._fault):
            response = await self._client.post(
                self._path,
                cast_to=object,
                content=body,
                options={"headers": STREAM_HEADERS, "timeout": timeout},
                stream=True,
            )
            try:
                # The body's bytes split into lines here: the SDK's own line
                # iterator stacks text decoding and line splitting on top,
                # a few layers of generators per chunk on the hot path.
                rest = b""
                async for piece in response.http_response.aiter_bytes():
                    *lines, rest = (rest + piece).split(b"\n")
                    for line in lines:
                        for event in _events_of(line, reader):
                            yield event
                for event in _events_of(rest, reader):
                    yield event
            finally:
                # Closes the upstream stream at once, also when cancelled.
                await response.close()
        yield Finish(reader.finish)
        yield reader.usage or Usage(0, 0)

    async def embed(
        self, upstream: str, texts: list[str], token_inputs: list[list[int]], dimensions: int, timeout_s: float | None
    ) -> tuple[list[list[float]], int]:
        """One embeddings call through the SDK; vectors in input order."""
        embeddings = getattr(self._client, "embeddings", None)
        if embeddings is None:
            raise faults.unsupported(self.name, "model", f"{self.name} offers no embeddings")
        timeout = min(self._timeout_s, timeout_s) if timeout_s else self._timeout_s
        options = {"dimensions": dimensions} if dimensions else {}
        with faults.translated(self._fault):
            reply = await embeddings.create(
                model=upstream, input=texts or token_inputs, encoding_format="float", timeout=timeout, **options
            )
        ordered = sorted(reply.data, key=lambda d: d.index)
        return [list(d.embedding) for d in ordered], reply.usage.prompt_tokens if reply.usage else 0

    def _fault(self, error: Exception) -> Exception:
        """The Fault an error of the SDK or its transport is; any other
        error is returned as it is."""
        if isinstance(error, self._sdk.APITimeoutError):
            return faults.timeout_or_connection_fault(self.name, error)
        if isinstance(error, self._sdk.APIConnectionError):
            return faults.connection_fault(self.name)
        if isinstance(error, self._sdk.APIStatusError):
            retry_after_s = faults.retry_after_s(error.response.headers)
            return faults.status_fault(self.name, error.status_code, _error_message(error), retry_after_s)
        transport = (TimeoutError, aiohttp.ClientError, orjson.JSONDecodeError, UnicodeDecodeError)
        if isinstance(error, transport) or faults.is_transport_error(error):
            return faults.broken_stream_fault(self.name, type(error).__name__)
        return error

    async def close(self) -> None:
        await self._client.close()


def _error_message(error: Exception) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
    return str(getattr(error, "message", "")) or "the provider rejected the request"
