"""The optimizer's adapters to its peers: a whole model answer as text, for
the judge and the variant writer; and what an evaluation run asks of the
mesh. Nothing outside this module sees a proto of a peer."""

from __future__ import annotations

import time

import grpc
import orjson
from tilores_x.v1 import (
    llm_gateway_pb2,
    llm_gateway_pb2_grpc,
    router_pb2,
    router_pb2_grpc,
    tilores_data_pb2,
    tilores_data_pb2_grpc,
)

from services.optimizer.evaluation import Answer, Price
from services.optimizer.ports import GenerationFailed
from services.optimizer.question_set import CustomerRecords, Question
from services.runtime.conversation import Message, ResponseFormat
from services.runtime.conversation_wire import message_proto, response_format_proto
from services.runtime.customer_identifiers import identifiers_in
from services.runtime.request_context import ANSWERING_MODEL_HEADER


class TextGenerationOverGrpc:
    """TextGeneration (services/optimizer/ports.py) from llm_gateway."""

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


class EvaluationPeers:
    """What an evaluation run needs of the mesh, as plain types: a customer's
    records and links (tilores_data), an answer as a chat client gets it
    (the router), and the catalog's prices (llm_gateway)."""

    def __init__(
        self,
        router: router_pb2_grpc.RouterServiceStub,
        tilores: tilores_data_pb2_grpc.TiloresDataServiceStub,
        llm: llm_gateway_pb2_grpc.LlmGatewayServiceStub,
        answer_timeout_s: float = 120.0,
    ):
        self._router = router
        self._tilores = tilores
        self._llm = llm
        self._answer_timeout_s = answer_timeout_s

    async def customer(self, identifier: str) -> CustomerRecords | None:
        """The one customer an identifier names; None when it names none or
        several."""
        parameters = identifiers_in(identifier).search_parameters()
        if not parameters:
            return None
        try:
            reply = await self._tilores.SearchEntities(
                tilores_data_pb2.SearchEntitiesRequest(parameters=parameters), timeout=10.0
            )
        except grpc.aio.AioRpcError as error:
            raise EvaluationPeerFailed(f"tilores_data did not answer ({error.code().name})") from None
        if len(reply.entities) != 1:
            return None
        entity = reply.entities[0]
        records = tuple({"id": r.id, "SOURCE": r.source} | orjson.loads(r.data_json) for r in entity.records)
        return CustomerRecords(entity.id, records, tuple(entity.edges))

    async def models(self) -> dict[str, Price]:
        """Every catalog model with its prices."""
        try:
            reply = await self._llm.ListModels(llm_gateway_pb2.ListModelsRequest(), timeout=5.0)
        except grpc.aio.AioRpcError as error:
            raise EvaluationPeerFailed(f"llm_gateway did not answer ({error.code().name})") from None
        return {m.id: Price(m.input_price_per_million, m.output_price_per_million) for m in reply.models}

    async def ask(self, question: Question, model: str, run_id: str, prompt_version: int) -> Answer:
        """The question asked of the router as one chat turn, timed like a
        client times it. A follow-up's earlier turns are asked first, each
        with the conversation so far, as a chat client would; only the last
        is graded (and recorded for the run)."""
        conversation = await self._earlier_turns(question, model, run_id, prompt_version)
        conversation.append(Message("user", question.text))
        request = router_pb2.ChatRequest(
            model=model,
            messages=[message_proto(m) for m in conversation],
            completion_id=f"{run_id}-{question.id}-{model}",
            conversation_id=f"{run_id}-{question.id}",
            evaluation=router_pb2.EvaluationTurn(run_id=run_id, prompt_version=prompt_version),
        )
        started = time.perf_counter()
        first: float | None = None
        parts: list[str] = []
        usage = (0, 0)
        error = ""
        call = self._router.Chat(request, timeout=self._answer_timeout_s)
        try:
            async for event in call:
                kind = event.WhichOneof("event")
                if kind == "delta":
                    if first is None:
                        first = time.perf_counter()
                    parts.append(event.delta)
                elif kind == "usage":
                    usage = (event.usage.prompt_tokens, event.usage.completion_tokens)
                elif kind == "error":
                    error = event.error.message or "the answer failed"
            answered_by = dict(await call.initial_metadata()).get(ANSWERING_MODEL_HEADER, model)
        except grpc.aio.AioRpcError as failure:
            error, answered_by = f"{failure.code().name}: {failure.details()}", model
        done = time.perf_counter()
        return Answer(
            text="".join(parts),
            model=str(answered_by),
            ttft_ms=((first or done) - started) * 1000,
            total_ms=(done - started) * 1000,
            prompt_tokens=usage[0],
            completion_tokens=usage[1],
            error=error,
        )

    async def _earlier_turns(self, question: Question, model: str, run_id: str, prompt_version: int) -> list[Message]:
        """A follow-up's earlier turns, each asked with the conversation so
        far: the conversation the graded question continues."""
        conversation: list[Message] = []
        for earlier in question.earlier:
            conversation.append(Message("user", earlier))
            reply = await self._whole(router_pb2.ChatRequest(
                model=model, messages=[message_proto(m) for m in conversation],
                conversation_id=f"{run_id}-{question.id}", prompt_version=prompt_version,
            ))  # fmt: skip
            conversation.append(Message("assistant", reply))
        return conversation

    async def _whole(self, request: router_pb2.ChatRequest) -> str:
        """An earlier turn's answer text ("" when it failed: the conversation
        goes on, as a person's would)."""
        parts: list[str] = []
        try:
            async for event in self._router.Chat(request, timeout=self._answer_timeout_s):
                if event.WhichOneof("event") == "delta":
                    parts.append(event.delta)
        except grpc.aio.AioRpcError:
            return ""
        return "".join(parts)


class EvaluationPeerFailed(Exception):
    """A peer an evaluation needs did not answer."""
