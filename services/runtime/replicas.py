"""Replica health: how many processes stand behind a peer address, and how
many of them report SERVING. For health pages, not for the hot path: every
check opens a short-lived channel to each address."""

from __future__ import annotations

import asyncio
import socket

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.runtime.channels import tls_name_options
from services.runtime.identity import mesh_tls


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
    addresses = sorted({info[4][0] for info in infos})
    return [f"[{a}]:{port}" if ":" in a else f"{a}:{port}" for a in addresses]


async def _serving(address: str, timeout_s: float) -> bool:
    tls = mesh_tls()
    channel = (
        grpc.aio.secure_channel(address, tls.channel_credentials(), options=tls_name_options(address))
        if tls is not None
        else grpc.aio.insecure_channel(address)
    )
    async with channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="readiness"), timeout=timeout_s
            )
        except grpc.aio.AioRpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


async def replica_health(target: str, timeout_s: float = 1.0) -> tuple[int, int]:
    """(replicas found, replicas SERVING) behind a target."""
    addresses = await resolve_replicas(target)
    serving = await asyncio.gather(*(_serving(a, timeout_s) for a in addresses))
    return len(addresses), sum(serving)
