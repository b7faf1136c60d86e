"""Replica health: every process behind a peer address, whether it reports
SERVING, and its own figures (tilores_x.v1.ProcessService). For health
pages, not for the hot path: every check opens a short-lived channel to
each address."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tilores_x.v1 import process_pb2, process_pb2_grpc

from services.runtime.identity import member_host, mesh_tls


async def resolve_replicas(target: str) -> list[str]:
    """The `host:port` of every replica a channel target reaches:
    `ipv4:a:1,b:2` lists them, `dns:///name:port` and `host:port` resolve
    to one per address (a headless Service yields one per ready pod)."""
    if target.startswith(("ipv4:", "ipv6:")):
        return target.split(":", 1)[1].split(",")
    host, _, port = target.removeprefix("dns:///").rpartition(":")
    host = host.strip("[]")
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except OSError:
        return []
    addresses = sorted({str(info[4][0]) for info in infos})
    return [f"[{a}]:{port}" if ":" in a else f"{a}:{port}" for a in addresses]


async def _status(address: str, peer: str, timeout_s: float) -> process_pb2.ReplicaStatus:
    tls = mesh_tls()
    name = (("grpc.ssl_target_name_override", member_host("service", peer)),)
    channel = (
        grpc.aio.secure_channel(address, tls.channel_credentials(), options=name)
        if tls is not None
        else grpc.aio.insecure_channel(address)
    )
    status = process_pb2.ReplicaStatus(address=address)
    async with channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="readiness"), timeout=timeout_s
            )
        except grpc.aio.AioRpcError:
            return status
        status.serving = reply.status == health_pb2.HealthCheckResponse.SERVING
        # An older replica, or one busy past the timeout: its health still counts.
        with contextlib.suppress(grpc.aio.AioRpcError):
            status.stats.CopyFrom(
                await process_pb2_grpc.ProcessServiceStub(channel).GetProcessStats(
                    process_pb2.GetProcessStatsRequest(), timeout=timeout_s
                )
            )
    return status


async def replica_statuses(target: str, peer: str, timeout_s: float = 1.0) -> list[process_pb2.ReplicaStatus]:
    """Every replica of service `peer` behind a target: serving or not, and
    its own figures."""
    addresses = await resolve_replicas(target)
    return list(await asyncio.gather(*(_status(a, peer, timeout_s) for a in addresses)))
