"""Emulator of the OpenAI chat-completions API (JSON and SSE) at /v1, and of
Groq's copy of it at /openai/v1, for driving the official `openai` and `groq`
SDKs with no network."""

from __future__ import annotations

import argparse
import asyncio
import os
import time

import orjson
import uvloop
from aiohttp import web

from tests.emulators.base import Emulator, Script, split_arguments, unit_vector


class OpenAIEmulator(Emulator):
    base_path = "/v1"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/openai/v1/chat/completions", self._chat)  # Groq
        app.router.add_post("/v1/embeddings", self._embeddings)

    @staticmethod
    def _error(status: int, message: str, kind: str, code: str | None, headers=None) -> web.Response:
        body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
        return web.json_response(body, status=status, headers=headers)

    async def _embeddings(self, request: web.Request) -> web.Response:
        """Deterministic unit vectors (a digest of each input seeds them)."""
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self._error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        body = await request.json()
        self.requests.append(body)
        script = self.next_script()
        if script.status:
            headers = {"Retry-After": script.retry_after} if script.retry_after else None
            return self._error(script.status, f"Emulated HTTP {script.status}.", "server_error", None, headers)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        size = body.get("dimensions") or 1536
        data = []
        for index, item in enumerate(inputs):
            data.append({"object": "embedding", "index": index, "embedding": unit_vector(orjson.dumps(item), size)})
        tokens = sum(len(str(item).split()) for item in inputs)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return web.json_response({"object": "list", "data": data, "model": body["model"], "usage": usage})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self._error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        body = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        script = self.next_script(body)
        await self.prelude(request, script)
        if script.status:
            kinds = {429: ("requests", "rate_limit_exceeded"), 400: ("invalid_request_error", None)}
            kind, code = kinds.get(script.status, ("server_error", None))
            headers = {"retry-after": script.retry_after} if script.retry_after else None
            return self._error(script.status, f"Emulated HTTP {script.status}.", kind, code, headers)
        words = script.words()
        prompt_tokens = sum(len(str(m.get("content") or "").split()) for m in body["messages"])
        completion_tokens = len(words) + sum(len(a) // 4 + 1 for _, _, a in script.tool_calls)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        finish = "tool_calls" if script.tool_calls else script.finish
        created = int(time.time())
        if not body.get("stream"):
            message: dict = {"role": "assistant", "content": script.text or None}
            if script.tool_calls:
                message["tool_calls"] = [
                    {"id": i, "type": "function", "function": {"name": n, "arguments": a}}
                    for i, n, a in script.tool_calls
                ]
            return web.json_response(
                {
                    "id": "chatcmpl-emulated",
                    "object": "chat.completion",
                    "created": created,
                    "model": body["model"],
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": usage,
                }
            )

        def chunk(delta: dict | None, finish_reason: str | None = None, with_usage: bool = False) -> bytes:
            event = {
                "id": "chatcmpl-emulated",
                "object": "chat.completion.chunk",
                "created": created,
                "model": body["model"],
                "choices": [] if with_usage else [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            }
            if with_usage:
                event["usage"] = usage
            return b"data: " + orjson.dumps(event) + b"\n\n"

        events = [chunk({"role": "assistant", "content": ""})]
        events += [chunk({"content": word}) for word in words]
        for index, (call_id, name, arguments) in enumerate(script.tool_calls):
            first = {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
            events.append(chunk({"tool_calls": [first]}))
            events += [
                chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
                for piece in split_arguments(arguments)
            ]
        if request.path.startswith("/openai/"):
            # Groq: usage rides on the last chunk under x_groq.
            if "stream_options" in body:
                return self._error(400, "property 'stream_options' is unsupported", "invalid_request_error", None)
            last = orjson.loads(chunk({}, finish)[6:])
            last["x_groq"] = {"id": "req_emulated", "usage": usage}
            events.append(b"data: " + orjson.dumps(last) + b"\n\n")
        else:
            events.append(chunk({}, finish))
            if (body.get("stream_options") or {}).get("include_usage"):
                events.append(chunk(None, with_usage=True))
        events.append(b"data: [DONE]\n\n")
        return await self.stream(request, events, script, b'data: {"id": "chatcmpl-emulated", "choices": [\n\n')


async def _serve_forever(url_file: str, words: int, chunk_delay_ms: float, first_token_ms: float) -> None:
    text = " ".join(f"word{n}" for n in range(words))
    emulator = OpenAIEmulator(
        Script(text=text, chunk_delay_s=chunk_delay_ms / 1000, first_token_delay_s=first_token_ms / 1000)
    )
    url = await emulator.start()
    with open(f"{url_file}.tmp", "w") as handle:
        handle.write(url)
    os.replace(f"{url_file}.tmp", url_file)
    await asyncio.Event().wait()


def main() -> None:
    """Run the emulator on its own: `python -m tests.emulators.openai_api --url-file F`."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--url-file", required=True, help="file to write the base URL to")
    parser.add_argument("--words", type=int, default=20, help="words (chunks) per answer")
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0)
    parser.add_argument("--first-token-ms", type=float, default=0.0)
    args = parser.parse_args()
    uvloop.run(_serve_forever(args.url_file, args.words, args.chunk_delay_ms, args.first_token_ms))


if __name__ == "__main__":
    main()
