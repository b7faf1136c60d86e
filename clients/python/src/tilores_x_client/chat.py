"""ChatStream: one chat turn's answer as it arrives (an async iterator of
text deltas), then the whole of it as a ChatResult."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import grpc
from tilores_x.v1 import common_pb2, router_pb2

from tilores_x_client.errors import from_rpc_error, from_stream_error, mesh_error
from tilores_x_client.retry import RetryPolicy

ANSWERING_MODEL_HEADER = "x-mesh-model"

OpenChat = Callable[[router_pb2.ChatRequest, float], grpc.aio.UnaryStreamCall]


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass(frozen=True)
class ToolCall:
    """A call of one of the caller's own tools, for the caller to run."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ChatResult:
    """The whole answer."""

    text: str
    completion_id: str  # what feedback names the answer by
    model: str  # the model that answered (after any failover)
    provider: str
    finish_reason: str  # stop, length, tool_calls or content_filter
    usage: Usage | None
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass
class _Parts:
    text: list[str] = field(default_factory=list)
    finish: common_pb2.Finish | None = None
    usage: Usage | None = None
    calls: dict[int, list[str]] = field(default_factory=dict)


class ChatStream:
    """`async for delta in stream` yields the answer's text as it comes;
    `stream.result` is the whole answer once the stream has ended, and
    `await stream.collect()` reads it to the end. A failure raises a
    MeshError; UNAVAILABLE before the first message is retried by the
    policy, within the deadline."""

    def __init__(
        self,
        open_chat: OpenChat,
        request: router_pb2.ChatRequest,
        deadline: float,
        policy: RetryPolicy,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._open = open_chat
        self._request = request
        self._deadline = deadline
        self._policy = policy
        self._sleep = sleep
        self._result: ChatResult | None = None
        self._started = False
        self.attempts = 0

    @property
    def completion_id(self) -> str:
        return self._request.completion_id

    @property
    def result(self) -> ChatResult:
        if self._result is None:
            raise RuntimeError("the answer has not been read to its end")
        return self._result

    def __aiter__(self) -> AsyncIterator[str]:
        if self._started:
            raise RuntimeError("a ChatStream is read once")
        self._started = True
        return self._deltas()

    async def collect(self) -> ChatResult:
        async for _ in self:
            pass
        return self.result

    async def _deltas(self) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        ends_at = loop.time() + self._deadline
        while True:
            self.attempts += 1
            parts = _Parts()
            answered = False
            call = self._open(self._request, max(ends_at - loop.time(), 0.001))
            try:
                async for message in call:
                    answered = True
                    delta = self._take(message, parts)
                    if delta:
                        yield delta
            except grpc.aio.AioRpcError as error:
                wait = self._policy.backoff(self.attempts)
                if self._policy.retries(error.code(), self.attempts, answered) and loop.time() + wait < ends_at:
                    await self._sleep(wait)
                    continue
                raise from_rpc_error(error) from None
            finally:
                call.cancel()  # a reader that stopped early ends the stream; a no-op once it is done
            self._result = await self._finished(call, parts)
            return

    @staticmethod
    def _take(message: router_pb2.ChatResponse, parts: _Parts) -> str:
        event = message.WhichOneof("event")
        if event == "delta":
            parts.text.append(message.delta)
            return message.delta
        if event == "tool_call":
            piece = message.tool_call
            call = parts.calls.setdefault(piece.index, ["", "", ""])
            call[0] = call[0] or piece.id
            call[1] = call[1] or piece.name
            call[2] += piece.arguments
        elif event == "finish":
            parts.finish = message.finish
        elif event == "usage":
            u = message.usage
            parts.usage = Usage(u.prompt_tokens, u.completion_tokens, u.total_tokens)
        elif event == "error":
            raise from_stream_error(message.error.code, message.error.message)
        return ""

    async def _finished(self, call: grpc.aio.UnaryStreamCall, parts: _Parts) -> ChatResult:
        if parts.finish is None:
            raise mesh_error(grpc.StatusCode.UNAVAILABLE, "the answer stream ended before the answer did")
        header = dict(await call.initial_metadata() or ())
        reason = common_pb2.FinishReason.Name(parts.finish.reason).removeprefix("FINISH_REASON_").lower()
        return ChatResult(
            text="".join(parts.text),
            completion_id=self._request.completion_id,
            model=parts.finish.model or str(header.get(ANSWERING_MODEL_HEADER, "")),
            provider=parts.finish.provider,
            finish_reason=reason,
            usage=parts.usage,
            tool_calls=tuple(ToolCall(*parts.calls[index]) for index in sorted(parts.calls)),
        )
