"""RouterService servicer: one chat turn. Finds the customer, builds the
grounded prompt, streams the model's answer and forwards each event the
moment it arrives."""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import grpc
from tilores_x.v1 import common_pb2, llm_gateway_pb2, optimizer_pb2, router_pb2, router_pb2_grpc

from services.router.field_policy import FieldPolicy
from services.router.grounding import NO_IDENTIFIER, NOT_FOUND, UNAVAILABLE, CustomerGrounding, ambiguous, found
from services.router.outcome_outbox import outbox_metrics
from services.router.peers import LookupUnavailable, MeshPeers
from services.router.tools import MAX_ROUNDS, TOOLS, ToolRunner
from services.runtime.coalesce import batches, joined
from services.runtime.customer_identifiers import Identifiers, identifiers_by_message
from services.runtime.faults import Fault, InvalidArgument
from services.runtime.metrics import SNAPSHOTS
from services.runtime.request_context import (
    ANSWERING_MODEL_HEADER,
    PROVIDER_TTFT_HEADER,
    answering_model,
    provider_ttft_ms,
)
from services.runtime.rich_status import has_rich_status, status_details

ROLE_NAMES = {
    common_pb2.ROLE_SYSTEM: "system",
    common_pb2.ROLE_USER: "user",
    common_pb2.ROLE_ASSISTANT: "assistant",
    common_pb2.ROLE_TOOL: "tool",
}
GROUNDING_STATUS = {
    "found": common_pb2.GROUNDING_STATUS_FOUND,
    "not_found": common_pb2.GROUNDING_STATUS_NOT_FOUND,
    "ambiguous": common_pb2.GROUNDING_STATUS_AMBIGUOUS,
    "no_identifier": common_pb2.GROUNDING_STATUS_NO_IDENTIFIER,
    "unavailable": common_pb2.GROUNDING_STATUS_UNAVAILABLE,
}


def conversation(request: router_pb2.ChatRequest) -> list[tuple[str, str]]:
    if not request.model:
        raise InvalidArgument("model is required", field="model")
    if not request.messages:
        raise InvalidArgument("messages must not be empty", field="messages")
    messages = []
    for n, message in enumerate(request.messages):
        role = ROLE_NAMES.get(message.role)
        if role is None:
            raise InvalidArgument(f"messages[{n}].role is not set", field=f"messages[{n}].role")
        messages.append((role, message.content))
    return messages


def grounding_message(grounding: CustomerGrounding, text: str) -> common_pb2.Grounding:
    message = common_pb2.Grounding(
        status=GROUNDING_STATUS[grounding.status],
        query=grounding.query,
        customer_name=grounding.customer_name,
        text=text,
    )
    for fact in grounding.facts:
        message.facts.add(
            topic=fact.topic, label=fact.label, value=fact.value, record_id=fact.record_id, pii_kind=fact.pii_kind
        )
    return message


# The share of a model's context window the customer context may fill, at
# roughly four characters a token; the rest is for the conversation and the
# answer.
CONTEXT_SHARE = 0.5
CHARS_PER_TOKEN = 4
MIN_CONTEXT_CHARS = 1500
MAX_BATCH = 100
_WORDS = re.compile(r"\s*\S+\s*|\s+")
DEFAULT_BATCH_CONCURRENCY = 4
MAX_BATCH_CONCURRENCY = 16


