"""Server-sent events, framed in one place for every stream the gateway
sends (chat completions, legacy completions, a stream's error): the
response headers, the `data: …` event, the `: ping` heartbeat while a
stream waits for its first token, `[DONE]`, and ChunkEncoder for OpenAI's
`chat.completion.chunk` events, whose constant parts are encoded once per
stream so a token costs one JSON string encoding and a concatenation."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from gateway.exchange import Exchange
from gateway.openai_errors import stream_error_body

START, END = b"data: ", b"\n\n"  # every event: one data line, then a blank line
DONE = START + b"[DONE]" + END
HEARTBEAT = b": ping" + END  # a comment: clients skip it, idle timers on the way see traffic
# No proxy may hold the stream back to buffer it.
HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def event(value: object) -> bytes:
    """One event carrying `value` as JSON."""
    return START + orjson.dumps(value) + END


def error_event(code: str, message: str) -> bytes:
    """The event that ends a stream that failed after it had started."""
    return event(stream_error_body(code, message))


async def first_event(call: Any, exchange: Exchange, heartbeat_s: float) -> Any:
    """The call's first event. While it waits, the response starts (200,
    HEADERS) and a `: ping` goes out every `heartbeat_s`, so no idle timer
    on the way cuts the stream; until the first ping an error can still be
    a proper HTTP status."""
    read = asyncio.ensure_future(call.read())
    try:
        while True:
            done, _ = await asyncio.wait({read}, timeout=heartbeat_s)
            if done:
                return read.result()
            if not exchange.status:
                await exchange.start(200, HEADERS)
            await exchange.send(HEARTBEAT, more=True)
    finally:
        if not read.done():
            read.cancel()


class ChunkEncoder:
    def __init__(self, completion_id: str, created: int, model: str, include_usage: bool):
        self._include_usage = include_usage
        head = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}
        self._head = START + orjson.dumps(head)[:-1] + b',"system_fingerprint":null,"choices":[{"index":0,"delta":'
        self._usage_tail = b',"usage":null}' + END if include_usage else b"}" + END
        self._content_mid = b',"logprobs":null,"finish_reason":null}]'

    def role(self) -> bytes:
        return self._head + b'{"role":"assistant","content":""}' + self._content_mid + self._usage_tail

    def delta(self, text: str) -> bytes:
        return self._head + b'{"content":' + orjson.dumps(text) + b"}" + self._content_mid + self._usage_tail

    def tool_call(self, index: int, call_id: str, name: str, arguments: str) -> bytes:
        """A piece of a tool call: the first names it, later ones add arguments."""
        if call_id:
            call = {
                "index": index,
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            }
        else:
            call = {"index": index, "function": {"arguments": arguments}}
        return self._head + b'{"tool_calls":' + orjson.dumps([call]) + b"}" + self._content_mid + self._usage_tail

    def finish(self, reason: str) -> bytes:
        return self._head + b'{},"logprobs":null,"finish_reason":' + orjson.dumps(reason) + b"}]" + self._usage_tail

    def usage(self, prompt_tokens: int, completion_tokens: int) -> bytes:
        """The final usage chunk (`stream_options.include_usage`): no choices."""
        head = self._head[: -len(b'[{"index":0,"delta":')]
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        return head + b'[],"usage":' + orjson.dumps(usage) + b"}" + END
