"""LlmGatewayService servicer: resolves the model, runs its provider and maps
provider events to stream messages."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import grpc
from tilores_x.v1 import common_pb2, llm_gateway_pb2, llm_gateway_pb2_grpc

from services.llm_gateway.catalog import ModelCatalog
from services.llm_gateway.providers.events import Fact, Finish, GenerationRequest, Grounding, Usage
from services.runtime.coalesce import batches, joined
from services.runtime.faults import FailedPrecondition, Fault, InvalidArgument

log = logging.getLogger("llm_gateway")

ROLES = {
    common_pb2.ROLE_SYSTEM: "system",
    common_pb2.ROLE_USER: "user",
    common_pb2.ROLE_ASSISTANT: "assistant",
    common_pb2.ROLE_TOOL: "tool",
}
GROUNDING_STATUS = {
    common_pb2.GROUNDING_STATUS_UNSPECIFIED: "",
    common_pb2.GROUNDING_STATUS_FOUND: "found",
    common_pb2.GROUNDING_STATUS_NOT_FOUND: "not_found",
    common_pb2.GROUNDING_STATUS_AMBIGUOUS: "ambiguous",
    common_pb2.GROUNDING_STATUS_NO_IDENTIFIER: "no_identifier",
    common_pb2.GROUNDING_STATUS_UNAVAILABLE: "unavailable",
}
FINISH = {
    "stop": common_pb2.FINISH_REASON_STOP,
    "length": common_pb2.FINISH_REASON_LENGTH,
    "tool_calls": common_pb2.FINISH_REASON_TOOL_CALLS,
    "content_filter": common_pb2.FINISH_REASON_CONTENT_FILTER,
}


def generation_request(request: llm_gateway_pb2.GenerateRequest, upstream: str, timeout_s: float | None):
    if not request.messages:
        raise InvalidArgument("messages must not be empty", field="messages")
    messages = []
    for n, message in enumerate(request.messages):
        role = ROLES.get(message.role)
        if role is None:
            raise InvalidArgument(f"messages[{n}].role is not set", field=f"messages[{n}].role")
        messages.append((role, message.content))
    if request.HasField("temperature") and not 0 <= request.temperature <= 2:
        raise InvalidArgument("temperature must be between 0 and 2", field="temperature")
    if request.HasField("max_tokens") and request.max_tokens < 1:
        raise InvalidArgument("max_tokens must be at least 1", field="max_tokens")
    g = request.grounding
    grounding = Grounding(
        status=GROUNDING_STATUS.get(g.status, ""),
        query=g.query,
        customer_name=g.customer_name,
        facts=tuple(Fact(f.topic, f.label, f.value, f.record_id) for f in g.facts),
    )
    return GenerationRequest(
        upstream_model=upstream,
        messages=messages,
        temperature=request.temperature if request.HasField("temperature") else None,
        max_tokens=request.max_tokens if request.HasField("max_tokens") else None,
        grounding=grounding,
        timeout_s=timeout_s,
    )


def _provider_text(event: object) -> str | None:
    return event if type(event) is str else None


def _event_message(event: object) -> llm_gateway_pb2.GenerateResponse:
    if isinstance(event, Usage):
        usage = common_pb2.Usage(
            prompt_tokens=event.prompt_tokens,
            completion_tokens=event.completion_tokens,
            total_tokens=event.total_tokens,
        )
        return llm_gateway_pb2.GenerateResponse(usage=usage)
    if isinstance(event, Finish):
        return llm_gateway_pb2.GenerateResponse(finish=common_pb2.Finish(reason=FINISH[event.reason]))
    raise TypeError(f"unexpected provider event {type(event).__name__}")


class LlmGatewayService(llm_gateway_pb2_grpc.LlmGatewayServiceServicer):
    def __init__(self, catalog: ModelCatalog, providers: dict):
        self._catalog = catalog
        self._providers = providers

    async def Generate(self, request, context):
        entry = self._catalog.get(request.model)
        provider = self._providers.get(entry.provider)
        if provider is None:
            raise FailedPrecondition(
                f"model {entry.id!r} needs provider {entry.provider!r}, which is not configured", field="model"
            )
        generation = generation_request(request, entry.upstream, context.time_remaining())
        response = llm_gateway_pb2.GenerateResponse
        started = time.perf_counter()
        sent = 0
        try:
            # Deltas that arrive while the previous message is still being
            # written go out together: fewer messages, same text and order.
            async for batch in batches(provider.stream(generation)):
                for item in joined(batch, _provider_text):
                    yield response(delta=item) if type(item) is str else _event_message(item)
                    sent += 1
        except Fault as fault:
            if not sent:
                raise
            # Headers and tokens have gone out: end with an explicit error.
            log.warning("generate.failed_mid_stream", extra={"fields": {"model": entry.id, "code": fault.code}})
            yield response(error=common_pb2.StreamError(code=fault.code, message=fault.message))
        except asyncio.CancelledError:
            log.info("generate.cancelled", extra={"fields": {"model": entry.id, "messages_sent": sent}})
            raise
        log.info(
            "generate.done",
            extra={
                "fields": {"model": entry.id, "events": sent, "ms": round((time.perf_counter() - started) * 1000, 2)}
            },
        )

    async def ListModels(self, request, context):
        models = []
        for entry in self._catalog.entries:
            available = entry.provider in self._providers
            models.append(
                llm_gateway_pb2.Model(
                    id=entry.id,
                    provider=entry.provider,
                    owned_by=entry.owned_by,
                    available=available,
                    unavailable_reason="" if available else f"provider {entry.provider} is not configured",
                    context_window=entry.context_window,
                )
            )
        return llm_gateway_pb2.ListModelsResponse(models=models)


class LlmGatewayComponent:
    def __init__(self, catalog: ModelCatalog, providers: dict):
        self.catalog = catalog
        self.providers = providers

    def register(self, server: grpc.aio.Server) -> Sequence[str]:
        llm_gateway_pb2_grpc.add_LlmGatewayServiceServicer_to_server(
            LlmGatewayService(self.catalog, self.providers), server
        )
        return [llm_gateway_pb2.DESCRIPTOR.services_by_name["LlmGatewayService"].full_name]

    async def close(self) -> None:
        for provider in self.providers.values():
            close = getattr(provider, "close", None)
            if close is not None:
                await close()