class RouterService(router_pb2_grpc.RouterServiceServicer):
    def __init__(
        self, peers: MeshPeers, default_timeout_s: float, policy: FieldPolicy | None = None, tools: bool = True
    ):
        self._peers = peers
        self._default_timeout_s = default_timeout_s
        self._policy = policy or FieldPolicy.bundled()
        self._tools = ToolRunner(peers, self._policy) if tools else None

    def _remaining(self, context: grpc.aio.ServicerContext) -> float:
        remaining = context.time_remaining()
        return self._default_timeout_s if remaining is None else max(remaining, 0.001)

    async def _grounding(self, messages, conversation_id: str, timeout_s: float, tenant: str):
        candidates = identifiers_by_message(messages)
        if not candidates:
            prompt = await self._peers.prompt("general", conversation_id, timeout_s)
            return CustomerGrounding(NO_IDENTIFIER), prompt
        # The prompt and the customer are independent: fetch them together.
        prompt_task = asyncio.ensure_future(self._peers.prompt("customer", conversation_id, timeout_s))
        try:
            grounding = await self._customer(candidates, timeout_s, tenant)
        except BaseException:
            prompt_task.cancel()
            raise
        if grounding.status == NO_IDENTIFIER:  # the names named nobody
            prompt_task.cancel()
            return grounding, await self._peers.prompt("general", conversation_id, timeout_s)
        return grounding, await prompt_task

    async def _customer(self, candidates: list[Identifiers], timeout_s: float, tenant: str) -> CustomerGrounding:
        """The customer of the newest message that names one. An exact
        identifier decides at once; names are looked up together and the
        first that finds a customer wins. Names typed as names ("Jasper
        Abbott") that find nobody are an answer (no customer matches);
        word pairs that merely could be names send the search on to the
        message before."""
        for identifiers in candidates:
            if identifiers.exact:
                return await self._lookup(identifiers.describe(), identifiers.search_parameters(), timeout_s, tenant)
            names = identifiers.names
            try:
                found_by_name = await asyncio.gather(
                    *(self._peers.find_entities(n.search_parameters(), timeout_s, tenant) for n in names)
                )
            except LookupUnavailable:
                return CustomerGrounding(UNAVAILABLE, names[0].describe())
            for name, entities in zip(names, found_by_name, strict=True):
                if entities:
                    return await self._grounded(name.describe(), entities, timeout_s, tenant)
            said = next((n for n in names if n.written_as_name), None)
            if said is not None:
                return CustomerGrounding(NOT_FOUND, said.describe())
        return CustomerGrounding(NO_IDENTIFIER)

    async def _lookup(self, query: str, parameters: dict[str, str], timeout_s: float, tenant: str):
        try:
            entities = await self._peers.find_entities(parameters, timeout_s, tenant)
        except LookupUnavailable:
            return CustomerGrounding(UNAVAILABLE, query)
        return await self._grounded(query, entities, timeout_s, tenant)

    async def _grounded(self, query: str, entities, timeout_s: float, tenant: str) -> CustomerGrounding:
        if not entities:
            return CustomerGrounding(NOT_FOUND, query)
        if len(entities) > 1:
            return ambiguous(query, entities)
        try:
            view, credit = await self._peers.customer_view(entities[0].id, timeout_s, tenant)
        except LookupUnavailable:
            return CustomerGrounding(UNAVAILABLE, query)
        return found(query, view, credit)

    async def _model_limits(self, request) -> tuple[frozenset[str], int | None, bool]:
        """The personal data every provider that may answer is allowed to
        see, the context budget in characters, and whether the model can
        call tools."""
        try:
            models = await self._peers.models()
        except grpc.aio.AioRpcError:
            models = {}
        model = models.get(request.model)
        if model is None:
            return self._policy.allowed([""]), MIN_CONTEXT_CHARS, False  # unknown: the default policy
        chain = [model.provider]
        if not request.no_fallback:
            chain += [models[f].provider for f in model.fallbacks if f in models]
        budget = None
        if model.context_window:
            conversation = sum(len(m.content) for m in request.messages)
            budget = max(MIN_CONTEXT_CHARS, int(model.context_window * CHARS_PER_TOKEN * CONTEXT_SHARE) - conversation)
        return self._policy.allowed(chain), budget, model.supports_tools

    async def prepare(self, request, timeout_s: float):
        """Everything a turn does before its first model call: the customer,
        the prompt, the policy, the context; the Generate request to send."""
        messages = conversation(request)
        (grounding, prompt), (allowed, budget, supports_tools) = await asyncio.gather(
            self._grounding(messages, request.conversation_id, timeout_s, request.tenant),
            self._model_limits(request),
        )
        grounding.facts = self._policy.apply(grounding.facts, allowed)
        context_text = grounding.text(budget)
        generate = llm_gateway_pb2.GenerateRequest(
            model=request.model, grounding=grounding_message(grounding, context_text)
        )
        generate.messages.add(role=common_pb2.ROLE_SYSTEM, content=prompt.template.replace("{context}", context_text))
        generate.messages.extend(request.messages)
        if request.HasField("temperature"):
            generate.temperature = request.temperature
        if request.HasField("max_tokens"):
            generate.max_tokens = request.max_tokens
        generate.options.CopyFrom(request.options)
        generate.no_fallback = request.no_fallback
        # The caller's own tools go to the model and its calls back to the
        # caller; otherwise a model that can call tools is offered the
        # router's data tools, which the router runs itself. They are only
        # offered: the context is in the prompt, so a fallback that cannot
        # call tools answers without them. tool_choice "none" means no tool
        # at all.
        choice = request.tool_choice.mode
        own_tools = (
            supports_tools
            and not request.tools
            and self._tools is not None
            and choice in (common_pb2.TOOL_CHOICE_MODE_UNSPECIFIED, common_pb2.TOOL_CHOICE_MODE_AUTO)
        )
        if choice != common_pb2.TOOL_CHOICE_MODE_NONE:
            generate.tools.extend(request.tools or (TOOLS if own_tools else ()))
            generate.tool_choice.CopyFrom(request.tool_choice)
        generate.tools_optional = own_tools
        return generate, allowed, own_tools, prompt

    async def _answer(
        self, request, remaining: Callable[[], float], timing: TurnTiming | None = None
    ) -> AsyncIterator[router_pb2.ChatResponse]:
        """One turn as stream events. Raises _Unanswered when the model
        service failed before anything was sent. `timing` learns how much
        of the time before the first event the model provider took."""
        started = time.perf_counter()
        generate, allowed, own_tools, prompt = await self.prepare(request, remaining())
        answer: list[str] = []

        def outcome(error: bool, usage: common_pb2.Usage | None = None, model: str = "") -> None:
            # Off the hot path: the optimizer scores the turn and feeds experiments.
            if request.completion_id and prompt.version:
                self._peers.record_outcome(
                    optimizer_pb2.RecordOutcomeRequest(
                        completion_id=request.completion_id,
                        prompt=prompt.name,
                        version=prompt.version,
                        experiment_id=prompt.experiment_id,
                        model=model or request.model,
                        latency_ms=(time.perf_counter() - started) * 1000,
                        tokens=usage.total_tokens if usage else 0,
                        error=error,
                        question=next(
                            (m.content for m in reversed(request.messages) if m.role == common_pb2.ROLE_USER), ""
                        ),
                        answer="".join(answer),
                        grounding=generate.grounding,
                    )
                )

        replay = request.cache_response or (request.HasField("temperature") and request.temperature == 0)
        cache_key = _answer_key(generate) if replay else ""
        if cache_key:
            cached = await self._peers.cached_answer(request.tenant, cache_key)
            if cached is not None:
                if timing is not None:
                    timing.model = cached.finish.model
                # Word by word, as a model would stream it.
                for delta in cached.deltas:
                    for word in _WORDS.findall(delta):
                        yield router_pb2.ChatResponse(delta=word)
                if cached.HasField("finish"):
                    yield router_pb2.ChatResponse(finish=cached.finish)
                yield router_pb2.ChatResponse(usage=cached.usage)
                return
        record = router_pb2.CachedAnswer() if cache_key else None
        response = router_pb2.ChatResponse
        sent = 0
        usage = common_pb2.Usage()
        round_number = 0
        finish = None
        while True:
            if own_tools and round_number == MAX_ROUNDS:
                del generate.tools[:]  # the last round must answer in words
            call = self._peers.generate(generate, remaining())
            round_started = time.perf_counter()
            round_ttft_ms = -1.0
            calls: dict[int, common_pb2.ToolCall] = {}
            finish = None
            try:
                async for batch in batches(_events(call)):
                    if timing is not None and round_ttft_ms < 0 and not sent:
                        metadata = await call.initial_metadata()
                        round_ttft_ms = provider_ttft_ms(metadata)
                        timing.provider_ms += round_ttft_ms
                        timing.model = answering_model(metadata) or timing.model
                    for item in joined(batch, _delta_text):
                        if type(item) is str:
                            yield response(delta=item)
                            sent += 1
                            answer.append(item)
                            if record is not None:
                                record.deltas.append(item)
                            continue
                        kind = item.WhichOneof("event")
                        if kind == "usage":
                            _add_usage(usage, item.usage)
                        elif kind == "finish":
                            finish = item.finish
                        elif kind == "tool_call" and own_tools:
                            _gather_call(calls, item.tool_call)
                        else:  # error, or a call of the caller's tools: neither is replayable
                            record = None
                            yield response(**{kind: getattr(item, kind)})
                            sent += 1
                            if kind == "error":
                                outcome(error=True)
                                return  # the stream ends with the error, nothing after it
            except grpc.aio.AioRpcError as error:
                if error.code() == grpc.StatusCode.UNAVAILABLE and not has_rich_status(error):
                    # A transport failure: grpc's own text names internal addresses.
                    error = _ModelServiceUnavailable()
                outcome(error=True)
                if not sent:
                    raise _Unanswered(error) from None
                yield response(error=common_pb2.StreamError(code=error.code().name, message=error.details() or ""))
                return
            finally:
                # Ends the upstream stream when our caller hung up or timed out.
                call.cancel()
            if not calls or not generate.tools:
                break  # an answer; or calls made without tools on offer, which nothing runs
            round_number += 1
            if timing is not None and not sent:
                # A tool round before any answer: all of its model time counts.
                timing.provider_ms += (time.perf_counter() - round_started) * 1000 - max(round_ttft_ms, 0.0)
            # Run the model's calls, give it the results, and ask again.
            generate.messages.add(role=common_pb2.ROLE_ASSISTANT, tool_calls=list(calls.values()))
            timeout_s = remaining()
            results = await asyncio.gather(
                *(self._tools.run(c.name, c.arguments, allowed, request.tenant, timeout_s) for c in calls.values())
            )
            for tool_call, result in zip(calls.values(), results, strict=True):
                generate.messages.add(role=common_pb2.ROLE_TOOL, tool_call_id=tool_call.id, content=result)
        if finish is not None:
            yield response(finish=finish)
        yield response(usage=usage)
        outcome(error=False, usage=usage, model=finish.model if finish is not None else "")
        if record is not None and finish is not None:
            record.finish.CopyFrom(finish)
            record.usage.CopyFrom(usage)
            self._peers.keep_answer(request.tenant, cache_key, record)

    async def Chat(self, request, context):
        timing = TurnTiming()
        first = True
        try:
            async for event in self._answer(request, lambda: self._remaining(context), timing):
                if first:
                    first = False
                    metadata = [(PROVIDER_TTFT_HEADER, f"{timing.provider_ms:.2f}")]
                    if timing.model:
                        metadata.append((ANSWERING_MODEL_HEADER, timing.model))
                    await context.send_initial_metadata(tuple(metadata))
                yield event
        except _Unanswered as failure:
            # Nothing sent yet: relay the status (and its details) as is, so
            # the caller may still retry or map it.
            error = failure.error
            await context.abort(error.code(), error.details(), tuple(error.trailing_metadata() or ()))

    async def ChatBatch(self, request, context):
        if not request.requests:
            raise InvalidArgument("requests must not be empty", field="requests")
        if len(request.requests) > MAX_BATCH:
            raise InvalidArgument(
                f"at most {MAX_BATCH} requests per batch, got {len(request.requests)}", field="requests"
            )
        if not 0 <= request.concurrency <= MAX_BATCH_CONCURRENCY:
            raise InvalidArgument(f"concurrency must be 0..{MAX_BATCH_CONCURRENCY}", field="concurrency")
        gate = asyncio.Semaphore(request.concurrency or DEFAULT_BATCH_CONCURRENCY)
        reply = router_pb2.ChatBatchResponse()
        items = [reply.items.add() for _ in request.requests]

        async def one(n: int, turn: router_pb2.ChatRequest) -> None:
            async with gate:
                await self._batch_item(turn, items[n], f"requests[{n}].", lambda: self._remaining(context))

        await asyncio.gather(*(one(n, turn) for n, turn in enumerate(request.requests)))
        return reply

    async def _batch_item(self, turn, item: router_pb2.ChatBatchItem, prefix: str, remaining) -> None:
        answer = router_pb2.ChatAnswer()
        text: list[str] = []
        calls: dict[int, common_pb2.ToolCall] = {}
        try:
            async for event in self._answer(turn, remaining):
                kind = event.WhichOneof("event")
                if kind == "delta":
                    text.append(event.delta)
                elif kind == "finish":
                    answer.finish.CopyFrom(event.finish)
                elif kind == "usage":
                    answer.usage.CopyFrom(event.usage)
                elif kind == "tool_call":
                    _gather_call(calls, event.tool_call)
                elif kind == "error":
                    item.error.CopyFrom(router_pb2.ChatBatchError(code=event.error.code, message=event.error.message))
                    return
        except _Unanswered as failure:
            error = failure.error
            field, _ = status_details(error)
            item.error.CopyFrom(
                router_pb2.ChatBatchError(
                    code=error.code().name, message=error.details() or "", field=f"{prefix}{field}" if field else ""
                )
            )
            return
        except Fault as fault:
            field = f"{prefix}{fault.field}" if fault.field else ""
            item.error.CopyFrom(router_pb2.ChatBatchError(code=fault.code, message=fault.message, field=field))
            return
        answer.text = "".join(text)
        answer.tool_calls.extend(calls.values())
        item.answer.CopyFrom(answer)

    async def GetToolStats(self, request, context):
        reply = router_pb2.GetToolStatsResponse()
        for name, counters in sorted((self._tools.counters if self._tools else {}).items()):
            reply.tools.add(name=name, calls=counters.calls, failures=counters.failures, latency_p50_ms=counters.p50())
        return reply

    async def GetHealthDetail(self, request, context):
        return await self._peers.health_detail()


