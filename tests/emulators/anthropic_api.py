"""Emulator of the Anthropic Messages API (JSON and SSE) for driving the
official `anthropic` SDK with no network."""

from __future__ import annotations

import itertools

import orjson
from aiohttp import web

from tests.emulators.base import Emulator, split_arguments

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def sse(kind: str, data: dict) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class AnthropicEmulator(Emulator):
    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self._messages)

    @staticmethod
    def _error(status: int, message: str, headers=None) -> web.Response:
        kind = ERROR_TYPES.get(status, "api_error")
        return web.json_response(
            {"type": "error", "error": {"type": kind, "message": message}}, status=status, headers=headers
        )

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        # The API takes the key as x-api-key or, as current SDKs send it, as a Bearer token.
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if self.api_key not in (request.headers.get("x-api-key"), bearer):
            return self._error(401, "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return self._error(400, "anthropic-version header is required")
        body = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        if "max_tokens" not in body:
            return self._error(400, "max_tokens: Field required")
        roles = [m["role"] for m in body["messages"]]
        if any(a == b for a, b in itertools.pairwise(roles)) or (roles and roles[0] != "user"):
            return self._error(400, "messages: roles must alternate between user and assistant, starting with user")
        script = self.next_script(body)
        await self.prelude(request, script)
        if script.status:
            headers = {"retry-after": script.retry_after} if script.retry_after else None
            return self._error(script.status, f"Emulated HTTP {script.status}.", headers)
        words = script.words()
        input_tokens = sum(
            len(str(b.get("text") or b.get("content") or "").split())
            for m in body["messages"]
            for b in (m["content"] if isinstance(m["content"], list) else [{"text": m["content"]}])
        ) + len(str(body.get("system", "")).split())
        output_tokens = len(words) + sum(len(a) // 4 + 1 for _, _, a in script.tool_calls)
        stops = {"stop": "end_turn", "length": "max_tokens", "content_filter": "refusal"}
        stop = "tool_use" if script.tool_calls else stops[script.finish]
        model = body["model"]
        if not body.get("stream"):
            content = [{"type": "text", "text": script.text}] if script.text else []
            content += [
                {"type": "tool_use", "id": i, "name": n, "input": orjson.loads(a)} for i, n, a in script.tool_calls
            ]
            return web.json_response(
                {
                    "id": "msg_emulated",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": content,
                    "stop_reason": stop,
                    "stop_sequence": None,
                    "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
                }
            )
        message = {
            "id": "msg_emulated",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1},
        }
        events = [sse("message_start", {"type": "message_start", "message": message}), sse("ping", {"type": "ping"})]
        block = 0
        if words:
            events.append(
                sse(
                    "content_block_start",
                    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                )
            )
            events += [
                sse(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word}},
                )
                for word in words
            ]
            events.append(sse("content_block_stop", {"type": "content_block_stop", "index": 0}))
            block = 1
        for call_id, name, arguments in script.tool_calls:
            start = {"type": "tool_use", "id": call_id, "name": name, "input": {}}
            events.append(
                sse("content_block_start", {"type": "content_block_start", "index": block, "content_block": start})
            )
            events += [
                sse(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": block,
                        "delta": {"type": "input_json_delta", "partial_json": piece},
                    },
                )
                for piece in split_arguments(arguments)
            ]
            events.append(sse("content_block_stop", {"type": "content_block_stop", "index": block}))
            block += 1
        events.append(
            sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": {"output_tokens": output_tokens},
                },
            )
        )
        events.append(sse("message_stop", {"type": "message_stop"}))
        return await self.stream(
            request, events, script, b'event: content_block_delta\ndata: {"type": "content_block_del\n\n'
        )
