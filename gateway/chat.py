"""ChatRoutes: `POST /v1/chat/completions`, streamed (SSE) or whole, and
`POST /v1/chat/batch`. The request is translated once into the router's
ChatRequest; the router's events are translated once into OpenAI chunks
or one chat.completion."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, cast

import grpc
from tilores_x.v1 import common_pb2, router_pb2, router_pb2_grpc

from gateway import metrics, sse
from gateway.chat_request import ChatCall, chat_call, parse_batch, parse_chat_request
from gateway.exchange import Exchange, HangUp
from gateway.openai_errors import OpenAIError, from_grpc, from_status
from gateway.quotas import Quotas
from gateway.routes import Route
from gateway.sse import DONE, ChunkEncoder, error_event
from services.runtime.agent_modes import CLIENT
from services.runtime.coalesce import batches, joined
from services.runtime.conversation import ToolCall, ToolCallAssembly, ToolCallDelta
from services.runtime.conversation_wire import FINISH_OF
from services.runtime.request_context import answering_model, provider_ttft_ms

log = logging.getLogger("gateway")

RESPONSE_CACHE_HEADER = b"x-response-cache"
# The mesh's own time before the first token, in ms (the provider's excluded).
MESH_ADDED_HEADER = b"x-mesh-added-ms"


class ChatRoutes:
    def __init__(self, router: router_pb2_grpc.RouterServiceStub, quotas: Quotas, timeout_s: float, heartbeat_s: float):
        self._router = router
        self._quotas = quotas
        self._timeout_s = timeout_s
        self._heartbeat_s = heartbeat_s

    def routes(self) -> list[Route]:
        return [
            Route("POST", "/v1/chat/completions", self.completions, "chat"),
            Route("POST", "/v1/chat/batch", self.batch, "chat"),
        ]

    async def completions(self, exchange: Exchange) -> None:
        body = await exchange.body()
        if body is None:
            log.info("chat.client_hung_up")  # before the request was even complete
            return
        chat = parse_chat_request(body)
        exchange.headers.extend((await self._quotas.admit(exchange.key, "chat", chat.model)).headers())
        for_router(chat.request, exchange)
        call = self._router.Chat(chat.request, timeout=self._timeout_s)
        hangup = HangUp(exchange.receive, call)
        try:
            await self._answer(exchange, chat, call)
        except asyncio.CancelledError:
            if not hangup.happened:
                raise
            log.info("chat.client_hung_up")
        finally:
            hangup.stop()

    async def _answer(self, exchange: Exchange, chat: ChatCall, call: Any) -> None:
        try:
            first = await self._first_event(call, chat, exchange)
        except grpc.aio.AioRpcError as error:
            if not exchange.status:
                raise from_grpc(error) from None
            # Heartbeats went out already: the error becomes an SSE event.
            await exchange.send(error_event(error.code().name, error.details()))
            return
        first_at = time.perf_counter()
        metadata = await call.initial_metadata()
        ttft_s = first_at - exchange.started
        added_ms = max(0.0, ttft_s * 1000 - provider_ttft_ms(metadata))
        exchange.headers.append((MESH_ADDED_HEADER, f"{added_ms:.2f}".encode()))
        # After a failover another model answers: every chunk names it.
        model = answering_model(metadata) or chat.model
        completion_id = chat.request.completion_id
        if chat.stream:
            metrics.STREAMS_IN_FLIGHT.inc()
            try:
                usage = await _stream(exchange, chat, model, completion_id, relay_events(call, first))
            finally:
                metrics.STREAMS_IN_FLIGHT.dec()
        else:
            usage = await _whole(exchange, model, completion_id, relay_events(call, first))
        metrics.observe_answer(chat.model, ttft_s, added_ms, first_at, usage)
        if usage is not None:
            await self._quotas.spend_tokens(exchange.key, chat.model, usage.total_tokens)

    async def _first_event(self, call: Any, chat: ChatCall, exchange: Exchange) -> Any:
        """The router's first event; a streaming client gets heartbeats
        while the model thinks."""
        if not chat.stream:
            return await call.read()
        return await sse.first_event(call, exchange, self._heartbeat_s)

    async def batch(self, exchange: Exchange) -> None:
        raw = await exchange.body()
        if raw is None:
            return
        items, concurrency = parse_batch(raw)
        exchange.headers.extend((await self._quotas.admit(exchange.key, "chat", requests=len(items))).headers())
        lines: list[dict[str, Any] | None] = [None] * len(items)
        to_router: list[tuple[int, ChatCall]] = []
        for n, (custom_id, body) in enumerate(items):
            try:
                chat = chat_call(body)
                if chat.stream:
                    raise OpenAIError(400, "Batch answers are whole: 'stream' must be false.", param="stream")
                for_router(chat.request, exchange)
            except OpenAIError as error:
                lines[n] = _batch_line(custom_id, error.status, error.body())
                continue
            to_router.append((n, chat))
        if to_router:
            try:
                reply = await self._router.ChatBatch(
                    router_pb2.ChatBatchRequest(requests=[c.request for _, c in to_router], concurrency=concurrency),
                    timeout=self._timeout_s,
                )
            except grpc.aio.AioRpcError as error:
                raise from_grpc(error) from None
            for (n, chat), item in zip(to_router, reply.items, strict=True):
                lines[n] = _batch_answer(items[n][0], chat, item)
            tokens = sum(item.answer.usage.total_tokens for item in reply.items if item.HasField("answer"))
            await self._quotas.spend_tokens(exchange.key, "", tokens)
        await exchange.json(200, {"object": "list", "data": lines})


def for_router(request: router_pb2.ChatRequest, exchange: Exchange) -> None:
    """What the gateway adds to a parsed request: its id and whether an
    identical earlier answer may be replayed (whose it is travels as the
    call's principal). A customer-facing key's conversations stay in
    client mode."""
    if exchange.key.audience == CLIENT and request.agent_mode == common_pb2.AGENT_MODE_AGENT:
        raise OpenAIError(
            403, "This key serves a customer-facing chat: agent_type may only be client_chat_agent.",
            type="permission_error", param="agent_type", code="permission_denied",
        )  # fmt: skip
    # Opt in to replaying an identical earlier answer (temperature 0 implies it).
    request.cache_response = exchange.header(RESPONSE_CACHE_HEADER).strip().lower() in (b"on", b"true", b"1")
    request.completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    request.conversation_id = request.conversation_id or request.completion_id


async def relay_events(call: Any, first: Any) -> AsyncIterator[router_pb2.ChatResponse]:
    if first is not grpc.aio.EOF:
        yield first
    while (event := await call.read()) is not grpc.aio.EOF:
        yield event


def _delta_text(event: router_pb2.ChatResponse) -> str | None:
    return event.delta if event.WhichOneof("event") == "delta" else None


async def _stream(
    exchange: Exchange, chat: ChatCall, model: str, completion_id: str, events: AsyncIterator[Any]
) -> common_pb2.Usage | None:
    """Relay the answer as SSE; its usage when it ended well, else None."""
    encoder = ChunkEncoder(completion_id, int(time.time()), model, chat.include_usage)
    if not exchange.status:
        await exchange.start(200, sse.HEADERS)
    await exchange.send(encoder.role(), more=True)
    usage = None
    try:
        async for batch in batches(events):
            # Deltas that piled up while the client socket was busy go out
            # as one SSE event: same text, same order, fewer writes.
            out: list[bytes] = []
            for item in joined(batch, _delta_text):
                if type(item) is str:
                    out.append(encoder.delta(item))
                    continue
                event = cast(router_pb2.ChatResponse, item)
                kind = event.WhichOneof("event")
                if kind == "tool_call":
                    piece = event.tool_call
                    out.append(encoder.tool_call(piece.index, piece.id, piece.name, piece.arguments))
                elif kind == "finish":
                    out.append(encoder.finish(FINISH_OF.get(event.finish.reason, "stop")))
                elif kind == "usage":
                    usage = event.usage
                elif kind == "error":
                    out.append(error_event(event.error.code, event.error.message))
                    await exchange.send(b"".join(out))
                    return None
            if out:
                await exchange.send(b"".join(out), more=True)
    except grpc.aio.AioRpcError as error:
        # Tokens have gone out: end with an error event, never [DONE].
        await exchange.send(error_event(error.code().name, error.details()))
        return None
    tail = DONE
    if chat.include_usage and usage is not None:
        tail = encoder.usage(usage.prompt_tokens, usage.completion_tokens) + DONE
    await exchange.send(tail)
    return usage


async def _whole(
    exchange: Exchange, model: str, completion_id: str, events: AsyncIterator[Any]
) -> common_pb2.Usage | None:
    """The answer as one chat.completion; its usage."""
    parts: list[str] = []
    calls = ToolCallAssembly()
    usage = None
    finish = "stop"
    try:
        async for event in events:
            kind = event.WhichOneof("event")
            if kind == "delta":
                parts.append(event.delta)
            elif kind == "tool_call":
                piece = event.tool_call
                calls.add(ToolCallDelta(piece.index, piece.id, piece.name, piece.arguments))
            elif kind == "usage":
                usage = event.usage
            elif kind == "finish":
                finish = FINISH_OF.get(event.finish.reason, "stop")
                model = event.finish.model or model
            elif kind == "error":
                raise from_status(event.error.code, event.error.message)
    except grpc.aio.AioRpcError as error:
        raise from_grpc(error) from None
    tool_calls = [_tool_call(c) for c in calls.calls()]
    await exchange.json(200, completion_body(completion_id, model, "".join(parts), tool_calls, finish, usage))
    return usage


def _tool_call(call: ToolCall | common_pb2.ToolCall) -> dict[str, Any]:
    """A whole tool call in OpenAI's shape."""
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}


