"""The router's adapters to its peers: each takes and returns plain types
(`services/runtime/conversation.py`, the dataclasses below), turns a gRPC
failure into a domain error, and is the seam a test fakes. The request id
rides along on every call through the channels' client interceptor.

CustomerData   customers through the router's near-cache, the cache service
               and (once for all concurrent askers) tilores_data
Prompts        the prompt version a conversation gets, from the optimizer
ModelCatalog   the models llm_gateway serves: provider, fallbacks, window
AnswerCache    deterministic answers kept for replay, per tenant
Outcomes       how each turn went, to the optimizer, retried until taken
Generation     one model answer from llm_gateway, streamed as plain events
PeerHealth     the peers' health for GetHealthDetail
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import orjson
from google.protobuf import duration_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tilores_x.v1 import (
    audit_pb2_grpc,
    cache_pb2,
    cache_pb2_grpc,
    common_pb2,
    llm_gateway_pb2,
    llm_gateway_pb2_grpc,
    optimizer_pb2,
    optimizer_pb2_grpc,
    router_pb2,
    tilores_data_pb2,
    tilores_data_pb2_grpc,
)

from services.router.lookup_limit import LookupLimit, LookupLimitReached
from services.runtime.access import PRINCIPAL
from services.runtime.access_ledger import AccessLedger
from services.runtime.channels import open_channel
from services.runtime.conversation import Fact, Finish, Message, ResponseFormat, Tool, ToolChoice, Usage
from services.runtime.conversation_wire import (
    FINISH_ENUM,
    GROUNDING_ENUM,
    fact_proto,
    message_proto,
    response_format_proto,
    stream_event_of,
    tool_choice_proto,
    tool_proto,
    usage_proto,
)
from services.runtime.customer_keys import CUSTOMER_NAMESPACE, credit_report_key, customer360_key, search_key
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
from services.runtime.limits import MAX_GRPC_MESSAGE_BYTES
from services.runtime.lru import LruCache
from services.runtime.outbox import Outbox, RetryLater
from services.runtime.replicas import replica_statuses
from services.runtime.request_context import answering_model, provider_ttft_ms
from services.runtime.rich_status import has_rich_status, status_details
from services.runtime.single_flight import SingleFlight
from services.runtime.spool import Spool

log = logging.getLogger("router.clients")

CACHE_TIMEOUT_S = 0.25
RECONNECT_WAIT_S = 1.0  # how long a lookup waits for tilores_data to come back
MODELS_TTL_S = 60.0
ANSWER_NAMESPACE = "llm_response"
OUTCOME_DRAIN_S = 5.0  # at shutdown, how long outcomes still waiting may take
# Used only when the optimizer cannot be reached, so a turn still gets an
# honest instruction rather than none.
FALLBACK_TEMPLATE = (
    "You are a customer-data assistant. Use only the data below and say when a value is not on file; "
    "never invent customer data.\n\n{context}"
)
# 360 sections -> the fact topics answers are organised by.
TOPIC_OF_SECTION = {"enrollment": "status", "transactions": "billing"}


class CustomerDataUnavailable(Exception):
    """Customer data could not be read (tilores_data or the backend is away)."""


class UnknownCategory(Exception):
    """tilores_data knows no field category of that name."""


class NoSuchCustomer(Exception):
    """No customer has that entity id."""


class NoSuchPrompt(Exception):
    """The registry has no prompt of that name, or no such version of it."""


# -- customer data ---------------------------------------------------------


@dataclass(frozen=True)
class CustomerMatch:
    """One customer a search found. The summary reads the records only
    when asked (a single match never needs it)."""

    entity_id: str
    records_json: tuple[str, ...]

    def summary(self) -> tuple[str, str]:
        """`Name, client id …, email …` and the record it is read from."""
        records = [orjson.loads(r) for r in self.records_json]
        contact = next((r for r in records if r.get("FIRST_NAME")), records[0] if records else {})
        name = " ".join(str(contact[k]) for k in ("FIRST_NAME", "LAST_NAME") if contact.get(k))
        parts = [name or "name not on file"]
        for label, key in (("client id", "CLIENT_ID"), ("email", "EMAIL")):
            value = next((r[key] for r in records if r.get(key)), "")
            if value:
                parts.append(f"{label} {value}")
        return ", ".join(parts), str(contact.get("id", ""))


@dataclass(frozen=True)
class CustomerProfile:
    """A customer's 360 view and credit report as facts: per section, each
    fact with its topic and record; the credit report as the data tools
    give it; the advice the report supports, each citing its report."""

    entity_id: str
    customer_name: str
    sections: dict[str, tuple[Fact, ...]]
    credit: dict
    advice: tuple[Fact, ...] = ()

    def facts(self) -> list[Fact]:
        return [fact for facts in self.sections.values() for fact in facts] + list(self.advice)


class CustomerData:
    def __init__(
        self,
        tilores: tilores_data_pb2_grpc.TiloresDataServiceStub,
        cache: cache_pb2_grpc.CacheServiceStub,
        customer_ttl_s: float,
        near_cache_ttl_s: float,
    ):
        self._tilores = tilores
        self._cache = cache
        self._ttl = duration_pb2.Duration(seconds=int(customer_ttl_s))
        # Parsed lookups kept briefly in this process: a hot customer costs
        # no hop and no decoding. Short-lived so changes show up quickly.
        self._near = LruCache(max_entries=2000, max_bytes=64 * 1024 * 1024)
        self._near_ttl_s = near_cache_ttl_s
        self._flight: SingleFlight = SingleFlight()
        self.tilores_calls = 0

    async def find(self, parameters: dict[str, str], tenant: str, timeout_s: float) -> list[CustomerMatch]:
        """Every customer matching the search parameters."""
        reply = await self._through_cache(
            tenant,
            search_key(parameters),
            tilores_data_pb2.SearchEntitiesResponse,
            lambda **call: self._tilores.SearchEntities(
                tilores_data_pb2.SearchEntitiesRequest(parameters=parameters), **call
            ),
            timeout_s,
        )
        return [CustomerMatch(e.id, tuple(r.data_json for r in e.records)) for e in reply.entities]

    async def profile(self, entity_id: str, tenant: str, timeout_s: float) -> CustomerProfile:
        """The customer's 360 view and credit report, fetched together; a
        hot customer's profile is kept as facts, not decoded each turn."""
        key = ("profile", tenant, entity_id)
        kept = self._near.get(key) if self._near_ttl_s > 0 else None
        if kept is not None:
            return kept
        ref = tilores_data_pb2.CustomerRef(entity_id=entity_id)
        view, credit = await asyncio.gather(
            self._through_cache(
                tenant,
                customer360_key(entity_id),
                tilores_data_pb2.GetCustomer360Response,
                lambda **call: self._tilores.GetCustomer360(
                    tilores_data_pb2.GetCustomer360Request(customer=ref), **call
                ),
                timeout_s,
            ),
            self._through_cache(
                tenant,
                credit_report_key(entity_id),
                tilores_data_pb2.GetCreditReportResponse,
                lambda **call: self._tilores.GetCreditReport(
                    tilores_data_pb2.GetCreditReportRequest(customer=ref), **call
                ),
                timeout_s,
            ),
        )
        profile = profile_of(view, credit)
        if self._near_ttl_s > 0:
            self._near.set(key, profile, self._near_ttl_s, size=view.ByteSize() + credit.ByteSize())
        return profile

    async def relationships(self, entity_id: str, timeout_s: float) -> list[dict]:
        """How the customer's records are linked: pairs and the rule that joined them."""
        request = tilores_data_pb2.GetRelationshipsRequest(customer=tilores_data_pb2.CustomerRef(entity_id=entity_id))
        reply = await self._call(self._tilores.GetRelationships(request, timeout=timeout_s))
        return [
            {"record_a": r.record_a.id, "source_a": r.record_a.source, "record_b": r.record_b.id,
             "source_b": r.record_b.source, "rule": r.rule_id, "reason": r.reason}
            for r in reply.relationships
        ]  # fmt: skip

    async def fields(self, category: str, timeout_s: float) -> dict[str, list[str]]:
        """The fields Tilores holds, by category."""
        reply = await self._call(
            self._tilores.ListFields(tilores_data_pb2.ListFieldsRequest(category=category), timeout=timeout_s)
        )
        by_category: dict[str, list[str]] = {}
        for f in reply.fields:
            by_category.setdefault(f.category, []).append(f.name)
        return by_category

    async def field_infos(self, category: str, timeout_s: float) -> list:
        """Every field of a category with its share of customers (the
        tilores_data messages, passed on as they are)."""
        try:
            reply = await self._tilores.ListFields(
                tilores_data_pb2.ListFieldsRequest(category=category), timeout=timeout_s
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise UnknownCategory(error.details()) from None
            raise CustomerDataUnavailable(error.code().name) from None
        return list(reply.fields)

    @staticmethod
    async def _call(call):
        try:
            return await call
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                raise NoSuchCustomer(error.details()) from None
            raise CustomerDataUnavailable(error.code().name) from None

    async def _through_cache(self, tenant: str, key: str, message_type, fetch, timeout_s: float):
        near = self._near.get((tenant, key))
        if near is not None:
            return near
        # N concurrent turns about one uncached customer: one cache read and
        # one tilores_data call between them.
        return await self._flight.run((tenant, key), lambda: self._load(tenant, key, message_type, fetch, timeout_s))

    async def _load(self, tenant: str, key: str, message_type, fetch, timeout_s: float):
        payload = b""
        try:
            cached = await self._cache.Get(
                cache_pb2.GetRequest(tenant=tenant, namespace=CUSTOMER_NAMESPACE, key=key),
                timeout=min(CACHE_TIMEOUT_S, timeout_s),
            )
            if cached.found:
                payload = cached.value
        except grpc.aio.AioRpcError as error:
            log.warning("cache.get_failed", extra={"fields": {"code": error.code().name}})
        if payload:
            reply = message_type.FromString(payload)
        else:
            try:
                reply = await _fetch_waiting_for_reconnect(fetch, timeout_s)
            except grpc.aio.AioRpcError as error:
                log.warning("tilores.lookup_failed", extra={"fields": {"code": error.code().name}})
                if error.code() == grpc.StatusCode.NOT_FOUND:
                    raise NoSuchCustomer(error.details()) from None
                raise CustomerDataUnavailable(error.code().name) from None
            self.tilores_calls += 1
            payload = reply.SerializeToString()
            # Stored before the flight ends: a turn arriving just after it
            # finds the value in the cache instead of asking tilores_data again.
            await self._store(tenant, key, payload)
        if self._near_ttl_s > 0:
            self._near.set((tenant, key), reply, self._near_ttl_s, size=len(payload))
        return reply

    async def _store(self, tenant: str, key: str, value: bytes) -> None:
        try:
            await self._cache.Set(
                cache_pb2.SetRequest(tenant=tenant, namespace=CUSTOMER_NAMESPACE, key=key, value=value, ttl=self._ttl),
                timeout=1.0,
            )
        except grpc.aio.AioRpcError as error:
            log.warning("cache.set_failed", extra={"fields": {"code": error.code().name}})


async def _fetch_waiting_for_reconnect(fetch, timeout_s: float):
    """One tilores_data call. When it finds tilores_data unreachable
    (restarting, a pod being replaced) it waits up to RECONNECT_WAIT_S for
    the channel to connect again, so a short restart is not an answer that
    says the data is unavailable."""
    try:
        return await fetch(timeout=timeout_s)
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.UNAVAILABLE or timeout_s <= RECONNECT_WAIT_S:
            raise
    return await fetch(timeout=RECONNECT_WAIT_S, wait_for_ready=True)


def profile_of(
    view: tilores_data_pb2.GetCustomer360Response, credit: tilores_data_pb2.GetCreditReportResponse
) -> CustomerProfile:
    """The two answers of tilores_data as one plain profile."""
    sections = {
        section.name: tuple(
            Fact(TOPIC_OF_SECTION.get(section.name, section.name), f.label, f.value, f.record_id, f.pii_kind)
            for f in section.facts
        )
        for section in view.sections
    }
    # Advice is read from one bureau's report: cite that report.
    advice = tuple(
        Fact("credit", "Credit advice", text, next((b.record_id for b in credit.bureaus if b.bureau in text), ""))
        for text in credit.assessment.recommendations
    )
    return CustomerProfile(view.entity_id, view.customer_name, sections, _credit(credit), advice)


def _credit(credit: tilores_data_pb2.GetCreditReportResponse) -> dict:
    status = tilores_data_pb2.CreditStatus.Name(credit.assessment.status).removeprefix("CREDIT_STATUS_").lower()
    return {
        "entity_id": credit.entity_id,
        "bureaus": [
            {
                "bureau": b.bureau,
                "scores": [{"value": s.value, "date": s.date, "record": s.record_id} for s in b.scores],
                "utilization_percent": b.utilization_percent if b.HasField("utilization_percent") else None,
                "late_payments_30_60_90": [b.late_30_days, b.late_60_days, b.late_90_days],
                "open_accounts": b.open_accounts,
                "closed_accounts": b.closed_accounts,
                "inquiries": b.inquiries,
            }
            for b in credit.bureaus
        ],
        "assessment": {
            "status": status,
            "score": credit.assessment.score if status == "scored" else None,
            "band": credit.assessment.band or None,
            "risk_level": credit.assessment.risk_level or None,
            "recommendations": list(credit.assessment.recommendations),
        },
    }


# -- prompts and models ----------------------------------------------------


@dataclass(frozen=True)
class Prompt:
    name: str
    version: int
    template: str
    experiment_id: int = 0


class Prompts:
    def __init__(self, optimizer: optimizer_pb2_grpc.OptimizerServiceStub, ttl_s: float):
        self._optimizer = optimizer
        # The active prompt changes rarely; a few seconds of reuse saves a
        # hop on every turn, and a new version is live within that time.
        self._kept = LruCache(max_entries=256, max_bytes=4 * 1024 * 1024)
        self._ttl_s = ttl_s

    async def prompt(self, name: str, conversation_id: str, timeout_s: float, version: int = 0) -> Prompt:
        """The version this conversation gets, or the `version` pinned.
        Reused for a few seconds: per prompt while no experiment runs, per
        conversation while one does (experiments assign by conversation).
        The optimizer away: a fallback instruction, never none."""
        if version:
            kept = self._kept.get((name, "version", version))
        else:
            kept = self._kept.get((name,)) or self._kept.get((name, conversation_id))
        if kept is not None:
            return kept
        try:
            response = await self._optimizer.GetPrompt(
                optimizer_pb2.GetPromptRequest(name=name, conversation_id=conversation_id, version=version),
                timeout=min(1.0, timeout_s),
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                raise NoSuchPrompt(error.details()) from None
            log.warning("optimizer.get_prompt_failed", extra={"fields": {"code": error.code().name}})
            return Prompt(name, 0, FALLBACK_TEMPLATE)
        prompt = Prompt(response.name, response.version, response.template, response.experiment_id)
        if self._ttl_s > 0:
            key = (name, conversation_id) if prompt.experiment_id else (name,)
            key = (name, "version", version) if version else key
            self._kept.set(key, prompt, self._ttl_s, size=len(prompt.template))
        return prompt


@dataclass(frozen=True)
class ModelInfo:
    id: str
    provider: str
    context_window: int
    supports_tools: bool
    fallbacks: tuple[str, ...]


class ModelCatalog:
    def __init__(self, llm: llm_gateway_pb2_grpc.LlmGatewayServiceStub):
        self._llm = llm
        self._models: dict[str, ModelInfo] | None = None
        self._read_at = 0.0

    async def models(self) -> dict[str, ModelInfo]:
        """The catalog by id, read from llm_gateway and kept a minute; empty
        while llm_gateway cannot say."""
        now = asyncio.get_running_loop().time()
        if self._models is not None and now - self._read_at < MODELS_TTL_S:
            return self._models
        try:
            reply = await self._llm.ListModels(llm_gateway_pb2.ListModelsRequest(), timeout=2.0)
        except grpc.aio.AioRpcError:
            return self._models or {}
        self._models = {
            m.id: ModelInfo(m.id, m.provider, m.context_window, m.supports_tools, tuple(m.fallbacks))
            for m in reply.models
        }
        self._read_at = now
        return self._models


# -- generation ------------------------------------------------------------


@dataclass(frozen=True)
class Grounding:
    """The customer data behind the system prompt, for the model service
    (the offline model answers from these facts alone)."""

    status: str
    query: str = ""
    customer_name: str = ""
    text: str = ""
    facts: tuple[Fact, ...] = ()
    focus: tuple[str, ...] = ()  # topics the conversation's category points at


@dataclass
class GenerationCall:
    """What one model call is given: the model, the whole conversation
    (system prompt first), the sampling options and the tools on offer."""

    model: str
    messages: list[Message]
    grounding: Grounding
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    response_format: ResponseFormat | None = None
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None
    tools_optional: bool = False
    no_fallback: bool = False


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


class GenerationStream:
    """One model call's events (a str per text delta, then ToolCallDelta,
    Finish, Usage, StreamError) and what its initial metadata said."""

    def __init__(self, call):
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


class Generation:
    def __init__(self, llm: llm_gateway_pb2_grpc.LlmGatewayServiceStub):
        self._llm = llm

    def open(self, call: GenerationCall, timeout_s: float) -> GenerationStream:
        return GenerationStream(self._llm.Generate(generate_request(call), timeout=timeout_s))


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


# -- answers kept for replay, and outcomes -----------------------------------


@dataclass
class KeptAnswer:
    deltas: list[str] = field(default_factory=list)
    finish: Finish | None = None
    usage: Usage | None = None


class AnswerCache:
    def __init__(self, cache: cache_pb2_grpc.CacheServiceStub):
        self._cache = cache
        self._background: set[asyncio.Task] = set()

    @staticmethod
    def key(call: GenerationCall) -> str:
        """Everything the model is given, customer context included, so
        changed data is a different key."""
        raw = generate_request(call).SerializeToString(deterministic=True)
        return "answer:" + hashlib.blake2b(raw, digest_size=20).hexdigest()

    async def get(self, tenant: str, key: str) -> KeptAnswer | None:
        try:
            cached = await self._cache.Get(
                cache_pb2.GetRequest(tenant=tenant, namespace=ANSWER_NAMESPACE, key=key), timeout=CACHE_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as error:
            log.warning("cache.get_failed", extra={"fields": {"code": error.code().name}})
            cached = None
        if cached is None or not cached.found:
            return None
        kept = router_pb2.CachedAnswer.FromString(cached.value)
        finish = stream_event_of(router_pb2.ChatResponse(finish=kept.finish)) if kept.HasField("finish") else None
        usage = Usage(kept.usage.prompt_tokens, kept.usage.completion_tokens)
        return KeptAnswer(list(kept.deltas), finish, usage)

    def keep(self, tenant: str, key: str, answer: KeptAnswer) -> None:
        """Store an answer for replay, off the hot path (the namespace's TTL)."""
        kept = router_pb2.CachedAnswer(deltas=answer.deltas)
        if answer.finish is not None:
            kept.finish.CopyFrom(
                common_pb2.Finish(
                    reason=FINISH_ENUM[answer.finish.reason], model=answer.finish.model, provider=answer.finish.provider
                )
            )
        if answer.usage is not None:
            kept.usage.CopyFrom(usage_proto(answer.usage))

        async def store() -> None:
            try:
                await self._cache.Set(
                    cache_pb2.SetRequest(
                        tenant=tenant, namespace=ANSWER_NAMESPACE, key=key, value=kept.SerializeToString()
                    ),
                    timeout=1.0,
                )
            except grpc.aio.AioRpcError as error:
                log.warning("cache.set_failed", extra={"fields": {"code": error.code().name}})

        task = asyncio.ensure_future(store())
        self._background.add(task)  # held until done, so it is not collected
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        if self._background:
            await asyncio.wait(self._background, timeout=2.0)


@dataclass(frozen=True)
class Outcome:
    """How one turn went, for the optimizer to score and learn from."""

    completion_id: str
    prompt: Prompt
    model: str
    latency_ms: float
    tokens: int
    error: bool
    question: str
    answer: str
    grounding: Grounding
    evaluation_run_id: str = ""
    mode: str = ""  # mode and category, e.g. "client/billing"


# Only a request the optimizer can never take is given up; anything else
# (away, slow, a connection cut by its death mid-call) is sent again.
REFUSE_OUTCOMES_ON = frozenset({grpc.StatusCode.INVALID_ARGUMENT})


class OutcomeRefused(Exception):
    """The optimizer refused an outcome for good (a bad request)."""


# Outcomes one RecordOutcomes call carries at most (the optimizer takes 500),
# and bytes (a quarter of what a gRPC message may be).
OUTCOMES_PER_CALL = 100
OUTCOME_BYTES_PER_CALL = MAX_GRPC_MESSAGE_BYTES // 4


class Outcomes:
    def __init__(self, optimizer: optimizer_pb2_grpc.OptimizerServiceStub, spool: Spool | None = None):
        """With a `spool`, each outcome is on disk from its turn's end until
        the optimizer has taken it, and what a killed router left is sent
        again when it starts (the optimizer records a completion id once)."""
        self._optimizer = optimizer
        # One call for whatever piled up while the last was on its way: a
        # call per turn when traffic is light, far fewer under load.
        self.outbox: Outbox = Outbox(
            self._send,
            name="outcomes",
            senders=2,
            batch=OUTCOMES_PER_CALL,
            spool=spool,
            encode=optimizer_pb2.RecordOutcomeRequest.SerializeToString,
            decode=optimizer_pb2.RecordOutcomeRequest.FromString,
            max_batch_bytes=OUTCOME_BYTES_PER_CALL,
        )
        self.outbox.recover()

    def post(self, outcome: Outcome) -> None:
        """Off the hot path; kept (on disk with a spool) and retried until
        the optimizer takes it."""
        self.outbox.post(_outcome_message(outcome))

    async def _send(self, outcomes: list[optimizer_pb2.RecordOutcomeRequest]) -> None:
        request = optimizer_pb2.RecordOutcomesRequest(outcomes=outcomes)
        try:
            reply = await self._optimizer.RecordOutcomes(request, timeout=2.0)
        except grpc.aio.AioRpcError as error:
            if error.code() in REFUSE_OUTCOMES_ON:
                raise OutcomeRefused(error.code().name) from None
            raise RetryLater(error.code().name) from None
        for refused in reply.refused:
            log.warning("outcome.refused", extra={"fields": {"field": refused.field, "reason": refused.message}})


def _outcome_message(outcome: Outcome) -> optimizer_pb2.RecordOutcomeRequest:
    return optimizer_pb2.RecordOutcomeRequest(
        completion_id=outcome.completion_id,
        prompt=outcome.prompt.name,
        version=outcome.prompt.version,
        experiment_id=outcome.prompt.experiment_id,
        model=outcome.model,
        latency_ms=outcome.latency_ms,
        tokens=outcome.tokens,
        error=outcome.error,
        question=outcome.question,
        answer=outcome.answer,
        grounding=grounding_proto(outcome.grounding),
        evaluation_run_id=outcome.evaluation_run_id,
        mode=outcome.mode,
    )


# -- health ----------------------------------------------------------------


class PeerHealth:
    def __init__(self, channels: dict[str, grpc.aio.Channel], addrs: dict[str, str], clients: RouterClients):
        self._channels = channels
        self._addrs = addrs
        self._clients = clients

    async def detail(self) -> router_pb2.GetHealthDetailResponse:
        """Each peer's grpc.health.v1 status and replicas, the providers'
        breakers, the cache's Redis tier and tilores_data's backend."""
        *peers, statuses, stats, backend = await asyncio.gather(
            *(self._peer(n) for n in sorted(self._channels)),
            self._answer(self._clients.llm.GetProviderStatus(llm_gateway_pb2.GetProviderStatusRequest(), timeout=1.0)),
            self._answer(self._clients.cache.Stats(cache_pb2.StatsRequest(), timeout=1.0)),
            self._answer(self._clients.tilores.CheckBackend(tilores_data_pb2.CheckBackendRequest(), timeout=2.0)),
        )
        return router_pb2.GetHealthDetailResponse(
            peers=peers,
            providers=list(statuses.providers) if statuses is not None else [],
            cache_redis=stats.redis_state if stats is not None else cache_pb2.REDIS_STATE_UNSPECIFIED,
            tilores_backend=backend,
            cache_stats=stats,
        )

    async def _peer(self, name: str) -> router_pb2.PeerHealth:
        async def status() -> str:
            try:
                reply = await health_pb2_grpc.HealthStub(self._channels[name]).Check(
                    health_pb2.HealthCheckRequest(), timeout=1.0
                )
            except grpc.aio.AioRpcError as error:
                return error.code().name
            return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

        state, replicas = await asyncio.gather(status(), replica_statuses(self._addrs[name], name))
        return router_pb2.PeerHealth(
            name=name,
            status=state,
            replicas_total=len(replicas),
            replicas_serving=sum(r.serving for r in replicas),
            replicas=replicas,
        )

    @staticmethod
    async def _answer(call):
        try:
            return await call
        except grpc.aio.AioRpcError:
            return None


# -- looking at customers ---------------------------------------------------


class CustomerAccessGate:
    """Before a turn or a data tool shows customers: the principal's limit
    of distinct customers an hour (checked before their data is read),
    then the access log (written before the answer goes out)."""

    def __init__(self, limit: LookupLimit | None, ledger: AccessLedger | None):
        self._limit = limit
        self._ledger = ledger

    async def admit(self, entity_ids: list[str]) -> None:
        """Raises LookupLimitReached when these would be too many new customers."""
        if self._limit is None:
            return
        principal = PRINCIPAL.get()
        who = principal.who if principal is not None else "anonymous"
        try:
            await self._limit.admit(who, entity_ids, principal.customers_per_hour if principal is not None else 0)
        except LookupLimitReached:
            self.record(entity_ids, "refused.lookup_limit", set())  # attempts are on record too
            raise

    def record(self, entity_ids: list[str], action: str, field_kinds: set[str]) -> None:
        if self._ledger is not None:
            self._ledger.record(entity_ids, action, field_kinds)

    async def close(self) -> None:
        if self._ledger is not None:
            await self._ledger.close()
        if self._limit is not None:
            await self._limit.close()


# -- all of them -----------------------------------------------------------


class RouterClients:
    """One long-lived channel per peer and the adapters over them."""

    def __init__(
        self,
        addrs: dict[str, str],
        customer_ttl_s: float,
        near_cache_ttl_s: float = 30.0,
        prompt_ttl_s: float = 5.0,
        lookup_limit: LookupLimit | None = None,
        outcome_spool: Spool | None = None,
        access_spool: Spool | None = None,
    ):
        """`addrs` names every peer; without `audit` no access is recorded
        (a router in a test), without `lookup_limit` none is limited; with
        the spools undelivered outcomes and access records are kept on disk."""
        self._channels = {name: open_channel(addr, name) for name, addr in addrs.items()}
        self.tilores = tilores_data_pb2_grpc.TiloresDataServiceStub(self._channels["tilores_data"])
        self.cache = cache_pb2_grpc.CacheServiceStub(self._channels["cache"])
        self.llm = llm_gateway_pb2_grpc.LlmGatewayServiceStub(self._channels["llm_gateway"])
        optimizer = optimizer_pb2_grpc.OptimizerServiceStub(self._channels["optimizer"])
        self.customers = CustomerData(self.tilores, self.cache, customer_ttl_s, near_cache_ttl_s)
        self.prompts = Prompts(optimizer, prompt_ttl_s)
        self.models = ModelCatalog(self.llm)
        self.answers = AnswerCache(self.cache)
        self.outcomes = Outcomes(optimizer, outcome_spool)
        self.generation = Generation(self.llm)
        self.health = PeerHealth(self._channels, dict(addrs), self)
        audit = audit_pb2_grpc.AuditServiceStub(self._channels["audit"]) if "audit" in addrs else None
        ledger = AccessLedger(audit, spool=access_spool) if audit is not None else None
        self.access = CustomerAccessGate(lookup_limit, ledger)

    async def close(self) -> None:
        await self.outcomes.outbox.drain(OUTCOME_DRAIN_S)
        await self.access.close()
        await self.answers.close()
        for channel in self._channels.values():
            await channel.close()
