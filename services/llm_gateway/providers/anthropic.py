"""AnthropicProvider: the Messages API through the official `anthropic` SDK.

OpenAI-shaped requests become Anthropic's: system messages move to the
`system` field, turns alternate user/assistant (neighbours of one role are
merged), tool calls are `tool_use` blocks and tool results `tool_result`
blocks in a user turn. The SSE stream (message_start, content_block_start /
delta / stop with text_delta and input_json_delta, message_delta,
message_stop) is read from the SDK's raw streaming response over aiohttp."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import anthropic
import orjson

from services.llm_gateway.providers import faults
from services.llm_gateway.providers.events import GenerationRequest
from services.runtime.conversation import Finish, ToolCallDelta, Usage
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


def anthropic_params(request: GenerationRequest, provider: str = "anthropic") -> dict:
    # The Messages API has dropped the sampling parameters: refuse them by
    # name rather than send what the API rejects or ignores.
    if request.temperature is not None:
        raise faults.unsupported(provider, "temperature", "the Messages API no longer takes sampling parameters")
    if request.top_p is not None:
        raise faults.unsupported(provider, "top_p", "the Messages API no longer takes sampling parameters")
    if request.seed is not None:
        raise faults.unsupported(provider, "seed", "Anthropic has no sampling seed")
    system = "\n\n".join(m.content for m in request.messages if m.role == "system" and m.content)
    turns: list[dict] = []
    for message in request.messages:
        if message.role == "system":
            continue
        if message.role == "tool":
            role = "user"
            blocks = [{"type": "tool_result", "tool_use_id": message.tool_call_id, "content": message.content}]
        elif message.role == "assistant":
            role = "assistant"
            blocks = [{"type": "text", "text": message.content}] if message.content else []
            for call in message.tool_calls:
                try:
                    arguments = orjson.loads(call.arguments or "{}")
                except orjson.JSONDecodeError:
                    raise faults.unsupported(provider, "messages.tool_calls.arguments", "not JSON") from None
                blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": arguments})
        else:
            role = "user"
            blocks = [{"type": "text", "text": message.content}]
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)  # Anthropic wants alternating turns
        else:
            turns.append({"role": role, "content": blocks})
    params: dict = {
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
        # Structured outputs: a JSON object is a schema of type object.
        schema = {"type": "object"}
        if request.response_format.type == "json_schema":
            schema = (request.response_format.json_schema or {}).get("schema")
            if not isinstance(schema, dict):
                raise faults.unsupported(provider, "response_format.json_schema.schema", "missing")
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


class AnthropicProvider:
    def __init__(self, api_key: str, base_url: str | None, timeout_s: float, name: str = "anthropic"):
        self.name = name
        self._timeout_s = timeout_s
        # Retries and failover are the gateway's decision, not the SDK's.
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url or None, max_retries=0, http_client=anthropic.DefaultAioHttpClient()
        )

    async def stream(self, request: GenerationRequest) -> AsyncIterator[object]:
        params = anthropic_params(request, self.name)
        params["timeout"] = min(self._timeout_s, request.timeout_s) if request.timeout_s else self._timeout_s
        prompt_tokens = completion_tokens = 0
        finish = "stop"
        tool_index: dict[int, int] = {}  # content block index -> tool call index
        try:
            async with self._client.messages.with_streaming_response.create(**params) as response:
                async for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue  # "event:" lines repeat the type that the data carries
                    event = orjson.loads(line[5:])
                    kind = event.get("type")
                    if kind == "content_block_delta":
                        delta = event["delta"]
                        if delta.get("type") == "text_delta":
                            if delta.get("text"):
                                yield delta["text"]
                        elif delta.get("type") == "input_json_delta":
                            index = tool_index.get(event.get("index", 0))
                            if index is not None and delta.get("partial_json"):
                                yield ToolCallDelta(index=index, arguments=delta["partial_json"])
                    elif kind == "content_block_start":
                        block = event.get("content_block") or {}
                        if block.get("type") == "tool_use":
                            tool_index[event.get("index", 0)] = len(tool_index)
                            yield ToolCallDelta(
                                index=tool_index[event.get("index", 0)], id=block["id"], name=block["name"]
                            )
                    elif kind == "message_start":
                        usage = (event.get("message") or {}).get("usage") or {}
                        prompt_tokens = usage.get("input_tokens") or 0
                        completion_tokens = usage.get("output_tokens") or 0
                    elif kind == "message_delta":
                        reason = (event.get("delta") or {}).get("stop_reason")
                        if reason:
                            finish = STOP_REASONS.get(reason, "stop")
                        usage = event.get("usage") or {}
                        completion_tokens = usage.get("output_tokens", completion_tokens) or completion_tokens
                    elif kind == "message_stop":
                        continue  # read to the end so the connection is reused
                    elif kind == "error":
                        raise faults.broken_stream_fault(self.name, (event.get("error") or {}).get("type", "error"))
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
        yield Finish(finish)
        yield Usage(prompt_tokens, completion_tokens)

    async def close(self) -> None:
        await self._client.close()
