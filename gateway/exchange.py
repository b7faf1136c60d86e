"""Exchange: one HTTP request and its response over ASGI — the request's
method, path, headers and body, and the response as it is sent, whose
status the access log and the metrics report."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson

from gateway.api_key import ApiKey
from gateway.openai_errors import OpenAIError
from services.runtime.request_context import REQUEST_ID_HEADER, ROUTE_HEADER

# ASGI's callables: the next message of the request, and one of the response.
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

MAX_BODY_BYTES = 4 * 1024 * 1024
JSON_HEADERS = [(b"content-type", b"application/json")]


class Exchange:
    def __init__(self, scope: dict[str, Any], receive: Receive, send: Send, request_id: str):
        self.scope = scope
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.query: str = scope.get("query_string", b"").decode("latin-1")
        self.receive = receive
        self.request_id = request_id
        self.status = 0  # 0 until the response starts
        self.started = time.perf_counter()
        self.headers: list[tuple[bytes, bytes]] = []  # added to whatever starts the response
        self.route = b""  # the route's template: Envoy logs it instead of the path
        self._key: ApiKey | None = None
        self._send = send

    @property
    def key(self) -> ApiKey:
        """The caller's verified API key record (routes that need a scope)."""
        if self._key is None:
            raise RuntimeError(f"{self.method} {self.path}: no verified API key on a public route")
        return self._key

    @key.setter
    def key(self, key: ApiKey) -> None:
        self._key = key

    def header(self, name: bytes) -> bytes:
        """The first request header of that (lower-case) name, or b""."""
        return next((value for key, value in self.scope["headers"] if key == name), b"")

    async def body(self) -> bytes | None:
        """The request body; None when the client hung up while sending it."""
        chunks = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise OpenAIError(413, f"Request body is larger than {MAX_BODY_BYTES} bytes.", code="request_too_large")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.status = status
        await self._send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    *headers,
                    *self.headers,
                    (REQUEST_ID_HEADER.encode(), self.request_id.encode()),
                    *([(ROUTE_HEADER.encode(), self.route)] if self.route else ()),
                ],
            }
        )

    async def send(self, body: bytes, more: bool = False) -> None:
        await self._send({"type": "http.response.body", "body": body, "more_body": more})

    async def json(
        self, status: int, body: bytes | dict[str, Any] | list[Any], headers: Sequence[tuple[bytes, bytes]] = ()
    ) -> None:
        await self.start(status, [*JSON_HEADERS, *headers])
        await self.send(body if isinstance(body, bytes) else orjson.dumps(body))

    async def error(self, error: OpenAIError) -> None:
        retry = [(b"retry-after", str(max(1, round(error.retry_after_s))).encode())] if error.retry_after_s else []
        await self.json(error.status, error.json(), [*retry, *error.headers])


class HangUp:
    """Cancels a call the moment the client disconnects."""

    def __init__(self, receive: Receive, call: Any) -> None:
        self.happened = False
        self._call = call
        self._task = asyncio.ensure_future(self._watch(receive))

    async def _watch(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.happened = True
                self._call.cancel()
                return

    def stop(self) -> None:
        self._task.cancel()