def _batch_answer(custom_id: str, chat: ChatCall, item: router_pb2.ChatBatchItem) -> dict[str, Any]:
    if item.WhichOneof("outcome") == "error":
        # The router names the field within the batch ("requests[3].model").
        param = item.error.field.split(".", 1)[1] if "." in item.error.field else None
        error = from_status(item.error.code, item.error.message, param)
        return _batch_line(custom_id, error.status, error.body())
    answer = item.answer
    calls = [_tool_call(c) for c in answer.tool_calls]
    finish = FINISH_OF.get(answer.finish.reason, "stop")
    model = answer.finish.model or chat.model
    body = completion_body(chat.request.completion_id, model, answer.text, calls, finish, answer.usage)
    return _batch_line(custom_id, 200, body)


def _batch_line(custom_id: str, status: int, body: dict[str, Any]) -> dict[str, Any]:
    """One result, shaped like a line of an OpenAI batch output file."""
    return {
        "id": f"batch_req_{uuid.uuid4().hex[:24]}",
        "custom_id": custom_id,
        "response": {"status_code": status, "body": body},
        "error": None,
    }


def completion_body(
    completion_id: str, model: str, text: str, tool_calls: list[dict[str, Any]], finish: str, usage: Any
) -> dict[str, Any]:
    """A whole `chat.completion` object."""
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None, "annotations": []}
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
