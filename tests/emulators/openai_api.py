"""A local emulator of the OpenAI chat-completions API (JSON and SSE), for
driving the official `openai` SDK with no network. Failure modes can be
switched per test: rate limit, server error, a stream that drops midway."""

from __future__ import annotations

import argparse
import asyncio
import os
import time

import orjson
import uvloop
from aiohttp import web


class OpenAIEmulator:
    api_key = "sk-emulator-key"

    def __init__(self, reply: str = "Hello from the emulated model.", chunk_delay_s: float = 0.0):
        self.reply = reply
        self.chunk_delay_s = chunk_delay_s
        self.mode = "ok"  # ok | rate_limit | server_error | drop
        self.requests: list[dict] = []
        self.disconnects = 0
        self.completed_streams = 0
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @staticmethod
    def _error(status: int, message: str, kind: str, code: str | None, headers=None) -> web.Response:
        body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
        return web.json_response(body, status=status, headers=headers)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self._error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        body = await request.json()
        self.requests.append(body)
        if self.mode == "rate_limit":
            return self._error(429, "Rate limit reached.", "requests", "rate_limit_exceeded", {"retry-after": "2"})
        if self.mode == "server_error":
            return self._error(500, "The server had an error.", "server_error", None)
        words = [w + " " for w in self.reply.split(" ")]
        words[-1] = words[-1].rstrip()
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(words),
            "total_tokens": prompt_tokens + len(words),
        }
        created = int(time.time())
        if not body.get("stream"):
            return web.json_response(
                {
                    "id": "chatcmpl-emulated",
                    "object": "chat.completion",
                    "created": created,
                    "model": body["model"],
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": self.reply}, "finish_reason": "stop"}
                    ],
                    "usage": usage,
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        def chunk(delta: dict, finish: str | None = None, with_usage: bool = False) -> bytes:
            event = {
                "id": "chatcmpl-emulated",
                "object": "chat.completion.chunk",
                "created": created,
                "model": body["model"],
                "choices": [] if with_usage else [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            if with_usage:
                event["usage"] = usage
            return b"data: " + orjson.dumps(event) + b"\n\n"

        try:
            for n, word in enumerate(words):
                delta = {"role": "assistant", "content": word} if n == 0 else {"content": word}
                await response.write(chunk(delta))
                if self.mode == "drop" and n == 2:
                    request.transport.close()
                    return response
                if self.chunk_delay_s:
                    await asyncio.sleep(self.chunk_delay_s)
            await response.write(chunk({}, "stop"))
            if (body.get("stream_options") or {}).get("include_usage"):
                await response.write(chunk({}, with_usage=True))
            await response.write(b"data: [DONE]\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            self.disconnects += 1
            raise
        self.completed_streams += 1
        return response


async def _serve_forever(port_file: str, words: int, chunk_delay_ms: float) -> None:
    reply = " ".join(f"word{n}" for n in range(words))
    emulator = OpenAIEmulator(reply=reply, chunk_delay_s=chunk_delay_ms / 1000)
    url = await emulator.start()
    with open(f"{port_file}.tmp", "w") as handle:
        handle.write(url)
    os.replace(f"{port_file}.tmp", port_file)
    await asyncio.Event().wait()


def main() -> None:
    """Run the emulator on its own: `python -m tests.emulators.openai_api --url-file F`."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--url-file", required=True, help="file to write the base URL to")
    parser.add_argument("--words", type=int, default=20, help="words (chunks) per answer")
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0)
    args = parser.parse_args()
    uvloop.run(_serve_forever(args.url_file, args.words, args.chunk_delay_ms))


if __name__ == "__main__":
    main()
