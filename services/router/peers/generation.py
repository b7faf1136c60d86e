"""One model answer from llm_gateway: the GenerationCall as a
GenerateRequest (built once), the stream as plain events, a failure as
the Fault the router's caller sees."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from tilores_x.v1 import common_pb2, llm_gateway_pb2, llm_gateway_pb2_grpc

from services.router.ports import GenerationCall, Grounding
from services.runtime.conversation_wire import (
    GROUNDING_ENUM,
    fact_proto,
    message_proto,
    response_format_proto,
    stream_event_of,
    tool_choice_proto,
    tool_proto,
)
from services.runtime.faults import (
    DeadlineExceeded,
    FailedPrecondition,
    Fault,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from services.runtime.request_context import answering_model, provider_ttft_ms
from services.runtime.rich_status import has_rich_status, status_details

_FAULTS = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
}


def model_service_fault(error: grpc.aio.AioRpcError) -> Fault:
    """llm_gateway's failure as the fault the router's caller sees, with the
    field and retry hint it named."""
    if error.code() == grpc.StatusCode.UNAVAILABLE and not has_rich_status(error):
        # A transport failure: grpc's own text names internal addresses.
        return Unavailable("the model service (llm_gateway) is unavailable; try again shortly")
    field_name, retry_after = status_details(error)
    kind = _FAULTS.get(error.code(), Fault)
    fault = kind(error.details() or error.code().name, field=field_name, retry_after_s=retry_after)
    if kind is Fault:
        fault.code = error.code().name
    return fault


class GenerationStreamOverGrpc:
    """One model call's events (a str per text delta, then ToolCallDelta,
    Finish, Usage, StreamError) and what its initial metadata said."""

    def __init__(self, call: Any) -> None:
        self._call = call
        self.provider_ms = 0.0
        self.model = ""

    async def events(self) -> AsyncIterator[object]:
        call = self._call
        try:
            first = await call.read()
            metadata = await call.initial_metadata()
            self.provider_ms = provider_ttft_ms(metadata)
            self.model = answering_model(metadata)
            message = first
            while message is not grpc.aio.EOF:
                yield stream_event_of(message)
                message = await call.read()
        except grpc.aio.AioRpcError as error:
            raise model_service_fault(error) from None
        finally:
            # Ends the upstream stream when our caller hung up or timed out.
            call.cancel()


class GenerationOverGrpc:
    def __init__(self, llm: llm_gateway_pb2_grpc.LlmGatewayServiceStub):
        self._llm = llm

    def open(self, call: GenerationCall, timeout_s: float) -> GenerationStreamOverGrpc:
        return GenerationStreamOverGrpc(self._llm.Generate(generate_request(call), timeout=timeout_s))


def grounding_proto(grounding: Grounding) -> common_pb2.Grounding:
    return common_pb2.Grounding(
        status=GROUNDING_ENUM.get(grounding.status, common_pb2.GROUNDING_STATUS_UNSPECIFIED),
        query=grounding.query,
        customer_name=grounding.customer_name,
        text=grounding.text,
        facts=[fact_proto(f) for f in grounding.facts],
        focus=grounding.focus,
    )


def generate_request(call: GenerationCall) -> llm_gateway_pb2.GenerateRequest:
    """The GenerateRequest for a call, built once on the way out."""
    request = llm_gateway_pb2.GenerateRequest(
        model=call.model,
        messages=[message_proto(m) for m in call.messages],
        tools=[tool_proto(t) for t in call.tools],
        no_fallback=call.no_fallback,
        tools_optional=call.tools_optional,
        grounding=grounding_proto(call.grounding),
    )
    if call.tool_choice is not None:
        request.tool_choice.CopyFrom(tool_choice_proto(call.tool_choice))
    if call.temperature is not None:
        request.temperature = call.temperature
    if call.max_tokens is not None:
        request.max_tokens = call.max_tokens
    options = request.options
    if call.top_p is not None:
        options.top_p = call.top_p
    options.stop.extend(call.stop)
    if call.seed is not None:
        options.seed = call.seed
    if call.response_format is not None:
        options.response_format.CopyFrom(response_format_proto(call.response_format))
    return request
