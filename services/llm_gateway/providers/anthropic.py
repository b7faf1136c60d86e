"""AnthropicProvider: the Messages API through the official `anthropic` SDK.

OpenAI-shaped requests become Anthropic's: system messages move to the
`system` field, turns alternate user/assistant (neighbours of one role are
merged), tool calls are `tool_use` blocks and tool results `tool_result`
blocks in a user turn. The SSE stream (message_start, content_block_start /
delta / stop with text_delta and input_json_delta, message_delta,
message_stop) is read from the SDK's raw streaming response over aiohttp."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import aiohttp
import anthropic
import orjson

from services.llm_gateway.providers import faults
from services.llm_gateway.providers.events import GenerationRequest
from services.runtime.conversation import Finish, Message, ResponseFormat, ToolCallDelta, Usage
from services.runtime.faults import Fault

STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
DEFAULT_MAX_TOKENS = 1024  # Anthropic requires max_tokens; used when the caller sets none


def anthropic_params(request: GenerationRequest, provider: str = "anthropic") -> dict[str, Any]:
    # The Messages API has dropped the sampling parameters: refuse them by
    # name rather than send what the API rejects or ignores.
    if request.temperature is not None:
        raise faults.unsupported(provider, "temperature", "the Messages API no longer takes sampling parameters")
    if request.top_p is not None:
        raise faults.unsupported(provider, "top_p", "the Messages API no longer takes sampling parameters")
    if request.seed is not None:
        raise faults.unsupported(provider, "seed", "Anthropic has no sampling seed")
    system = "\n\n".join(m.content for m in request.messages if m.role == "system" and m.content)
    turns = _turns(request, provider)
    params: dict[str, Any] = {
        "model": request.upstream_model,
        "messages": turns,
        "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
        "stream": True,
    }
    if system:
        params["system"] = system
    if request.stop:
        params["stop_sequences"] = list(request.stop)
    if request.response_format is not None and request.response_format.type != "text":
        schema = _output_schema(request.response_format, provider)
        params["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
    if request.tools:
        params["tools"] = [
            {
                "name": t.name,
                "description": t.description,
                "input_schema": t.schema(),
            }
            for t in request.tools
        ]
        choice = request.tool_choice
        if choice is not None:
            # Anthropic's words: "any" is OpenAI's "required", "tool" a named function.
            params["tool_choice"] = (
                {"type": "tool", "name": choice.function_name}
                if choice.mode == "function"
                else {"type": {"required": "any"}.get(choice.mode, choice.mode)}
            )
            if choice.single_call and choice.mode != "none":
                params["tool_choice"]["disable_parallel_tool_use"] = True
    return params


def _turns(request: GenerationRequest, provider: str) -> list[dict[str, Any]]:
    """The conversation as Anthropic's alternating user/assistant turns:
    tool results in a user turn, tool calls as tool_use blocks."""
    turns: list[dict[str, Any]] = []
    for message in request.messages:
        if message.role == "system":
            continue
        role, blocks = _blocks(message, provider)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)  # Anthropic wants alternating turns
        else:
            turns.append({"role": role, "content": blocks})
    return turns


def _blocks(message: Message, provider: str) -> tuple[str, list[dict[str, Any]]]:
    if message.role == "tool":
        return "user", [{"type": "tool_result", "tool_use_id": message.tool_call_id, "content": message.content}]
    if message.role != "assistant":
        return "user", [{"type": "text", "text": message.content}]
    blocks = [{"type": "text", "text": message.content}] if message.content else []
    for call in message.tool_calls:
        try:
            arguments = orjson.loads(call.arguments or "{}")
        except orjson.JSONDecodeError:
            raise faults.unsupported(provider, "messages.tool_calls.arguments", "not JSON") from None
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": arguments})
    return "assistant", blocks


def _output_schema(response_format: ResponseFormat, provider: str) -> dict[str, Any]:
    """Structured outputs: a JSON object is a schema of type object."""
    if response_format.type != "json_schema":
        return {"type": "object"}
    schema = (response_format.json_schema or {}).get("schema")
    if not isinstance(schema, dict):
        raise faults.unsupported(provider, "response_format.json_schema.schema", "missing")
    return schema


class _StreamReader:
    """Anthropic's SSE events (message_start, content_block_start / delta /
    stop, message_delta, message_stop) as provider events; the usage and
    finish reason it gathers on the way."""

    def __init__(self, provider: str):
        self._provider = provider
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.finish = "stop"
        self._tool_index: dict[int, int] = {}  # content block index -> tool call index

    def read(self, event: dict[str, Any]) -> object | None:
        kind = event.get("type")
        if kind == "content_block_delta":
            return self._delta(event)
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = self._tool_index[event.get("index", 0)] = len(self._tool_index)
                return ToolCallDelta(index=index, id=block["id"], name=block["name"])
        elif kind == "message_start":
            usage = (event.get("message") or {}).get("usage") or {}
            self.prompt_tokens = usage.get("input_tokens") or 0
            self.completion_tokens = usage.get("output_tokens") or 0
        elif kind == "message_delta":
            reason = (event.get("delta") or {}).get("stop_reason")
            if reason:
                self.finish = STOP_REASONS.get(reason, "stop")
            usage = event.get("usage") or {}
            self.completion_tokens = usage.get("output_tokens", self.completion_tokens) or self.completion_tokens
        elif kind == "error":
            raise faults.broken_stream_fault(self._provider, (event.get("error") or {}).get("type", "error"))
        return None  # message_stop and pings carry nothing for the caller

    def _delta(self, event: dict[str, Any]) -> object | None:
        delta = event["delta"]
        if delta.get("type") == "text_delta":
            return delta.get("text") or None
        if delta.get("type") == "input_json_delta":
            index = self._tool_index.get(event.get("index", 0))
            if index is not None and delta.get("partial_json"):
                return ToolCallDelta(index=index, arguments=delta["partial_json"])
        return None


class AnthropicProvider:
    def __init__(self, api_key: str, base_url: str | None, timeout_s: float, name: str = "anthropic"):
        self.name = name
        self._timeout_s = timeout_s
        # Retries and failover are the gateway's decision, not the SDK's.
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url or None, max_retries=0, http_client=anthropic.DefaultAioHttpClient()
        )

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[object, None]:
        params = anthropic_params(request, self.name)
        params["timeout"] = min(self._timeout_s, request.timeout_s) if request.timeout_s else self._timeout_s
        reader = _StreamReader(self.name)
        try:
            async with self._client.messages.with_streaming_response.create(**params) as response:
                async for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue  # "event:" lines repeat the type that the data carries
                    event = reader.read(orjson.loads(line[5:]))
                    if event is not None:
                        yield event
        except Fault:
            raise
        except anthropic.APITimeoutError as error:
            raise faults.timeout_or_connection_fault(self.name, error) from None
        except anthropic.APIConnectionError:
            raise faults.connection_fault(self.name) from None
        except anthropic.APIStatusError as error:
            body = error.body if isinstance(error.body, dict) else {}
            message = ((body.get("error") or {}) if isinstance(body.get("error"), dict) else {}).get("message", "")
            raise faults.status_fault(
                self.name, error.status_code, message, faults.retry_after_s(error.response.headers)
            ) from None
        except (TimeoutError, aiohttp.ClientError, orjson.JSONDecodeError, KeyError) as error:
            raise faults.broken_stream_fault(self.name, type(error).__name__) from None
        except Exception as error:
            if faults.is_transport_error(error):
                raise faults.broken_stream_fault(self.name, type(error).__name__) from None
            raise
        yield Finish(reader.finish)
        yield Usage(reader.prompt_tokens, reader.completion_tokens)

    async def close(self) -> None:
        await self._client.close()
