"""What every LLM API emulator shares: an aiohttp server on a free loopback
port, a script of what the next answers are (text, tool calls) and the
faults to inject (HTTP status with Retry-After, slow first token, a cut or a
malformed chunk mid-stream, a hang), and a record of what the SDKs sent."""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Script:
    """One answer. Tool calls are (id, name, arguments JSON text)."""

    text: str = "Hello from the emulated model."
    tool_calls: list[tuple[str, str, str]] = field(default_factory=list)
    status: int | None = None  # answer with this HTTP error instead
    retry_after: str | None = None  # Retry-After header of that error
    first_token_delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    cut_after: int | None = None  # drop the connection after this many chunks
    malformed_after: int | None = None  # send a broken chunk after this many
    hang: bool = False  # never answer
    finish: str = "stop"  # "stop", "length" or "content_filter", in each API's own words

    def words(self) -> list[str]:
        words = [w + " " for w in self.text.split(" ")] if self.text else []
        if words:
            words[-1] = words[-1].rstrip()
        return words


class Emulator:
    api_key = "sk-emulator-key"

    def __init__(self, script: Script | None = None):
        self.script = script or Script()
        # Answers each request from what it asks (tests/emulators/grounded_answers.py); the queue still wins.
        self.responder: Callable[[dict], Script] | None = None
        self.queue: list[Script] = []  # used first, one per request
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.disconnects = 0
        self.completed_streams = 0
        self.base_url = ""
        self.root_url = ""
        self._runner: web.AppRunner | None = None

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def start(self) -> str:
        app = web.Application()
        self.routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.root_url = f"http://127.0.0.1:{port}"
        self.base_url = self.root_url + self.base_path
        return self.base_url

    base_path = ""

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def next_script(self, body: dict | None = None) -> Script:
        if self.queue:
            return self.queue.pop(0)
        if self.responder is not None and body is not None:
            return self.responder(body)
        return self.script

    async def prelude(self, request: web.Request, script: Script) -> None:
        """Faults that happen before any answer. A hang lasts until the
        client gives up, which is counted as a disconnect."""
        if script.hang:
            # aiohttp does not cancel a handler when its client leaves: poll.
            while request.transport is not None and not request.transport.is_closing():  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            self.disconnects += 1
            raise ConnectionResetError("the client went away during the hang")

    async def stream(
        self, request: web.Request, events: list[bytes], script: Script, malformed: bytes
    ) -> web.StreamResponse:
        """Send SSE events with the script's delays and mid-stream faults."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        try:
            if script.first_token_delay_s:
                await asyncio.sleep(script.first_token_delay_s)
            for n, event in enumerate(events):
                if script.cut_after is not None and n == script.cut_after:
                    request.transport.close()
                    return response
                if script.malformed_after is not None and n == script.malformed_after:
                    await response.write(malformed)
                    return response
                await response.write(event)
                if script.chunk_delay_s and n < len(events) - 1:
                    await asyncio.sleep(script.chunk_delay_s)
        except (ConnectionResetError, asyncio.CancelledError):
            self.disconnects += 1
            raise
        self.completed_streams += 1
        return response


def split_arguments(arguments: str, pieces: int = 3) -> list[str]:
    """Argument JSON in fragments, as providers stream it."""
    size = max(1, -(-len(arguments) // pieces))
    return [arguments[i : i + size] for i in range(0, len(arguments), size)] or [""]


def unit_vector(seed: bytes, size: int) -> list[float]:
    """A deterministic unit vector for an emulated embedding: the same input
    always gets the same vector."""
    rng = random.Random(hashlib.sha256(seed).digest())
    vector = [rng.gauss(0, 1) for _ in range(size)]
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector]
