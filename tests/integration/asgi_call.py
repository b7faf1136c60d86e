"""One HTTP request to an ASGI app in process: the request body once, then a
client that stays until the answer is done (or hangs up after a delay)."""

from __future__ import annotations

import asyncio


async def call_asgi(
    app,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    key: str | None = None,
    hang_up_after_s: float | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """Status, response headers and the whole body."""
    sent: list[dict] = []
    delivered = False
    gone = asyncio.Event()

    async def receive():
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    headers = [(b"host", b"localhost"), (b"content-type", b"application/json")]
    if key:
        headers.append((b"authorization", f"Bearer {key}".encode()))
    # The fields a real server fills in; OpenTelemetry's ASGI middleware reads them.
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "headers": headers,
    }
    task = asyncio.ensure_future(app(scope, receive, send))
    if hang_up_after_s is not None:
        await asyncio.sleep(hang_up_after_s)
        gone.set()
    await asyncio.wait_for(task, 20)
    gone.set()
    start = next(m for m in sent if m["type"] == "http.response.start")
    response_headers = {k.decode(): v.decode() for k, v in start["headers"]}
    payload = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], response_headers, payload
