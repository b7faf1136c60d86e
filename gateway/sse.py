"""ChunkEncoder: OpenAI `chat.completion.chunk` server-sent events. The
constant parts of each event are encoded once per stream, so a token costs
one JSON string encoding and a concatenation."""

from __future__ import annotations

import orjson

DONE = b"data: [DONE]\n\n"
HEARTBEAT = b": ping\n\n"


class ChunkEncoder:
    def __init__(self, completion_id: str, created: int, model: str, include_usage: bool):
        self._include_usage = include_usage
        head = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}
        self._head = b"data: " + orjson.dumps(head)[:-1] + b',"system_fingerprint":null,"choices":[{"index":0,"delta":'
        self._usage_tail = b',"usage":null}\n\n' if include_usage else b"}\n\n"
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
        return head + b'[],"usage":' + orjson.dumps(usage) + b"}\n\n"
