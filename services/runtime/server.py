"""Server bootstrap shared by every service: a grpc.aio server with the
request interceptor, grpc.health.v1 (NOT_SERVING until the service is ready
and again on shutdown), server reflection, and graceful shutdown on SIGTERM or
SIGINT that lets in-flight streams finish within a grace period."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
import uvloop
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from tilores_x.v1 import process_pb2_grpc

from services.runtime import process_service
from services.runtime.access import Grants
from services.runtime.identity import MeshTls, configure_identity, tls_from_env
from services.runtime.interceptors import RequestInterceptor
from services.runtime.limits import MAX_GRPC_MESSAGE_BYTES
from services.runtime.logs import configure_logging
from services.runtime.loop_watchdog import LoopWatchdog
from services.runtime.metrics import serve_metrics
from services.runtime.process_service import ProcessServicer
from services.runtime.process_stats import ProcessFigures
from services.runtime.settings import ServerSettings, SettingsError, env_str
from services.runtime.telemetry import configure_tracing

log = logging.getLogger("server")

# Health service names the Kubernetes probes and Envoy's health checks ask for.
READINESS = "readiness"
LIVENESS = "liveness"


class Component(Protocol):
    """What a service hands to the bootstrap."""

    def register(self, server: grpc.aio.Server) -> Sequence[str]:
        """Add servicers to the server; return their full service names."""

    async def close(self) -> None:
        """Release channels, files and tasks after the server has stopped."""


def server_options(settings: ServerSettings) -> list[tuple[str, int]]:
    age_ms = int(settings.max_connection_age_s * 1000)
    return [
        # Clients re-resolve and spread over new replicas. New calls go to
        # the new connection at once; calls still open on the old one get
        # as long as the longest stream may last (the shutdown grace, which
        # is often shorter, would cut live answers) before it is closed.
        ("grpc.max_connection_age_ms", age_ms),
        (
            "grpc.max_connection_age_grace_ms",
            int(max(settings.max_stream_s, settings.grace_period_s) * 1000) + 5_000,
        ),
        # Accept the clients' keepalive pings (every 2 s, channels.KEEPALIVE_MS;
        # Envoy's as often), with room for a timer that fires early.
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 1_000),
        ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_GRPC_MESSAGE_BYTES),
    ]


@dataclass
class RunningServer:
    """A started server; tests use it directly, `main()` wraps it in signals."""

    server: grpc.aio.Server
    health: health.aio.HealthServicer
    port: int
    names: Sequence[str]
    component: Component
    settings: ServerSettings
    probe_server: Any = None  # the probe port's own server, when there is one
    probe_port: int = 0

    async def stop(self, grace_s: float | None = None) -> None:
        grace = self.settings.grace_period_s if grace_s is None else grace_s
        # Readiness fails so Envoy and the probes stop sending new calls;
        # `liveness` stays SERVING, or the kubelet would kill a draining pod.
        for name in ("", READINESS, *self.names):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        log.info("shutdown", extra={"fields": {"grace_s": grace}})
        await self.server.stop(grace)
        if self.probe_server is not None:
            await self.probe_server.stop(0)  # answered liveness while the calls drained
        await self.component.close()


async def _probe_server(addr: str, health_servicer: health.aio.HealthServicer) -> tuple[grpc.aio.Server, int]:
    """grpc.health.v1 alone, in plaintext, for the kubelet (which shows no
    certificate): the same health states as the service port."""
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port(addr)
    if port == 0:
        raise SettingsError(f"PROBE_ADDR: cannot bind {addr!r}")
    await server.start()
    return server, port


async def start_server(
    component: Component, settings: ServerSettings, tls: MeshTls | None = None, grants: Grants | None = None
) -> RunningServer:
    """The component's services with health and reflection. With `tls` the
    port speaks only mutual TLS and every call but a health check needs a
    verified caller holding its RPC's scope in `grants`; PROBE_ADDR adds a
    plaintext port for health alone."""
    if tls is not None and grants is None:
        raise SettingsError("MESH_GRANTS: required with TLS")
    server = grpc.aio.server(
        interceptors=[RequestInterceptor(grants if tls is not None else None)], options=server_options(settings)
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = list(component.register(server))
    process_pb2_grpc.add_ProcessServiceServicer_to_server(ProcessServicer(ProcessFigures(settings.service)), server)
    reflection.enable_server_reflection(
        [
            *names,
            process_service.SERVICE_NAME,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    if tls is not None:
        port = server.add_secure_port(settings.listen_addr, tls.server_credentials())
    else:
        port = server.add_insecure_port(settings.listen_addr)
    if port == 0:
        raise SettingsError(f"LISTEN_ADDR: cannot bind {settings.listen_addr!r}")
    for name in ("", READINESS, *names):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    probe = await _probe_server(settings.probe_addr, health_servicer) if settings.probe_addr else None
    await server.start()
    for name in ("", READINESS, LIVENESS, *names):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info(
        "serving", extra={"fields": {"port": port, "probe_port": probe[1] if probe else 0, "tls": tls is not None}}
    )
    return RunningServer(server, health_servicer, port, names, component, settings, *(probe or ()))


def write_port_file(path: str, port: int) -> None:
    """Written atomically so a watcher never reads a half-written port."""
    with open(f"{path}.tmp", "w") as handle:
        handle.write(str(port))
    os.replace(f"{path}.tmp", path)


async def _serve(service: str, build: Callable[[], Awaitable[Component]]) -> None:
    settings = ServerSettings.from_env(service)
    tls = tls_from_env()
    grants = Grants.from_env() if tls is not None else None
    configure_identity(tls)  # before any channel: peers are called with this identity
    component = await build()
    running = await start_server(component, settings, tls, grants)
    if settings.metrics_addr:
        metrics_port = serve_metrics(settings.metrics_addr)
        log.info("metrics", extra={"fields": {"port": metrics_port}})
        if settings.port_file:
            write_port_file(f"{settings.port_file}.metrics", metrics_port)
    if settings.port_file:
        if running.probe_port:
            write_port_file(f"{settings.port_file}.probe", running.probe_port)
        write_port_file(settings.port_file, running.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watchdog = LoopWatchdog(settings.loop_stall_limit_s)
    watchdog.start(loop)
    await stop.wait()
    await running.stop()  # still watched: a drain that hangs ends the process too
    watchdog.stop()


def main(service: str, build: Callable[[], Awaitable[Component]]) -> None:
    """Entry point of every service's `__main__`."""
    configure_logging(service, env_str("LOG_LEVEL", "INFO"))
    try:
        configure_tracing(service)  # before any server, channel or HTTP session exists
        uvloop.run(_serve(service, build))
    except SettingsError as error:
        log.error("bad settings", extra={"fields": {"error": str(error)}})
        raise SystemExit(2) from None
