"""The peers' health for GetHealthDetail: each peer's grpc.health.v1
status and replicas, the providers' breakers, the cache's Redis tier and
tilores_data's backend, relayed as the router's own response."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tilores_x.v1 import (
    cache_pb2,
    cache_pb2_grpc,
    llm_gateway_pb2,
    llm_gateway_pb2_grpc,
    router_pb2,
    tilores_data_pb2,
    tilores_data_pb2_grpc,
)

from services.runtime.replicas import replica_statuses


class PeerHealth:
    def __init__(
        self,
        channels: dict[str, grpc.aio.Channel],
        addrs: dict[str, str],
        llm: llm_gateway_pb2_grpc.LlmGatewayServiceStub,
        cache: cache_pb2_grpc.CacheServiceStub,
        tilores: tilores_data_pb2_grpc.TiloresDataServiceStub,
    ):
        self._channels = channels
        self._addrs = addrs
        self._llm, self._cache, self._tilores = llm, cache, tilores

    async def detail(self) -> router_pb2.GetHealthDetailResponse:
        """Each peer's grpc.health.v1 status and replicas, the providers'
        breakers, the cache's Redis tier and tilores_data's backend."""
        *peers, statuses, stats, backend = await asyncio.gather(
            *(self._peer(n) for n in sorted(self._channels)),
            self._answer(self._llm.GetProviderStatus(llm_gateway_pb2.GetProviderStatusRequest(), timeout=1.0)),
            self._answer(self._cache.Stats(cache_pb2.StatsRequest(), timeout=1.0)),
            self._answer(self._tilores.CheckBackend(tilores_data_pb2.CheckBackendRequest(), timeout=2.0)),
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
                return str(error.code().name)
            return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))

        state, replicas = await asyncio.gather(status(), replica_statuses(self._addrs[name], name))
        return router_pb2.PeerHealth(
            name=name,
            status=state,
            replicas_total=len(replicas),
            replicas_serving=sum(r.serving for r in replicas),
            replicas=replicas,
        )

    @staticmethod
    async def _answer(call: Awaitable[Any]) -> Any:
        try:
            return await call
        except grpc.aio.AioRpcError:
            return None
