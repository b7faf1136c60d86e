"""HealthReport: `GET /health/detailed`, the mesh as an SRE wants to see it
in one page: every service with its replicas (reachable and serving), the
providers' circuit breakers, the cache tiers, Tilores connectivity and the
optimizer's improvement cycle. The gateway probes its own peers; the router
reports the peers only it talks to (cache, tilores_data)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from tilores_x.v1 import cache_pb2, llm_gateway_pb2, optimizer_pb2, process_pb2, router_pb2

from gateway.plain_json import enum_word, plain_dict
from services.runtime.replicas import replica_statuses


class HealthReport:
    def __init__(self, router: Any, optimizer: Any, addrs: dict[str, str]) -> None:
        self._router = router
        self._optimizer = optimizer
        self._addrs = addrs  # the gateway's peers: name -> channel target

    async def _service(self, name: str) -> dict[str, Any]:
        replicas = await replica_statuses(self._addrs[name], name)
        return _service_health(replicas)

    async def _router_detail(self) -> router_pb2.GetHealthDetailResponse | None:
        try:
            detail: router_pb2.GetHealthDetailResponse = await self._router.GetHealthDetail(
                router_pb2.GetHealthDetailRequest(), timeout=3.0
            )
            return detail
        except grpc.aio.AioRpcError:
            return None

    async def _optimizer_status(self) -> dict[str, Any] | None:
        if self._optimizer is None:
            return None
        try:
            reply = await self._optimizer.GetCycleStatus(optimizer_pb2.GetCycleStatusRequest(), timeout=2.0)
        except grpc.aio.AioRpcError as error:
            return {"error": error.code().name}
        current = reply.cycles[0] if reply.cycles else None
        cycle = None
        if current is not None:
            cycle = {
                "id": current.id,
                "prompt": current.prompt,
                "category": current.category,
                "state": "running" if not current.outcome else "ended",
                "outcome": current.outcome or None,
            }
        quality = {
            group.key: {"mean": round(group.mean, 4), "turns": group.turns, "level": group.level}
            for group in reply.quality_by_category
        }
        return {"improvement_cycle": cycle, "quality_by_category": quality}

    async def report(self) -> tuple[int, dict[str, Any]]:
        names = sorted(self._addrs)
        own = await asyncio.gather(*(self._service(name) for name in names))
        detail, optimizer = await asyncio.gather(self._router_detail(), self._optimizer_status())
        services: dict[str, dict[str, Any]] = {
            "gateway": {"status": "SERVING", "replicas_total": None, "replicas_serving": None}
        }
        services.update(dict(zip(names, own, strict=True)))
        body: dict[str, Any] = {"services": services}
        if detail is not None:
            for peer in detail.peers:
                services.setdefault(
                    peer.name,
                    {
                        "status": peer.status,
                        "replicas_total": peer.replicas_total,
                        "replicas_serving": peer.replicas_serving,
                        "replicas": [_replica(r) for r in peer.replicas],
                    },
                )
            body["breakers"] = {
                p.provider: {
                    "configured": p.configured,
                    "state": enum_word(llm_gateway_pb2.BreakerState.DESCRIPTOR, p.breaker),
                    "retry_after_ms": p.retry_after_ms,
                    "changes": [plain_dict(c) for c in p.changes],
                }
                for p in detail.providers
            }
            body["cache"] = _cache(detail)
            body["tilores"] = _tilores(detail)
        body["optimizer"] = optimizer
        router_up = services.get("router", {}).get("replicas_serving")
        body["status"] = "unavailable" if not router_up else ("degraded" if _degraded(body, detail) else "ok")
        return (200 if router_up else 503), body


def _degraded(body: dict[str, Any], detail: router_pb2.GetHealthDetailResponse | None) -> bool:
    """A replica or a peer is not serving, Tilores is unreachable, Redis is
    away or a configured provider's breaker is not closed."""
    services = body["services"].values()
    return (
        detail is None
        or any(s["replicas_total"] is not None and s["replicas_serving"] < s["replicas_total"] for s in services)
        or any(s["status"] != "SERVING" for s in services)
        or not body.get("tilores", {}).get("reachable", False)
        or body.get("cache", {}).get("redis") == "degraded"
        or any(b["state"] != "closed" for b in body.get("breakers", {}).values() if b["configured"])
    )


def _tilores(detail: router_pb2.GetHealthDetailResponse) -> dict[str, Any]:
    if not detail.HasField("tilores_backend"):
        return {"reachable": False, "detail": "tilores_data did not answer"}
    backend = detail.tilores_backend
    return {
        "backend": backend.backend,
        "reachable": backend.reachable,
        "latency_ms": round(backend.latency_ms, 2),
        "detail": backend.detail or None,
    }


def _cache(detail: router_pb2.GetHealthDetailResponse) -> dict[str, Any]:
    if not detail.HasField("cache_stats"):
        return {"redis": enum_word(cache_pb2.RedisState.DESCRIPTOR, detail.cache_redis)}
    stats = detail.cache_stats
    tiers: dict[str, dict[str, Any]] = {}
    for tier in stats.tiers:
        entry = tiers.setdefault(tier.tier, {"hits": 0, "misses": 0, "errors": 0})
        entry["hits"] += tier.hits
        entry["misses"] += tier.misses
        entry["errors"] += tier.errors
    return {
        "redis": enum_word(cache_pb2.RedisState.DESCRIPTOR, stats.redis_state),
        "l1_entries": stats.l1_entries,
        "l2_keys": stats.l2_keys,
        "tiers": tiers,
    }


def _replica(status: process_pb2.ReplicaStatus) -> dict[str, Any]:
    """One replica as the report shows it: its figures since it started
    (rates come from two readings), null when it did not answer."""
    stats = plain_dict(status.stats) if status.HasField("stats") else None
    return {"address": status.address, "serving": status.serving, "stats": stats}


def _service_health(replicas: list[process_pb2.ReplicaStatus]) -> dict[str, Any]:
    serving = sum(r.serving for r in replicas)
    status = "SERVING" if serving else ("NOT_SERVING" if replicas else "UNREACHABLE")
    return {
        "status": status,
        "replicas_total": len(replicas),
        "replicas_serving": serving,
        "replicas": [_replica(r) for r in replicas],
    }