def _add_usage(total: common_pb2.Usage, part: common_pb2.Usage) -> None:
    total.prompt_tokens += part.prompt_tokens
    total.completion_tokens += part.completion_tokens
    total.total_tokens += part.total_tokens


def _gather_call(calls: dict[int, common_pb2.ToolCall], delta: common_pb2.ToolCallDelta) -> None:
    """Streamed call pieces into whole calls: the first piece of a call
    names it, later ones append to its arguments."""
    call = calls.get(delta.index)
    if call is None:
        call = calls[delta.index] = common_pb2.ToolCall()
    if delta.id:
        call.id = delta.id
    if delta.name:
        call.name = delta.name
    call.arguments += delta.arguments


def _delta_text(event: llm_gateway_pb2.GenerateResponse) -> str | None:
    return event.delta if event.WhichOneof("event") == "delta" else None


async def _events(call) -> AsyncIterator:
    while (event := await call.read()) is not grpc.aio.EOF:
        yield event


class _Unanswered(Exception):
    """The model service failed before anything of the answer was sent."""

    def __init__(self, error: grpc.aio.AioRpcError):
        super().__init__(error.details())
        self.error = error


@dataclass
class TurnTiming:
    """Model provider time before a turn's first event, in ms, and the
    model that answers it."""

    provider_ms: float = 0.0
    model: str = ""


