"""GatewayApp: the OpenAI-compatible REST API as a plain ASGI application.

POST /v1/chat/completions  streamed (SSE) or whole answers from the router
GET  /v1/models            the model catalog
GET  /v1/models/{model}    one model of it
GET  /health               200 when the router answers its health check
GET  /health/detailed      every service, its replicas, breakers, cache tiers, Tilores, optimizer
GET  /health/live          200 while the process runs (liveness)
GET  /metrics              Prometheus metrics of the gateway
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import orjson
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from tilores_x.v1 import (
    cache_pb2,
    common_pb2,
    llm_gateway_pb2,
    llm_gateway_pb2_grpc,
    optimizer_pb2,
    optimizer_pb2_grpc,
    router_pb2,
    router_pb2_grpc,
)

from gateway import metrics
from gateway.admin_api import AdminApi, is_admin_path
from gateway.chat_request import ChatCall, chat_call, parse_batch, parse_chat_request, parse_feedback
from gateway.health_report import HealthReport
from gateway.json_body import MAX_ID_CHARS
from gateway.openai_errors import OpenAIError, from_grpc, from_status, stream_error_event
from gateway.plain_json import enum_word
from gateway.sse import DONE, HEARTBEAT, ChunkEncoder
from services.runtime.channels import open_channel
from services.runtime.coalesce import batches, joined
from services.runtime.request_context import (
    REQUEST_ID,
    REQUEST_ID_HEADER,
    answering_model,
    new_request_id,
    provider_ttft_ms,
)
from services.runtime.telemetry import tracing_disabled

log = logging.getLogger("gateway")

MAX_BODY_BYTES = 4 * 1024 * 1024
FINISH_REASONS = {
    common_pb2.FINISH_REASON_STOP: "stop",
    common_pb2.FINISH_REASON_LENGTH: "length",
    common_pb2.FINISH_REASON_TOOL_CALLS: "tool_calls",
    common_pb2.FINISH_REASON_CONTENT_FILTER: "content_filter",
}
JSON_HEADERS = [(b"content-type", b"application/json")]
RESPONSE_CACHE_HEADER = b"x-response-cache"
# The mesh's own time before the first token, in ms (the provider's excluded).
MESH_ADDED_HEADER = b"x-mesh-added-ms"
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


@dataclass(frozen=True)
class GatewaySettings:
    router_addr: str
    llm_gateway_addr: str
    api_keys: tuple[str, ...]
    chat_timeout_s: float
    heartbeat_s: float = 15.0
    optimizer_addr: str = ""
    admin_keys: tuple[str, ...] = ()


class GatewayApp:
    def __init__(self, settings: GatewaySettings):
        self._settings = settings
        self._keys = tuple(key.encode() for key in settings.api_keys)
        self._tenants = {key: "k" + hashlib.sha256(key).hexdigest()[:16] for key in self._keys}
        self._admin_keys = tuple(key.encode() for key in settings.admin_keys)
        self._admin: AdminApi | None = None
        self._channels: list[grpc.aio.Channel] = []
        self._router = None
        self._llm = None
        self._health = None
        self._optimizer = None
        self._report: HealthReport | None = None

    async def startup(self) -> None:
        router_channel = open_channel(self._settings.router_addr)
        llm_channel = open_channel(self._settings.llm_gateway_addr)
        self._channels = [router_channel, llm_channel]
        self._router = router_pb2_grpc.RouterServiceStub(router_channel)
        self._llm = llm_gateway_pb2_grpc.LlmGatewayServiceStub(llm_channel)
        self._health = health_pb2_grpc.HealthStub(router_channel)
        if self._settings.optimizer_addr:
            optimizer_channel = open_channel(self._settings.optimizer_addr)
            self._channels.append(optimizer_channel)
            self._optimizer = optimizer_pb2_grpc.OptimizerServiceStub(optimizer_channel)
            self._admin = AdminApi(self._optimizer, lambda: ((REQUEST_ID_HEADER, REQUEST_ID.get()),))
        addrs = {"router": self._settings.router_addr, "llm_gateway": self._settings.llm_gateway_addr}
        if self._settings.optimizer_addr:
            addrs["optimizer"] = self._settings.optimizer_addr
        self._report = HealthReport(self._router, self._optimizer, addrs)

    async def shutdown(self) -> None:
        for channel in self._channels:
            await channel.close()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request_id = new_request_id()
        replay = False
        for name, value in scope["headers"]:
            if name == b"x-request-id" and value:
                request_id = value.decode("latin-1")[:128]
            elif name == RESPONSE_CACHE_HEADER:
                # Opt in to replaying an identical earlier answer (temperature 0 implies it).
                replay = value.strip().lower() in (b"on", b"true", b"1")
        REQUEST_ID.set(request_id)
        started = time.perf_counter()
        method, path = scope["method"], scope["path"]
        response = _Response(send, request_id)
        try:
            if path == "/v1/chat/completions":
                self._allow(method, "POST")
                tenant = self._authenticate(scope)
                await self._chat(receive, response, tenant, replay)
            elif path == "/v1/chat/batch":
                self._allow(method, "POST")
                tenant = self._authenticate(scope)
                await self._batch(receive, response, tenant, replay)
            elif path == "/v1/feedback":
                self._allow(method, "POST")
                self._authenticate(scope)
                await self._feedback(receive, response)
            elif path == "/v1/models":
                self._allow(method, "GET")
                self._authenticate(scope)
                await self._models(response)
            elif path.startswith("/v1/models/"):
                self._allow(method, "GET")
                self._authenticate(scope)
                await self._model(response, path.removeprefix("/v1/models/"))
            elif path == "/health":
                self._allow(method, "GET")
                await self._healthcheck(response)
            elif path == "/metrics":
                self._allow(method, "GET")
                body, content_type = metrics.exposition()
                await response.start(200, [(b"content-type", content_type)])
                await response.send({"type": "http.response.body", "body": body})
            elif path == "/health/detailed":
                self._allow(method, "GET")
                status, body = await self._report.report()
                await response.json(status, orjson.dumps(body))
            elif path == "/health/live":
                # Liveness: the process answers; peers do not matter here.
                self._allow(method, "GET")
                await response.json(200, orjson.dumps({"status": "ok"}))
            elif is_admin_path(path):
                self._authorize_admin(scope)
                if self._admin is None:
                    raise OpenAIError(503, "The optimizer is not configured.", type="server_error")
                raw = await _read_body(receive) if method == "POST" else b""
                if raw is None:
                    return
                query = scope.get("query_string", b"").decode("latin-1")
                await response.json(200, await self._admin.handle(method, path, query, raw))
            else:
                raise OpenAIError(404, f"Invalid URL ({method} {path})", code="unknown_url")
        except OpenAIError as error:
            if response.status:
                raise
            headers = (
                [(b"retry-after", str(max(1, round(error.retry_after_s))).encode())] if error.retry_after_s else []
            )
            await response.json(error.status, error.json(), headers)
        finally:
            elapsed = time.perf_counter() - started
            route = metrics.route_of(path)
            metrics.HTTP_REQUESTS.labels(route, metrics.method_of(method), str(response.status)).inc()
            metrics.HTTP_SECONDS.labels(route).observe(elapsed)
            log.info(
                "http",
                extra={
                    "fields": {
                        "method": metrics.method_of(method),
                        # The route, not the path: a path may carry what a client typed.
                        "route": route,
                        "status": response.status,
                        "duration_ms": round(elapsed * 1000, 3),
                    }
                },
            )

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    @staticmethod
    def _allow(method: str, allowed: str) -> None:
        if method != allowed:
            raise OpenAIError(405, f"Method {method} is not allowed here; use {allowed}.", code="method_not_allowed")

    def _authenticate(self, scope) -> str:
        """The tenant of a valid key: a digest, so the key itself goes no
        further than this gateway."""
        header = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        scheme, _, key = header.partition(b" ")
        if not header or scheme.lower() != b"bearer" or not key.strip():
            raise OpenAIError(
                401,
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                type="invalid_request_error",
            )
        key = key.strip()
        # Compare against every key so timing says nothing about which is close.
        if not any([hmac.compare_digest(key, known) for known in self._keys]):
            raise OpenAIError(401, "Incorrect API key provided.", type="invalid_request_error", code="invalid_api_key")
        return self._tenants[key]

    def _authorize_admin(self, scope) -> None:
        """Admin keys only: an ordinary API key gets 403, no key 401."""
        header = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        scheme, _, key = header.partition(b" ")
        key = key.strip()
        if scheme.lower() == b"bearer" and key and any([hmac.compare_digest(key, k) for k in self._admin_keys]):
            return
        self._authenticate(scope)  # 401 for a missing or unknown key
        raise OpenAIError(
            403, "This endpoint needs an admin key.", type="invalid_request_error", code="insufficient_permissions"
        )

    async def _healthcheck(self, response: _Response) -> None:
        try:
            reply = await self._health.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
            router = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        except grpc.aio.AioRpcError as error:
            router = error.code().name
        status = 200 if router == "SERVING" else 503
        body: dict = {"status": "ok" if status == 200 else "unavailable", "router": router}
        if status == 200:
            try:
                detail = await self._router.GetHealthDetail(router_pb2.GetHealthDetailRequest(), timeout=2.0)
            except grpc.aio.AioRpcError:
                detail = None
            if detail is not None:
                body["peers"] = {peer.name: peer.status for peer in detail.peers}
                body["providers"] = {
                    p.provider: {
                        "configured": p.configured,
                        "breaker": enum_word(llm_gateway_pb2.BreakerState.DESCRIPTOR, p.breaker),
                        "retry_after_ms": p.retry_after_ms,
                        "failures_before_first_token": p.failures_before_first_token,
                        "failures_mid_stream": p.failures_mid_stream,
                        "successes": p.successes,
                    }
                    for p in detail.providers
                }
                # "degraded": answers come from the cache's in-process tier while Redis is down.
                body["cache_redis"] = enum_word(cache_pb2.RedisState.DESCRIPTOR, detail.cache_redis)
        await response.json(status, orjson.dumps(body))

    async def _feedback(self, receive, response: _Response) -> None:
        """A user's thumbs up or down on an answer, by its completion id."""
        raw = await _read_body(receive)
        if raw is None:
            return
        completion_id, thumbs_up, comment = parse_feedback(raw)
        if self._optimizer is None:
            raise OpenAIError(503, "Feedback is not available: no optimizer is configured.", type="server_error")
        try:
            await self._optimizer.RecordFeedback(
                optimizer_pb2.RecordFeedbackRequest(completion_id=completion_id, thumbs_up=thumbs_up, comment=comment),
                timeout=5.0,
                metadata=((REQUEST_ID_HEADER, response.request_id),),
            )
        except grpc.aio.AioRpcError as error:
            raise from_grpc(error) from None
        await response.json(200, orjson.dumps({"object": "feedback", "completion_id": completion_id, "recorded": True}))

    async def _catalog(self, request_id: str) -> list:
        try:
            reply = await self._llm.ListModels(
                llm_gateway_pb2.ListModelsRequest(), timeout=5.0, metadata=((REQUEST_ID_HEADER, request_id),)
            )
        except grpc.aio.AioRpcError as error:
            raise from_grpc(error) from None
        return list(reply.models)

    async def _models(self, response: _Response) -> None:
        data = [_model_object(m) for m in await self._catalog(response.request_id)]
        await response.json(200, orjson.dumps({"object": "list", "data": data}))

    async def _model(self, response: _Response, model_id: str) -> None:
        """`GET /v1/models/{model}`: one model of the catalog, as OpenAI's retrieve answers."""
        model_id = urllib.parse.unquote(model_id)
        for model in await self._catalog(response.request_id):
            if model.id == model_id:
                await response.json(200, orjson.dumps(_model_object(model)))
                return
        shown = model_id if len(model_id) <= MAX_ID_CHARS else model_id[:MAX_ID_CHARS] + "..."
        raise OpenAIError(
            404, f"The model '{shown}' does not exist or you do not have access to it.", param="model",
            code="model_not_found",
        )  # fmt: skip

    async def _chat(self, receive, response: _Response, tenant: str, replay: bool = False) -> None:
        body = await _read_body(receive)
        if body is None:
            log.info("chat.client_hung_up")  # before the request was even complete
            return
        chat = parse_chat_request(body)
        chat.request.tenant = tenant
        chat.request.cache_response = replay
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        chat.request.completion_id = completion_id
        if not chat.request.conversation_id:
            chat.request.conversation_id = completion_id
        call = self._router.Chat(
            chat.request,
            timeout=self._settings.chat_timeout_s,
            metadata=((REQUEST_ID_HEADER, response.request_id),),
        )
        hangup = _HangUp(receive, call)
        try:
            try:
                first = await self._first_event(call, chat, response)
            except grpc.aio.AioRpcError as error:
                if not response.status:
                    raise from_grpc(error) from None
                # Heartbeats went out already: the error becomes an SSE event.
                await response.send(
                    {"type": "http.response.body", "body": stream_error_event(error.code().name, error.details())}
                )
                return
            first_at = time.perf_counter()
            metadata = await call.initial_metadata()
            provider_ms = provider_ttft_ms(metadata)
            # After a failover another model answers: every chunk names it.
            answering = answering_model(metadata) or chat.model
            ttft_s = first_at - response.started
            added_ms = max(0.0, ttft_s * 1000 - provider_ms)
            response.headers.append((MESH_ADDED_HEADER, f"{added_ms:.2f}".encode()))
            if chat.stream:
                metrics.STREAMS_IN_FLIGHT.inc()
                try:
                    usage = await self._stream(chat, answering, completion_id, call, first, response)
                finally:
                    metrics.STREAMS_IN_FLIGHT.dec()
            else:
                usage = await self._whole(answering, completion_id, call, first, response)
            metrics.TIME_TO_FIRST_TOKEN.labels(chat.model).observe(ttft_s)
            metrics.MESH_ADDED.labels(chat.model).observe(added_ms / 1000)
            if usage is not None and usage.completion_tokens > 1:
                per_token = (time.perf_counter() - first_at) / (usage.completion_tokens - 1)
                metrics.TIME_PER_OUTPUT_TOKEN.labels(chat.model).observe(per_token)
        except asyncio.CancelledError:
            if not hangup.happened:
                raise
            log.info("chat.client_hung_up")
        finally:
            hangup.stop()

    async def _first_event(self, call, chat: ChatCall, response: _Response):
        """The router's first event. A streaming client gets `: ping` comments
        while the model thinks, so no idle timer on the way cuts the stream;
        until the first event an error can still be a proper HTTP status."""
        if not chat.stream:
            return await call.read()
        read = asyncio.ensure_future(call.read())
        try:
            while True:
                done, _ = await asyncio.wait({read}, timeout=self._settings.heartbeat_s)
                if done:
                    return read.result()
                if not response.status:
                    await response.start(200, SSE_HEADERS)
                await response.send({"type": "http.response.body", "body": HEARTBEAT, "more_body": True})
        finally:
            if not read.done():
                read.cancel()

    async def _stream(self, chat: ChatCall, model: str, completion_id: str, call, event, response: _Response):
        """Relay the answer as SSE; its usage when it ended well, else None."""
        encoder = ChunkEncoder(completion_id, int(time.time()), model, chat.include_usage)
        if not response.status:
            await response.start(200, SSE_HEADERS)
        send = response.send
        await send({"type": "http.response.body", "body": encoder.role(), "more_body": True})
        usage = None
        try:
            async for batch in batches(_events(call, event)):
                # Deltas that piled up while the client socket was busy go out
                # as one SSE event: same text, same order, fewer writes.
                out: list[bytes] = []
                for item in joined(batch, _delta_text):
                    if type(item) is str:
                        out.append(encoder.delta(item))
                        continue
                    kind = item.WhichOneof("event")
                    if kind == "tool_call":
                        call = item.tool_call
                        out.append(encoder.tool_call(call.index, call.id, call.name, call.arguments))
                    elif kind == "finish":
                        out.append(encoder.finish(FINISH_REASONS.get(item.finish.reason, "stop")))
                    elif kind == "usage":
                        usage = item.usage
                    elif kind == "error":
                        out.append(stream_error_event(item.error.code, item.error.message))
                        await send({"type": "http.response.body", "body": b"".join(out)})
                        return None
                if out:
                    await send({"type": "http.response.body", "body": b"".join(out), "more_body": True})
        except grpc.aio.AioRpcError as error:
            # Tokens have gone out: end with an error event, never [DONE].
            await send({"type": "http.response.body", "body": stream_error_event(error.code().name, error.details())})
            return None
        tail = DONE
        if chat.include_usage and usage is not None:
            tail = encoder.usage(usage.prompt_tokens, usage.completion_tokens) + DONE
        await send({"type": "http.response.body", "body": tail})
        return usage

    async def _whole(self, model: str, completion_id: str, call, event, response: _Response):
        parts: list[str] = []
        calls: dict[int, dict] = {}
        usage = None
        finish = "stop"
        while event is not grpc.aio.EOF:
            kind = event.WhichOneof("event")
            if kind == "delta":
                parts.append(event.delta)
            elif kind == "tool_call":
                delta = event.tool_call
                entry = calls.setdefault(
                    delta.index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
                )
                entry["id"] = entry["id"] or delta.id
                entry["function"]["name"] = entry["function"]["name"] or delta.name
                entry["function"]["arguments"] += delta.arguments
            elif kind == "usage":
                usage = event.usage
            elif kind == "finish":
                finish = FINISH_REASONS.get(event.finish.reason, "stop")
                model = event.finish.model or model
            elif kind == "error":
                raise from_status(event.error.code, event.error.message)
            try:
                event = await call.read()
            except grpc.aio.AioRpcError as error:
                raise from_grpc(error) from None
        tool_calls = [calls[index] for index in sorted(calls)]
        body = completion_body(completion_id, model, "".join(parts), tool_calls, finish, usage)
        await response.json(200, orjson.dumps(body))
        return usage

    async def _batch(self, receive, response: _Response, tenant: str, replay: bool = False) -> None:
        raw = await _read_body(receive)
        if raw is None:
            return
        items, concurrency = parse_batch(raw)
        outcomes: list[dict | None] = [None] * len(items)
        to_router: list[tuple[int, ChatCall]] = []
        for n, (custom_id, body) in enumerate(items):
            try:
                chat = chat_call(body)
                if chat.stream:
                    raise OpenAIError(400, "Batch answers are whole: 'stream' must be false.", param="stream")
            except OpenAIError as error:
                outcomes[n] = _batch_line(custom_id, error.status, error.body())
                continue
            chat.request.tenant = tenant
            chat.request.cache_response = replay
            chat.request.completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
            chat.request.conversation_id = chat.request.conversation_id or chat.request.completion_id
            to_router.append((n, chat))
        if to_router:
            try:
                reply = await self._router.ChatBatch(
                    router_pb2.ChatBatchRequest(requests=[c.request for _, c in to_router], concurrency=concurrency),
                    timeout=self._settings.chat_timeout_s,
                    metadata=((REQUEST_ID_HEADER, response.request_id),),
                )
            except grpc.aio.AioRpcError as error:
                raise from_grpc(error) from None
            for (n, chat), item in zip(to_router, reply.items, strict=True):
                custom_id = items[n][0]
                if item.WhichOneof("outcome") == "error":
                    # The router names the field within the batch ("requests[3].model").
                    param = item.error.field.split(".", 1)[1] if "." in item.error.field else None
                    error = from_status(item.error.code, item.error.message, param)
                    outcomes[n] = _batch_line(custom_id, error.status, error.body())
                    continue
                answer = item.answer
                calls = [
                    {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                    for c in answer.tool_calls
                ]
                finish = FINISH_REASONS.get(answer.finish.reason, "stop")
                model = answer.finish.model or chat.model
                body = completion_body(chat.request.completion_id, model, answer.text, calls, finish, answer.usage)
                outcomes[n] = _batch_line(custom_id, 200, body)
        await response.json(200, orjson.dumps({"object": "list", "data": outcomes}))


def _model_object(model: llm_gateway_pb2.Model) -> dict:
    """A catalog entry as an OpenAI model object, with this mesh's own fields."""
    return {
        "id": model.id,
        "object": "model",
        "created": 0,
        "owned_by": model.owned_by,
        "provider": model.provider,
        "available": model.available,
        "unavailable_reason": model.unavailable_reason or None,
        "context_window": model.context_window,
    }


def _batch_line(custom_id: str, status: int, body: dict) -> dict:
    """One result, shaped like a line of an OpenAI batch output file."""
    return {
        "id": f"batch_req_{uuid.uuid4().hex[:24]}",
        "custom_id": custom_id,
        "response": {"status_code": status, "body": body},
        "error": None,
    }


def completion_body(completion_id: str, model: str, text: str, tool_calls: list[dict], finish: str, usage) -> dict:
    """A whole `chat.completion` object."""
    message: dict = {"role": "assistant", "content": text, "refusal": None, "annotations": []}
    if tool_calls:
        message["content"] = message["content"] or None
        message["tool_calls"] = tool_calls
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": usage.prompt_tokens if usage else 0,
            "completion_tokens": usage.completion_tokens if usage else 0,
            "total_tokens": usage.total_tokens if usage else 0,
        },
    }


