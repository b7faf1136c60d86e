"""CacheService servicer: maps Get/Set/Delete/Stats/Prewarm onto the two
tiers and the prewarmer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
from tilores_x.v1 import cache_pb2, cache_pb2_grpc

from services.cache.cache_metrics import cache_metrics
from services.cache.prewarm import MAX_IDENTIFIERS, Prewarmer, read_identifiers
from services.cache.redis_tier import CONNECTED, DEGRADED
from services.cache.two_tier import TwoTierCache
from services.runtime.faults import FailedPrecondition, InvalidArgument
from services.runtime.metrics import SNAPSHOTS

log = logging.getLogger("cache")
DEFAULT_TENANT = "default"
_TENANT = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
REDIS_STATES = {
    CONNECTED: cache_pb2.REDIS_STATE_CONNECTED,
    DEGRADED: cache_pb2.REDIS_STATE_DEGRADED,
}


def _checked(request: Any) -> tuple[str, str, str]:
    if not request.namespace:
        raise InvalidArgument("namespace is required", field="namespace")
    if not request.key:
        raise InvalidArgument("key is required", field="key")
    return _tenant(request.tenant), request.namespace, request.key


_NAMESPACE = re.compile(r"^[a-z0-9_]{1,64}$")


def _tenant(tenant: str) -> str:
    if not tenant:
        return DEFAULT_TENANT
    if not _TENANT.match(tenant):
        raise InvalidArgument("tenant: letters, digits, '-', '_' and '.' only, at most 64", field="tenant")
    return tenant


class CacheService(cache_pb2_grpc.CacheServiceServicer):
    def __init__(
        self,
        cache: TwoTierCache,
        default_ttl_s: dict[str, float],
        fallback_ttl_s: float,
        prewarmer: Prewarmer | None = None,
    ):
        self.cache = cache
        self._default_ttl_s = default_ttl_s
        self._fallback_ttl_s = fallback_ttl_s
        self.prewarmer = prewarmer

    async def Get(self, request: cache_pb2.GetRequest, context: grpc.aio.ServicerContext) -> cache_pb2.GetResponse:
        value = await self.cache.get(*_checked(request))
        if value is None:
            return cache_pb2.GetResponse(found=False)
        return cache_pb2.GetResponse(found=True, value=value)

    async def Set(self, request: cache_pb2.SetRequest, context: grpc.aio.ServicerContext) -> cache_pb2.SetResponse:
        tenant, namespace, key = _checked(request)
        if request.HasField("ttl"):
            ttl_s = request.ttl.ToMilliseconds() / 1000
            if ttl_s <= 0:
                raise InvalidArgument("ttl must be positive", field="ttl")
        else:
            ttl_s = self._default_ttl_s.get(namespace, self._fallback_ttl_s)
        return cache_pb2.SetResponse(stored=await self.cache.set(tenant, namespace, key, request.value, ttl_s))

    async def Delete(
        self, request: cache_pb2.DeleteRequest, context: grpc.aio.ServicerContext
    ) -> cache_pb2.DeleteResponse:
        return cache_pb2.DeleteResponse(deleted=await self.cache.delete(*_checked(request)))

    async def Clear(
        self, request: cache_pb2.ClearRequest, context: grpc.aio.ServicerContext
    ) -> cache_pb2.ClearResponse:
        if request.namespace and not _NAMESPACE.match(request.namespace):
            raise InvalidArgument("namespace: lower-case letters, digits and '_' only, at most 64", field="namespace")
        remote, local = await self.cache.clear(_tenant(request.tenant), request.namespace)
        return cache_pb2.ClearResponse(redis_removed=remote, local_removed=local)

    async def Stats(
        self, request: cache_pb2.StatsRequest, context: grpc.aio.ServicerContext
    ) -> cache_pb2.StatsResponse:
        l2 = self.cache.l2
        reply = cache_pb2.StatsResponse(
            l1_entries=len(self.cache.l1),
            l1_bytes=self.cache.l1.size_bytes,
            promotions=self.cache.stats.promotions,
            redis_state=REDIS_STATES[l2.state] if l2 is not None else cache_pb2.REDIS_STATE_DISABLED,
            redis_error=l2.last_error if l2 is not None else "",
        )
        if l2 is not None:
            keys = await l2.size()
            if keys is not None:
                reply.l2_keys = keys
        for (tier, namespace), counters in sorted(self.cache.stats.tiers.items()):
            reply.tiers.add(
                tier=tier,
                namespace=namespace,
                hits=counters.hits,
                misses=counters.misses,
                errors=counters.errors,
                latency_p50_ms=counters.percentile(0.5),
                latency_p99_ms=counters.percentile(0.99),
            )
        return reply

    async def Prewarm(
        self, request: cache_pb2.PrewarmRequest, context: grpc.aio.ServicerContext
    ) -> cache_pb2.PrewarmResponse:
        if self.prewarmer is None:
            raise FailedPrecondition("prewarm needs TILORES_DATA_SERVICE_ADDR", field="identifiers")
        if not request.identifiers:
            raise InvalidArgument("identifiers must not be empty", field="identifiers")
        if len(request.identifiers) > MAX_IDENTIFIERS:
            raise InvalidArgument(
                f"at most {MAX_IDENTIFIERS} identifiers, got {len(request.identifiers)}", field="identifiers"
            )
        if not 0 <= request.concurrency <= 32:
            raise InvalidArgument("concurrency must be 0..32", field="concurrency")
        result = await self.prewarmer.prewarm(
            list(request.identifiers), _tenant(request.tenant), request.concurrency or 8
        )
        return cache_pb2.PrewarmResponse(
            customers_loaded=result.loaded,
            failures=[cache_pb2.PrewarmFailure(identifier=i, reason=r) for i, r in result.failures],
            elapsed_ms=result.elapsed_ms,
        )


class CacheComponent:
    def __init__(
        self,
        service: CacheService,
        prewarm_file: str = "",
        prewarm_every_s: float = 0.0,
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.service = service
        self._prewarm_file = prewarm_file
        self._prewarm_every_s = prewarm_every_s
        self._on_close = on_close
        self._task: asyncio.Task[None] | None = None
        self._metrics = cache_metrics(service.cache)

    def register(self, server: grpc.aio.Server) -> Sequence[str]:
        cache_pb2_grpc.add_CacheServiceServicer_to_server(self.service, server)
        SNAPSHOTS.add(self._metrics)
        if self._prewarm_file and self.service.prewarmer is not None:
            self._task = asyncio.ensure_future(self._prewarm_from_file())
        return [cache_pb2.DESCRIPTOR.services_by_name["CacheService"].full_name]

    async def _prewarm_from_file(self) -> None:
        """Load the configured customers now and again on every interval,
        re-reading the file, so an edited list takes effect."""
        while True:
            try:
                identifiers = read_identifiers(Path(self._prewarm_file).read_text())[:MAX_IDENTIFIERS]
                prewarmer = self.service.prewarmer
                if prewarmer is None:
                    return
                result = await prewarmer.prewarm(identifiers, DEFAULT_TENANT)
                log.info(
                    "prewarm.done",
                    extra={
                        "fields": {
                            "loaded": result.loaded,
                            "failed": len(result.failures),
                            "ms": round(result.elapsed_ms),
                        }
                    },
                )
            except OSError as error:
                log.warning("prewarm.file_unreadable", extra={"fields": {"error": type(error).__name__}})
            if self._prewarm_every_s <= 0:
                return
            await asyncio.sleep(self._prewarm_every_s)

    async def close(self) -> None:
        SNAPSHOTS.remove(self._metrics)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.service.cache.close()
        if self._on_close is not None:
            await self._on_close()
