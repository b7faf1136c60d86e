"""The optimizer's adapter to llm_gateway: a whole model answer as text,
for the judge and the variant writer, which never see a proto."""

from __future__ import annotations

import grpc
from tilores_x.v1 import llm_gateway_pb2, llm_gateway_pb2_grpc

from services.runtime.conversation import Message, ResponseFormat
from services.runtime.conversation_wire import message_proto, response_format_proto


class GenerationFailed(Exception):
    """The model service or the model did not answer."""


class TextGeneration:
    def __init__(self, llm: llm_gateway_pb2_grpc.LlmGatewayServiceStub):
        self._llm = llm
        self._providers: dict[str, str] = {}

    async def provider_of(self, model: str) -> str:
        """The provider that serves a catalog model; "" when llm_gateway
        cannot say (a caller then assumes the strictest policy)."""
        if model not in self._providers:
            try:
                reply = await self._llm.ListModels(llm_gateway_pb2.ListModelsRequest(), timeout=5.0)
            except grpc.aio.AioRpcError:
                return ""
            self._providers = {m.id: m.provider for m in reply.models}
        return self._providers.get(model, "")

    async def complete(
        self,
        model: str,
        messages: list[Message],
        *,
        temperature: float,
        response_format: ResponseFormat | None = None,
        timeout_s: float = 60.0,
    ) -> str:
        """The model's whole answer, from that model alone (no fallback)."""
        request = llm_gateway_pb2.GenerateRequest(
            model=model, messages=[message_proto(m) for m in messages], no_fallback=True, temperature=temperature
        )
        if response_format is not None:
            request.options.response_format.CopyFrom(response_format_proto(response_format))
        parts: list[str] = []
        try:
            async for event in self._llm.Generate(request, timeout=timeout_s):
                kind = event.WhichOneof("event")
                if kind == "delta":
                    parts.append(event.delta)
                elif kind == "error":
                    raise GenerationFailed(f"the model failed: {event.error.message}")
        except grpc.aio.AioRpcError as error:
            raise GenerationFailed(f"the model service is unavailable ({error.code().name})") from None
        return "".join(parts)
