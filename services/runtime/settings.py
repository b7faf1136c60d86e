"""Typed settings read from environment variables. A bad value fails at
start-up with a message that names the variable."""

from __future__ import annotations

import os
from dataclasses import dataclass

# Default listen ports when a service runs on its own; the local runner and
# Kubernetes always pass LISTEN_ADDR and the peer addresses explicitly.
DEFAULT_PORTS = {
    "router": 50051,
    "llm_gateway": 50052,
    "tilores_data": 50053,
    "cache": 50054,
    "optimizer": 50055,
    "audit": 50056,
}


class SettingsError(ValueError):
    """An environment variable holds a value the service cannot use."""


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_float(name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}: expected a number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name}: must be at least {minimum}, got {raw!r}")
    return value


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}: expected an integer, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name}: must be at least {minimum}, got {raw!r}")
    return value


def peer_addr(service: str) -> str:
    """Address of a peer service from `<SERVICE>_SERVICE_ADDR`: `host:port`,
    `dns:///name:port` (every address the name resolves to, as in
    Kubernetes with a headless Service) or `ipv4:host:port,host:port` (a
    fixed list of replicas); channels balance round robin over them."""
    name = f"{service.upper()}_SERVICE_ADDR"
    value = env_str(name, f"127.0.0.1:{DEFAULT_PORTS[service]}")
    if value.startswith("dns:///"):
        targets = [value.removeprefix("dns:///")]
    elif value.startswith(("ipv4:", "ipv6:")):
        targets = value.split(":", 1)[1].split(",")
    else:
        targets = [value]
    for target in targets:
        host, sep, port = target.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise SettingsError(f"{name}: expected host:port, dns:///host:port or ipv4:host:port,..., got {value!r}")
    return value


def _host_port(name: str, value: str) -> str:
    if value:
        _, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or int(port) > 65535:
            raise SettingsError(f"{name}: expected host:port, got {value!r}")
    return value


@dataclass(frozen=True)
class ServerSettings:
    """How a service's gRPC server listens and shuts down."""

    service: str
    listen_addr: str
    grace_period_s: float
    port_file: str
    max_connection_age_s: float
    metrics_addr: str = ""  # host:port of GET /metrics; empty: not served
    max_stream_s: float = 300.0  # the longest stream a client may hold open (the chat deadline)
    probe_addr: str = ""  # host:port of a plaintext port that serves grpc.health.v1 only (kubelet probes)
    loop_stall_limit_s: float = 20.0  # a loop stuck this long ends the process (runtime/loop_watchdog.py)

    @classmethod
    def from_env(cls, service: str) -> ServerSettings:
        listen_addr = env_str("LISTEN_ADDR", f"127.0.0.1:{DEFAULT_PORTS[service]}")
        if ":" not in listen_addr:
            raise SettingsError(f"LISTEN_ADDR: expected host:port, got {listen_addr!r}")
        return cls(
            service=service,
            listen_addr=listen_addr,
            grace_period_s=env_float("GRACE_PERIOD_S", 30.0),
            port_file=env_str("PORT_FILE"),
            max_connection_age_s=env_float("MAX_CONNECTION_AGE_S", 300.0, minimum=1.0),
            metrics_addr=_host_port("METRICS_ADDR", env_str("METRICS_ADDR")),
            max_stream_s=env_float("MAX_STREAM_S", 300.0, minimum=1.0),
            probe_addr=_host_port("PROBE_ADDR", env_str("PROBE_ADDR")),
            loop_stall_limit_s=env_float("LOOP_STALL_LIMIT_S", 20.0, minimum=1.0),
        )
