"""HealthRoutes: what probes, load balancers and SREs ask the gateway.

GET /health           200 when the router answers its health check, with its peers and breakers
GET /health/ready     200 while this replica holds a working connection to a router (readiness)
GET /health/live      200 while the process runs (liveness)
GET /health/detailed  every service, its replicas, breakers, cache tiers, Tilores, optimizer
GET /metrics          Prometheus metrics of the gateway
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tilores_x.v1 import cache_pb2, llm_gateway_pb2, router_pb2, router_pb2_grpc

from gateway import metrics
from gateway.exchange import Exchange
from gateway.health_report import HealthReport
from gateway.plain_json import enum_word
from gateway.routes import PUBLIC, Route

# Short of the 1 s that Envoy's health check waits for an answer.
CONNECT_WAIT_S = 0.9


class HealthRoutes:
    def __init__(
        self,
        router: router_pb2_grpc.RouterServiceStub,
        health: health_pb2_grpc.HealthStub,
        report: HealthReport,
        router_channel: grpc.aio.Channel,
    ):
        self._router = router
        self._health = health
        self._report = report
        self._router_channel = router_channel

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/health", self.health, PUBLIC),
            Route("GET", "/health/ready", self.ready, PUBLIC),
            Route("GET", "/health/live", self.live, PUBLIC),
            Route("GET", "/health/detailed", self.detailed, PUBLIC),
            Route("GET", "/metrics", self.metrics, PUBLIC),
        ]

    async def health(self, exchange: Exchange) -> None:
        try:
            reply = await self._health.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
            router = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        except grpc.aio.AioRpcError as error:
            router = error.code().name
        status = 200 if router == "SERVING" else 503
        body: dict[str, Any] = {"status": "ok" if status == 200 else "unavailable", "router": router}
        if status == 200:
            try:
                detail = await self._router.GetHealthDetail(router_pb2.GetHealthDetailRequest(), timeout=2.0)
            except grpc.aio.AioRpcError:
                detail = None
            if detail is not None:
                body.update(_peers(detail))
        await exchange.json(status, body)

    async def ready(self, exchange: Exchange) -> None:
        """Whether to send this replica requests, answered from the router
        channel's own state, with no call: a check that asked a router
        would wait on whichever replica it picked, and one router host
        vanishing would fail every gateway's check at once (Envoy, finding
        no healthy gateway, would then send requests to the dead ones too).
        READY means a connection to some router works; keepalive pings
        drop one to a vanished host within seconds."""
        state = self._router_channel.get_state(try_to_connect=True)
        deadline = asyncio.get_running_loop().time() + CONNECT_WAIT_S
        # A channel not used yet (IDLE) is connecting now: give it a moment.
        while state in (grpc.ChannelConnectivity.IDLE, grpc.ChannelConnectivity.CONNECTING):
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._router_channel.wait_for_state_change(state), left)
            state = self._router_channel.get_state()
        if state == grpc.ChannelConnectivity.READY:
            await exchange.json(200, {"status": "ready"})
        else:
            await exchange.json(503, {"status": "unavailable", "router": state.name})

    async def live(self, exchange: Exchange) -> None:
        # Liveness: the process answers; peers do not matter here.
        await exchange.json(200, {"status": "ok"})

    async def detailed(self, exchange: Exchange) -> None:
        status, body = await self._report.report()
        await exchange.json(status, body)

    async def metrics(self, exchange: Exchange) -> None:
        body, content_type = metrics.exposition()
        await exchange.start(200, [(b"content-type", content_type)])
        await exchange.send(body)


def _peers(detail: router_pb2.GetHealthDetailResponse) -> dict[str, Any]:
    return {
        "peers": {peer.name: peer.status for peer in detail.peers},
        "providers": {
            p.provider: {
                "configured": p.configured,
                "breaker": enum_word(llm_gateway_pb2.BreakerState.DESCRIPTOR, p.breaker),
                "retry_after_ms": p.retry_after_ms,
                "failures_before_first_token": p.failures_before_first_token,
                "failures_mid_stream": p.failures_mid_stream,
                "successes": p.successes,
            }
            for p in detail.providers
        },
        # "degraded": answers come from the cache's in-process tier while Redis is down.
        "cache_redis": enum_word(cache_pb2.RedisState.DESCRIPTOR, detail.cache_redis),
    }
