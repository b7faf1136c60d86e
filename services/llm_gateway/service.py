"""LlmGatewayService servicer: runs a request along the model's failover
chain and maps provider events to stream messages."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
from tilores_x.v1 import common_pb2, llm_gateway_pb2, llm_gateway_pb2_grpc

from services.llm_gateway.failover import CLOSED, HALF_OPEN, OPEN, FailoverChain
from services.llm_gateway.failover_metrics import failover_metrics
from services.llm_gateway.providers.events import Started
from services.llm_gateway.wire import generation_request, model_message
from services.runtime.coalesce import batches, joined
from services.runtime.conversation_wire import stream_message
from services.runtime.faults import Fault, InvalidArgument
from services.runtime.metrics import SNAPSHOTS
from services.runtime.moment_wire import timestamp_of
from services.runtime.request_context import ANSWERING_MODEL_HEADER, PROVIDER_TTFT_HEADER

log = logging.getLogger("llm_gateway")
BREAKER_STATES = {
    CLOSED: llm_gateway_pb2.BREAKER_STATE_CLOSED,
    OPEN: llm_gateway_pb2.BREAKER_STATE_OPEN,
    HALF_OPEN: llm_gateway_pb2.BREAKER_STATE_HALF_OPEN,
}


def _provider_text(event: object) -> str | None:
    return event if type(event) is str else None


# After a message of the answer, the next waits this long so a fast model's
# tokens go on a few together: every message costs each hop CPU, and a few
# milliseconds are invisible to a reader. The first token is never held.
# With many answers streaming at once the hold grows (by the base for each
# STREAMS_PER_STEP open streams, up to MAX_HOLD_S): a thousand readers of
# 40 tokens a second each are better served a message every 100 ms than a
# mesh that falls behind.
DEFAULT_HOLD_S = 0.015
STREAMS_PER_STEP = 100
MAX_HOLD_S = 0.1


class LlmGatewayService(llm_gateway_pb2_grpc.LlmGatewayServiceServicer):
    def __init__(self, chain: FailoverChain, hold_s: float = DEFAULT_HOLD_S):
        self._chain = chain
        self._hold_s = hold_s
        self._open = 0  # answers streaming now

    def hold_s(self) -> float:
        """How long the next message of an answer waits, at this load."""
        return min(max(MAX_HOLD_S, self._hold_s), self._hold_s * (1 + self._open / STREAMS_PER_STEP))

    async def Generate(self, request: Any, context: Any) -> AsyncIterator[llm_gateway_pb2.GenerateResponse]:
        entry = self._chain.catalog.get(request.model)
        generation = generation_request(request, context.time_remaining())
        if generation.tools and not entry.supports_tools and not generation.tools_optional:
            raise InvalidArgument(f"model {entry.id!r} cannot call tools", field="tools")
        response = llm_gateway_pb2.GenerateResponse
        started = time.perf_counter()
        sent = 0
        answering = entry.id
        self._open += 1
        try:
            # Deltas that arrive while the previous message is being written,
            # or within the hold after it, go out together: fewer messages,
            # the same text in the same order.
            events = self._chain.stream(entry.id, generation, no_fallback=request.no_fallback)
            async for batch in batches(events, self.hold_s):
                items = batch
                if type(batch[0]) is Started:
                    # The model that answers, and its own time to the first
                    # chunk (retries and failover included), for the callers.
                    answering = batch[0].model
                    ttft_ms = (time.perf_counter() - started) * 1000
                    await context.send_initial_metadata(
                        ((PROVIDER_TTFT_HEADER, f"{ttft_ms:.2f}"), (ANSWERING_MODEL_HEADER, answering))
                    )
                    items = batch[1:]
                for item in joined(items, _provider_text):
                    yield stream_message(item, response)
                    sent += 1
        except Fault as fault:
            if not sent:
                raise
            # Headers and tokens have gone out: end with an explicit error.
            log.warning("generate.failed_mid_stream", extra={"fields": {"model": answering, "code": fault.code}})
            yield response(error=common_pb2.StreamError(code=fault.code, message=fault.message))
        except asyncio.CancelledError:
            log.info("generate.cancelled", extra={"fields": {"model": answering, "messages_sent": sent}})
            raise
        finally:
            self._open -= 1
        if log.isEnabledFor(logging.DEBUG):  # the call's own `rpc` line says how it ended and how long it took
            elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
            log.debug("generate.done", extra={"fields": {"model": answering, "messages": sent, "ms": elapsed_ms}})

    async def ListModels(self, request: Any, context: Any) -> llm_gateway_pb2.ListModelsResponse:
        models = [model_message(e, e.provider in self._chain.providers) for e in self._chain.catalog.entries]
        return llm_gateway_pb2.ListModelsResponse(models=models)

    async def Embed(self, request: Any, context: Any) -> llm_gateway_pb2.EmbedResponse:
        entry = self._chain.catalog.embedding_chain(request.model)[0]
        texts, token_inputs = list(request.texts), [list(t.ids) for t in request.token_inputs]
        if texts and token_inputs:
            raise InvalidArgument("input: texts or token ids, not both", field="input")
        count = len(texts) + len(token_inputs)
        if not count:
            raise InvalidArgument("input must not be empty", field="input")
        dimensions = request.dimensions or entry.dimensions
        if request.dimensions and not entry.adjustable_dimensions:
            raise InvalidArgument(f"dimensions: {entry.id} returns {entry.dimensions} only", field="dimensions")
        if not 1 <= dimensions <= entry.dimensions:
            raise InvalidArgument(f"dimensions: 1 to {entry.dimensions} for {entry.id}", field="dimensions")
        answered, vectors, tokens = await self._chain.embed(
            entry.id, texts, token_inputs, dimensions, context.time_remaining()
        )
        return llm_gateway_pb2.EmbedResponse(
            model=answered,
            embeddings=[llm_gateway_pb2.Embedding(values=v) for v in vectors],
            prompt_tokens=tokens,
        )

    async def GetProviderStatus(self, request: Any, context: Any) -> llm_gateway_pb2.GetProviderStatusResponse:
        statuses = []
        for name in sorted(self._chain.breakers):
            breaker = self._chain.breakers[name]
            counters = self._chain.counters[name]
            statuses.append(
                llm_gateway_pb2.ProviderStatus(
                    provider=name,
                    configured=name in self._chain.providers,
                    breaker=BREAKER_STATES[breaker.state],
                    consecutive_failures=breaker.consecutive_failures,
                    retry_after_ms=int(breaker.retry_after_s() * 1000),
                    failures_before_first_token=counters.failures_before_first_token,
                    failures_mid_stream=counters.failures_mid_stream,
                    successes=counters.successes,
                    changes=[
                        llm_gateway_pb2.BreakerChange(at=timestamp_of(at), state=BREAKER_STATES[state])
                        for at, state in breaker.changes
                    ],
                )
            )
        return llm_gateway_pb2.GetProviderStatusResponse(providers=statuses)


class LlmGatewayComponent:
    def __init__(self, chain: FailoverChain, hold_s: float = DEFAULT_HOLD_S):
        self.chain = chain
        self.hold_s = hold_s
        self._metrics = failover_metrics(chain)

    def register(self, server: grpc.aio.Server) -> Sequence[str]:
        llm_gateway_pb2_grpc.add_LlmGatewayServiceServicer_to_server(LlmGatewayService(self.chain, self.hold_s), server)
        SNAPSHOTS.add(self._metrics)
        return [llm_gateway_pb2.DESCRIPTOR.services_by_name["LlmGatewayService"].full_name]

    async def close(self) -> None:
        SNAPSHOTS.remove(self._metrics)
        for provider in self.chain.providers.values():
            await provider.close()