def _answer_key(generate: llm_gateway_pb2.GenerateRequest) -> str:
    """The response-cache key: everything the model is given, customer
    context included, so changed data is a different key."""
    return "answer:" + hashlib.blake2b(generate.SerializeToString(deterministic=True), digest_size=20).hexdigest()


class _ModelServiceUnavailable(grpc.aio.AioRpcError):
    def __init__(self) -> None:
        super().__init__(
            grpc.StatusCode.UNAVAILABLE,
            grpc.aio.Metadata(),
            grpc.aio.Metadata(),
            details="the model service (llm_gateway) is unavailable; try again shortly",
        )


class RouterComponent:
    def __init__(self, peers: MeshPeers, default_timeout_s: float, policy: FieldPolicy | None = None):
        self.peers = peers
        self.default_timeout_s = default_timeout_s
        self.policy = policy
        self._metrics = outbox_metrics(peers.outcomes)

    def register(self, server: grpc.aio.Server) -> Sequence[str]:
        router_pb2_grpc.add_RouterServiceServicer_to_server(
            RouterService(self.peers, self.default_timeout_s, self.policy), server
        )
        SNAPSHOTS.add(self._metrics)
        return [router_pb2.DESCRIPTOR.services_by_name["RouterService"].full_name]

    async def close(self) -> None:
        SNAPSHOTS.remove(self._metrics)
        await self.peers.close()
