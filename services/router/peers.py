"""MeshPeers: the router's long-lived channels to cache, tilores_data,
optimizer and llm_gateway, and the calls it makes on them."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import grpc
from google.protobuf import duration_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tilores_x.v1 import (
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

from services.router.outcome_outbox import OutcomeOutbox, RetryLater
from services.runtime.channels import open_channel
from services.runtime.customer_keys import CUSTOMER_NAMESPACE, credit_report_key, customer360_key, search_key
from services.runtime.lru import LruCache
from services.runtime.replicas import replica_health
from services.runtime.request_context import outgoing_metadata
from services.runtime.single_flight import SingleFlight

log = logging.getLogger("router.peers")

# Used only when the optimizer cannot be reached, so a turn still gets an
# honest instruction rather than none.
FALLBACK_TEMPLATE = (
    "You are a customer-data assistant. Use only the data below and say when a value is not on file; "
    "never invent customer data.\n\n{context}"
)
CACHE_TIMEOUT_S = 0.25
MODELS_TTL_S = 60.0
ANSWER_NAMESPACE = "llm_response"


# The optimizer is away or slow: keep the outcome and send it again.
RETRY_OUTCOME_ON = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}
)
OUTCOME_DRAIN_S = 5.0  # at shutdown, how long outcomes still waiting may take
RECONNECT_WAIT_S = 1.0  # how long a lookup waits for tilores_data to come back


class LookupUnavailable(Exception):
    """Customer data could not be read."""


class OutcomeRefused(Exception):
    """The optimizer refused an outcome for good (a bad request)."""


@dataclass(frozen=True)
class Prompt:
    name: str
    version: int
    template: str
    experiment_id: int = 0


class MeshPeers:
    def __init__(
        self, addrs: dict[str, str], customer_ttl_s: float, near_cache_ttl_s: float = 30.0, prompt_ttl_s: float = 5.0
    ):
        self._addrs = dict(addrs)
        self._channels = {name: open_channel(addr) for name, addr in addrs.items()}
        self.tilores = tilores_data_pb2_grpc.TiloresDataServiceStub(self._channels["tilores_data"])
        self.cache = cache_pb2_grpc.CacheServiceStub(self._channels["cache"])
        self.optimizer = optimizer_pb2_grpc.OptimizerServiceStub(self._channels["optimizer"])
        self.llm = llm_gateway_pb2_grpc.LlmGatewayServiceStub(self._channels["llm_gateway"])
        self._ttl = duration_pb2.Duration(seconds=int(customer_ttl_s))
        self._background: set[asyncio.Task] = set()
        # Parsed lookups kept briefly in this process: a hot customer costs
        # no hop and no decoding. Short-lived so changes show up quickly.
        self._near = LruCache(max_entries=2000, max_bytes=64 * 1024 * 1024)
        self._near_ttl_s = near_cache_ttl_s
        # The active prompt changes rarely; a few seconds of reuse saves a
        # hop on every turn, and a new version is live within that time.
        self._prompts = LruCache(max_entries=256, max_bytes=4 * 1024 * 1024)
        self._prompt_ttl_s = prompt_ttl_s
        self._flight: SingleFlight = SingleFlight()
        self.outcomes: OutcomeOutbox = OutcomeOutbox(self._send_outcome)
        self.tilores_calls = 0
        self.answers_replayed = 0
        self.answers_missed = 0

    async def find_entities(
        self, parameters: dict[str, str], timeout_s: float, tenant: str = ""
    ) -> list[common_pb2.Entity]:
        """Every entity matching the parameters, through the near-cache, the
        cache service and (once for all concurrent askers) tilores_data."""
        reply = await self._through_cache(
            tenant,
            search_key(parameters),
            tilores_data_pb2.SearchEntitiesResponse,
            lambda metadata, **call: self.tilores.SearchEntities(
                tilores_data_pb2.SearchEntitiesRequest(parameters=parameters), metadata=metadata, **call
            ),
            timeout_s,
        )
        return list(reply.entities)

    async def customer_view(
        self, entity_id: str, timeout_s: float, tenant: str = ""
    ) -> tuple[tilores_data_pb2.GetCustomer360Response, tilores_data_pb2.GetCreditReportResponse]:
        """The customer's 360 view and credit report, fetched together."""
        ref = tilores_data_pb2.CustomerRef(entity_id=entity_id)
        return await asyncio.gather(
            self._through_cache(
                tenant,
                customer360_key(entity_id),
                tilores_data_pb2.GetCustomer360Response,
                lambda metadata, **call: self.tilores.GetCustomer360(
                    tilores_data_pb2.GetCustomer360Request(customer=ref), metadata=metadata, **call
                ),
                timeout_s,
            ),
            self._through_cache(
                tenant,
                credit_report_key(entity_id),
                tilores_data_pb2.GetCreditReportResponse,
                lambda metadata, **call: self.tilores.GetCreditReport(
                    tilores_data_pb2.GetCreditReportRequest(customer=ref), metadata=metadata, **call
                ),
                timeout_s,
            ),
        )

    async def _through_cache(self, tenant: str, key: str, message_type, fetch, timeout_s: float):
        near = self._near.get((tenant, key))
        if near is not None:
            return near
        # N concurrent turns about one uncached customer: one cache read and
        # one tilores_data call between them.
        return await self._flight.run((tenant, key), lambda: self._load(tenant, key, message_type, fetch, timeout_s))

    async def _load(self, tenant: str, key: str, message_type, fetch, timeout_s: float):
        metadata = outgoing_metadata()
        payload = b""
        try:
            cached = await self.cache.Get(
                cache_pb2.GetRequest(tenant=tenant, namespace=CUSTOMER_NAMESPACE, key=key),
                timeout=min(CACHE_TIMEOUT_S, timeout_s),
                metadata=metadata,
            )
            if cached.found:
                payload = cached.value
        except grpc.aio.AioRpcError as error:
            log.warning("cache.get_failed", extra={"fields": {"code": error.code().name}})
        if payload:
            reply = message_type.FromString(payload)
        else:
            try:
                reply = await self._fetch(fetch, metadata, timeout_s)
            except grpc.aio.AioRpcError as error:
                log.warning("tilores.lookup_failed", extra={"fields": {"code": error.code().name}})
                raise LookupUnavailable(error.code().name) from None
            self.tilores_calls += 1
            payload = reply.SerializeToString()
            # Stored before the flight ends: a turn arriving just after it
            # finds the value in the cache instead of asking tilores_data again.
            await self._store(tenant, key, payload, metadata)
        if self._near_ttl_s > 0:
            self._near.set((tenant, key), reply, self._near_ttl_s, size=len(payload))
        return reply

    @staticmethod
    async def _fetch(fetch, metadata, timeout_s: float):
        """One tilores_data call. When it finds tilores_data unreachable
        (restarting, a pod being replaced) it waits up to RECONNECT_WAIT_S
        for the channel to connect again, so a short restart is not an
        answer that says the data is unavailable."""
        try:
            return await fetch(metadata, timeout=timeout_s)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE or timeout_s <= RECONNECT_WAIT_S:
                raise
        return await fetch(metadata, timeout=RECONNECT_WAIT_S, wait_for_ready=True)

    async def _store(self, tenant: str, key: str, value: bytes, metadata) -> None:
        try:
            await self.cache.Set(
                cache_pb2.SetRequest(tenant=tenant, namespace=CUSTOMER_NAMESPACE, key=key, value=value, ttl=self._ttl),
                timeout=1.0,
                metadata=metadata,
            )
        except grpc.aio.AioRpcError as error:
            log.warning("cache.set_failed", extra={"fields": {"code": error.code().name}})

    async def cached_answer(self, tenant: str, key: str) -> router_pb2.CachedAnswer | None:
        """An earlier identical answer from the LLM-response namespace."""
        try:
            cached = await self.cache.Get(
                cache_pb2.GetRequest(tenant=tenant, namespace=ANSWER_NAMESPACE, key=key),
                timeout=CACHE_TIMEOUT_S,
                metadata=outgoing_metadata(),
            )
        except grpc.aio.AioRpcError as error:
            log.warning("cache.get_failed", extra={"fields": {"code": error.code().name}})
            return None
        if not cached.found:
            self.answers_missed += 1
            return None
        self.answers_replayed += 1
        return router_pb2.CachedAnswer.FromString(cached.value)

    def record_outcome(self, outcome: optimizer_pb2.RecordOutcomeRequest) -> None:
        """Tell the optimizer how a turn went, off the hot path; kept and
        retried until it is taken (see OutcomeOutbox)."""
        self.outcomes.post(outcome)

    async def _send_outcome(self, outcome: optimizer_pb2.RecordOutcomeRequest) -> None:
        try:
            await self.optimizer.RecordOutcome(outcome, timeout=2.0, metadata=outgoing_metadata())
        except grpc.aio.AioRpcError as error:
            if error.code() in RETRY_OUTCOME_ON:
                raise RetryLater(error.code().name) from None
            raise OutcomeRefused(error.code().name) from None

    def keep_answer(self, tenant: str, key: str, answer: router_pb2.CachedAnswer) -> None:
        """Store an answer for replay, off the hot path (the namespace's TTL)."""

        async def store() -> None:
            try:
                await self.cache.Set(
                    cache_pb2.SetRequest(
                        tenant=tenant, namespace=ANSWER_NAMESPACE, key=key, value=answer.SerializeToString()
                    ),
                    timeout=1.0,
                )
            except grpc.aio.AioRpcError as error:
                log.warning("cache.set_failed", extra={"fields": {"code": error.code().name}})

        self._in_background(store())

    async def models(self) -> dict[str, llm_gateway_pb2.Model]:
        """The model catalog by id, read from llm_gateway and kept briefly."""
        cached = self._prompts.get(("models",))
        if cached is not None:
            return cached
        reply = await self.llm.ListModels(llm_gateway_pb2.ListModelsRequest(), timeout=2.0)
        models = {m.id: m for m in reply.models}
        self._prompts.set(("models",), models, MODELS_TTL_S, size=reply.ByteSize())
        return models

    async def prompt(self, name: str, conversation_id: str, timeout_s: float) -> Prompt:
        """The version this conversation gets. Reused for a few seconds: per
        prompt while no experiment runs, per conversation while one does
        (experiments assign by conversation)."""
        cached = self._prompts.get(("prompt", name)) or self._prompts.get(("prompt", name, conversation_id))
        if cached is not None:
            return cached
        try:
            response = await self.optimizer.GetPrompt(
                optimizer_pb2.GetPromptRequest(name=name, conversation_id=conversation_id),
                timeout=min(1.0, timeout_s),
                metadata=outgoing_metadata(),
            )
        except grpc.aio.AioRpcError as error:
            log.warning("optimizer.get_prompt_failed", extra={"fields": {"code": error.code().name}})
            return Prompt(name, 0, FALLBACK_TEMPLATE)
        prompt = Prompt(response.name, response.version, response.template, response.experiment_id)
        if self._prompt_ttl_s > 0:
            key = ("prompt", name, conversation_id) if prompt.experiment_id else ("prompt", name)
            self._prompts.set(key, prompt, self._prompt_ttl_s, size=len(prompt.template))
        return prompt

    async def health_detail(self) -> router_pb2.GetHealthDetailResponse:
        """Each peer's grpc.health.v1 status and replicas, the providers'
        breakers, the cache's Redis tier and tilores_data's backend."""

        async def check(name: str) -> router_pb2.PeerHealth:
            async def status() -> str:
                try:
                    reply = await health_pb2_grpc.HealthStub(self._channels[name]).Check(
                        health_pb2.HealthCheckRequest(), timeout=1.0
                    )
                except grpc.aio.AioRpcError as error:
                    return error.code().name
                return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

            state, (total, serving) = await asyncio.gather(status(), replica_health(self._addrs[name]))
            return router_pb2.PeerHealth(name=name, status=state, replicas_total=total, replicas_serving=serving)

        async def providers() -> list:
            try:
                reply = await self.llm.GetProviderStatus(llm_gateway_pb2.GetProviderStatusRequest(), timeout=1.0)
            except grpc.aio.AioRpcError:
                return []
            return list(reply.providers)

        async def cache_stats() -> cache_pb2.StatsResponse | None:
            try:
                return await self.cache.Stats(cache_pb2.StatsRequest(), timeout=1.0)
            except grpc.aio.AioRpcError:
                return None

        async def tilores_backend() -> tilores_data_pb2.CheckBackendResponse | None:
            try:
                return await self.tilores.CheckBackend(tilores_data_pb2.CheckBackendRequest(), timeout=2.0)
            except grpc.aio.AioRpcError:
                return None

        *peers, statuses, stats, backend = await asyncio.gather(
            *(check(n) for n in sorted(self._channels)), providers(), cache_stats(), tilores_backend()
        )
        return router_pb2.GetHealthDetailResponse(
            peers=peers,
            providers=statuses,
            cache_redis=stats.redis_state if stats is not None else cache_pb2.REDIS_STATE_UNSPECIFIED,
            tilores_backend=backend,
            cache_stats=stats,
        )

    def generate(self, request: llm_gateway_pb2.GenerateRequest, timeout_s: float | None):
        return self.llm.Generate(request, timeout=timeout_s, metadata=outgoing_metadata())

    def _in_background(self, coroutine) -> None:
        # Off the hot path; keep a reference so the task is not collected.
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        await self.outcomes.drain(OUTCOME_DRAIN_S)
        if self._background:
            await asyncio.wait(self._background, timeout=2.0)
        for channel in self._channels.values():
            await channel.close()
