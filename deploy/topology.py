"""Topology: the services of the mesh, read from deploy/topology.yaml and
checked field by field."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml


class TopologyError(ValueError):
    """The topology file is wrong; the message names the field."""


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    port: int
    protocol: str = "grpc"  # "grpc" or "http"
    grpc_service: str = ""
    streaming: bool = False
    peers: tuple[str, ...] = ()


@dataclass(frozen=True)
class EnvoySpec:
    rest_port: int
    grpc_port: int
    admin_port: int
    stream_idle_timeout_s: int = 120
    max_stream_duration_s: int = 600


@dataclass(frozen=True)
class Topology:
    envoy: EnvoySpec
    services: dict[str, ServiceSpec] = field(default_factory=dict)

    def start_order(self) -> list[str]:
        """Services ordered so that every peer starts before its callers."""
        order: list[str] = []
        visiting: set[str] = set()

        def visit(name: str) -> None:
            if name in order:
                return
            if name in visiting:
                raise TopologyError(f"services.{name}.peers: dependency cycle")
            visiting.add(name)
            for peer in self.services[name].peers:
                visit(peer)
            order.append(name)

        for name in self.services:
            visit(name)
        return order

    @property
    def rest_service(self) -> ServiceSpec:
        return next(s for s in self.services.values() if s.protocol == "http")


def _port(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise TopologyError(f"{where}: expected a port number 0-65535, got {value!r}")
    return value


def parse_topology(text: str) -> Topology:
    doc = yaml.safe_load(text)
    if not isinstance(doc, dict):
        raise TopologyError("topology: expected a mapping with 'envoy' and 'services'")
    envoy = doc.get("envoy")
    if not isinstance(envoy, dict):
        raise TopologyError("envoy: required mapping")
    unknown = set(envoy) - {"rest_port", "grpc_port", "admin_port", "stream_idle_timeout_s", "max_stream_duration_s"}
    if unknown:
        raise TopologyError(f"envoy.{sorted(unknown)[0]}: unknown field")
    envoy_spec = EnvoySpec(
        rest_port=_port(envoy.get("rest_port"), "envoy.rest_port"),
        grpc_port=_port(envoy.get("grpc_port"), "envoy.grpc_port"),
        admin_port=_port(envoy.get("admin_port"), "envoy.admin_port"),
        stream_idle_timeout_s=int(envoy.get("stream_idle_timeout_s", 120)),
        max_stream_duration_s=int(envoy.get("max_stream_duration_s", 600)),
    )
    raw_services = doc.get("services")
    if not isinstance(raw_services, dict) or not raw_services:
        raise TopologyError("services: required non-empty mapping")
    services: dict[str, ServiceSpec] = {}
    for name, raw in raw_services.items():
        where = f"services.{name}"
        if not isinstance(raw, dict):
            raise TopologyError(f"{where}: expected a mapping")
        unknown = set(raw) - {"port", "protocol", "grpc_service", "streaming", "peers"}
        if unknown:
            raise TopologyError(f"{where}.{sorted(unknown)[0]}: unknown field")
        protocol = raw.get("protocol", "grpc")
        if protocol not in ("grpc", "http"):
            raise TopologyError(f"{where}.protocol: expected 'grpc' or 'http', got {protocol!r}")
        grpc_service = raw.get("grpc_service", "")
        if protocol == "grpc" and (not isinstance(grpc_service, str) or "." not in grpc_service):
            raise TopologyError(f"{where}.grpc_service: required full service name, e.g. tilores_x.v1.RouterService")
        peers = raw.get("peers", [])
        if not isinstance(peers, list) or not all(isinstance(p, str) for p in peers):
            raise TopologyError(f"{where}.peers: expected a list of service names")
        streaming = raw.get("streaming", False)
        if not isinstance(streaming, bool):
            raise TopologyError(f"{where}.streaming: expected true or false")
        services[name] = ServiceSpec(
            name=name,
            port=_port(raw.get("port"), f"{where}.port"),
            protocol=protocol,
            grpc_service=grpc_service,
            streaming=streaming,
            peers=tuple(peers),
        )
    for name, spec in services.items():
        for peer in spec.peers:
            if peer not in services:
                raise TopologyError(f"services.{name}.peers: unknown service {peer!r}")
    if sum(1 for s in services.values() if s.protocol == "http") != 1:
        raise TopologyError("services: exactly one service must have protocol: http (the REST gateway)")
    topology = Topology(envoy=envoy_spec, services=services)
    topology.start_order()
    return topology


def load_topology(path: str | Path) -> Topology:
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise TopologyError(f"{path}: {error.strerror}") from None
    return parse_topology(text)