def _delta_text(event) -> str | None:
    return event.delta if event.WhichOneof("event") == "delta" else None


async def _events(call, first) -> AsyncIterator:
    if first is not grpc.aio.EOF:
        yield first
    while (event := await call.read()) is not grpc.aio.EOF:
        yield event


class _Response:
    """Sends the response and remembers its status for the access log."""

    def __init__(self, send, request_id: str):
        self.send = send
        self.request_id = request_id
        self.status = 0
        self.started = time.perf_counter()
        self.headers: list[tuple[bytes, bytes]] = []  # added to whatever starts the response

    async def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.status = status
        await self.send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*headers, *self.headers, (REQUEST_ID_HEADER.encode(), self.request_id.encode())],
            }
        )

    async def json(self, status: int, body: bytes, headers: list[tuple[bytes, bytes]] = ()) -> None:
        await self.start(status, [*JSON_HEADERS, *headers])
        await self.send({"type": "http.response.body", "body": body})


class _HangUp:
    """Cancels the router call the moment the client disconnects."""

    def __init__(self, receive, call):
        self.happened = False
        self._call = call
        self._task = asyncio.ensure_future(self._watch(receive))

    async def _watch(self, receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.happened = True
                self._call.cancel()
                return

    def stop(self) -> None:
        self._task.cancel()


async def _read_body(receive) -> bytes | None:
    """The request body; None when the client disconnected while sending it."""
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise OpenAIError(413, f"Request body is larger than {MAX_BODY_BYTES} bytes.", code="request_too_large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def build_asgi_app(settings: GatewaySettings):
    """The gateway as served."""
    app = GatewayApp(settings)
    return app if tracing_disabled() else traced(app)


def traced(app: GatewayApp) -> OpenTelemetryMiddleware:
    """One server span per HTTP request (the root of the chat's trace, or a
    child of the caller's `traceparent`), none per SSE event, none for
    probes and scrapes."""
    return OpenTelemetryMiddleware(
        app,
        excluded_urls="/health,/health/live,/health/detailed,/metrics",
        exclude_spans=["send", "receive"],
    )
