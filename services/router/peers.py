"""MeshPeers: the router's long-lived channels to cache, tilores_data,
optimizer and llm_gateway, and the calls it makes on them."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import grpc
import orjson
from google.protobuf import duration_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tilores_x.v1 import (
    cache_pb2,
    cache_pb2_grpc,
    llm_gateway_pb2,
    llm_gateway_pb2_grpc,
    optimizer_pb2,
    optimizer_pb2_grpc,
    tilores_data_pb2,
    tilores_data_pb2_grpc,
)

from services.runtime.channels import open_channel
from services.runtime.customer_keys import CUSTOMER_NAMESPACE, search_key
from services.runtime.lru import LruCache
from services.runtime.request_context import outgoing_metadata

log = logging.getLogger("router.peers")

# Used only when the optimizer cannot be reached, so a turn still gets an
# honest instruction rather than none.
FALLBACK_TEMPLATE = (
    "You are a customer-data assistant. Use only the data below and say when a value is not on file; "
    "never invent customer data.\n\n{context}"
)
CACHE_TIMEOUT_S = 0.25


class LookupUnavailable(Exception):
    """Customer data could not be read."""


@dataclass(frozen=True)
class Prompt:
    name: str
    version: int
    template: str


class MeshPeers:
    def __init__(
        self, addrs: dict[str, str], customer_ttl_s: float, near_cache_ttl_s: float = 30.0, prompt_ttl_s: float = 5.0
    ):
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

    async def find_entities(self, parameters: dict[str, str], timeout_s: float) -> list[list[dict]]:
        """Records of every entity matching the parameters, through the cache."""
        key = search_key(parameters)
        near = self._near.get(key)
        if near is not None:
            return near
        metadata = outgoing_metadata()
        payload = b""
        try:
            cached = await self.cache.Get(
                cache_pb2.GetRequest(namespace=CUSTOMER_NAMESPACE, key=key),
                timeout=min(CACHE_TIMEOUT_S, timeout_s),
                metadata=metadata,
            )
            if cached.found:
                payload = cached.value
        except grpc.aio.AioRpcError as error:
            log.warning("cache.get_failed", extra={"fields": {"code": error.code().name}})
        if payload:
            response = tilores_data_pb2.SearchEntitiesResponse.FromString(payload)
        else:
            try:
                response = await self.tilores.SearchEntities(
                    tilores_data_pb2.SearchEntitiesRequest(parameters=parameters), timeout=timeout_s, metadata=metadata
                )
            except grpc.aio.AioRpcError as error:
                log.warning("tilores.search_failed", extra={"fields": {"code": error.code().name}})
                raise LookupUnavailable(error.code().name) from None
            self._in_background(self._store(key, response.SerializeToString(), metadata))
        entities = [[orjson.loads(record.data_json) for record in entity.records] for entity in response.entities]
        if self._near_ttl_s > 0:
            self._near.set(key, entities, self._near_ttl_s, size=len(payload) or response.ByteSize())
        return entities

    async def _store(self, key: str, value: bytes, metadata) -> None:
        try:
            await self.cache.Set(
                cache_pb2.SetRequest(namespace=CUSTOMER_NAMESPACE, key=key, value=value, ttl=self._ttl),
                timeout=1.0,
                metadata=metadata,
            )
        except grpc.aio.AioRpcError as error:
            log.warning("cache.set_failed", extra={"fields": {"code": error.code().name}})

    async def prompt(self, name: str, conversation_id: str, timeout_s: float) -> Prompt:
        cached = self._prompts.get(name)
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
        prompt = Prompt(response.name, response.version, response.template)
        if self._prompt_ttl_s > 0:
            self._prompts.set(name, prompt, self._prompt_ttl_s, size=len(prompt.template))
        return prompt

    async def health_detail(self) -> tuple[list[tuple[str, str]], list, int]:
        """Each peer's grpc.health.v1 status, the providers' breakers and the
        state of the cache's Redis tier."""

        async def check(name: str) -> tuple[str, str]:
            try:
                reply = await health_pb2_grpc.HealthStub(self._channels[name]).Check(
                    health_pb2.HealthCheckRequest(), timeout=1.0
                )
            except grpc.aio.AioRpcError as error:
                return name, error.code().name
            return name, health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

        async def providers() -> list:
            try:
                reply = await self.llm.GetProviderStatus(llm_gateway_pb2.GetProviderStatusRequest(), timeout=1.0)
            except grpc.aio.AioRpcError:
                return []
            return list(reply.providers)

        async def cache_redis() -> int:
            try:
                reply = await self.cache.Stats(cache_pb2.StatsRequest(), timeout=1.0)
            except grpc.aio.AioRpcError:
                return cache_pb2.REDIS_STATE_UNSPECIFIED
            return reply.redis_state

        *peers, statuses, redis_state = await asyncio.gather(
            *(check(n) for n in sorted(self._channels)), providers(), cache_redis()
        )
        return peers, statuses, redis_state

    def generate(self, request: llm_gateway_pb2.GenerateRequest, timeout_s: float | None):
        return self.llm.Generate(request, timeout=timeout_s, metadata=outgoing_metadata())

    def _in_background(self, coroutine) -> None:
        # Off the hot path; keep a reference so the task is not collected.
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        if self._background:
            await asyncio.wait(self._background, timeout=2.0)
        for channel in self._channels.values():
            await channel.close()
