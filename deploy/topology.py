"""Topology: the services of the mesh, read from deploy/topology.yaml and
checked field by field."""

from __future__ import annotations

import ipaddress
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from services.runtime.access import SCOPES, Grants


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
    # Peers it calls only for work asked of it once it serves (not to start):
    # they may call it too, so they do not order the start.
    later_peers: tuple[str, ...] = ()
    replicas: int = 1  # Kubernetes minimum (HPA minReplicas)
    max_replicas: int = 10
    cpu: str = "250m"  # requests; limits are derived
    memory: str = "256Mi"
    volume: str = ""  # mount path of state that must survive a restart
    volume_size: str = "1Gi"
    egress_https: bool = False  # calls APIs outside the cluster
    env: tuple[tuple[str, str], ...] = ()  # production settings for Kubernetes
    secrets: tuple[tuple[str, bool], ...] = ()  # Kubernetes Secrets read as env: (name, optional)
    redis: bool = False  # uses the Redis store (REDIS_URL is set for it, egress allowed)
    # Keeps its state in PostgreSQL in Kubernetes (the URL from its secrets,
    # egress allowed); run locally, more than one replica needs
    # OPTIMIZER_DATABASE_URL, else the replica is alone on its SQLite file.
    postgres: bool = False
    scopes: tuple[str, ...] = ()  # what it may call its peers for (services/runtime/access.py)

    @property
    def all_peers(self) -> tuple[str, ...]:
        return self.peers + self.later_peers

    @property
    def k8s_name(self) -> str:
        """DNS-1123 label: Kubernetes names cannot hold underscores."""
        return self.name.replace("_", "-")


@dataclass(frozen=True)
class EnvoySpec:
    rest_port: int
    grpc_port: int
    admin_port: int
    stream_idle_timeout_s: int = 120
    max_stream_duration_s: int = 300
    # Flood guard per Envoy and listener (a token bucket, not a tenant quota):
    # this many requests a second on average, bursts up to `burst`.
    rate_limit_rps: int = 200
    rate_limit_burst: int = 400


@dataclass(frozen=True)
class KubernetesSpec:
    namespace: str = "tilores-x"
    image: str = "tilores-x-mesh:0.1.0"
    envoy_image: str = "envoyproxy/envoy:v1.40.0"
    redis_image: str = "redis:7.4.2-alpine"
    metrics_port: int = 9464
    envoy_replicas: int = 2
    probe_port: int = 9465  # plaintext grpc.health.v1 for the kubelet; the service port is mutual TLS
    # Where the PostgreSQL server of `postgres` services is: egress is allowed there only.
    postgres_cidr: str = "10.0.0.0/8"
    postgres_port: int = 5432
    # Who may reach Envoy's gRPC listener: (namespace, pod labels) pairs.
    grpc_clients: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()


@dataclass(frozen=True)
class Topology:
    envoy: EnvoySpec
    services: dict[str, ServiceSpec] = field(default_factory=dict)
    kubernetes: KubernetesSpec = field(default_factory=KubernetesSpec)
    # Callers from outside the mesh (client certificates `client/<name>`) and their scopes.
    clients: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def grants(self, extra: dict[str, frozenset[str]] | None = None) -> Grants:
        """Who holds which scope (MESH_GRANTS): each service, each client,
        and `extra` (a development operator, tests)."""
        held = {f"service/{name}": frozenset(spec.scopes) for name, spec in self.services.items() if spec.scopes}
        held.update({f"client/{name}": frozenset(scopes) for name, scopes in self.clients.items()})
        for caller, scopes in (extra or {}).items():
            held[caller] = held.get(caller, frozenset()) | scopes
        return Grants(held)

    def callers(self, name: str) -> list[str]:
        """Services that list `name` among their peers."""
        return [other for other, spec in self.services.items() if name in spec.all_peers]

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


def _count(value: object, where: str, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TopologyError(f"{where}: expected a whole number of at least 1, got {value!r}")
    return value


def _quantity(value: object, where: str, default: str, pattern: str) -> str:
    if value is None:
        return default
    if not isinstance(value, str) or not re.fullmatch(pattern, value):
        raise TopologyError(f"{where}: expected a Kubernetes quantity such as {default!r}, got {value!r}")
    return value


_CPU = r"[0-9]+(\.[0-9]+)?m?"
_BYTES = r"[0-9]+(Ki|Mi|Gi|Ti)"
_SERVICE_FIELDS = {
    "scopes",
    "secrets",
    "redis",
    "postgres",
    "port",
    "protocol",
    "grpc_service",
    "streaming",
    "peers",
    "later_peers",
    "replicas",
    "max_replicas",
    "cpu",
    "memory",
    "volume",
    "volume_size",
    "egress_https",
    "env",
}
_KUBERNETES_FIELDS = {
    "namespace",
    "image",
    "envoy_image",
    "redis_image",
    "metrics_port",
    "probe_port",
    "envoy_replicas",
    "grpc_clients",
    "postgres_cidr",
    "postgres_port",
}
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
_LABEL_KEY = r"([a-z0-9.-]{1,253}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?"


def _grpc_clients(raw: object) -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
    """`[{namespace: call-centre, labels: {app.kubernetes.io/name: agent-desk}}]`:
    the pods, by namespace and labels, that may call Envoy's gRPC listener."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise TopologyError("kubernetes.grpc_clients: expected a list of {namespace, labels}")
    clients = []
    for index, entry in enumerate(raw):
        where = f"kubernetes.grpc_clients[{index}]"
        if not isinstance(entry, dict) or set(entry) - {"namespace", "labels"}:
            raise TopologyError(f"{where}: expected {{namespace, labels}}")
        namespace, labels = entry.get("namespace"), entry.get("labels")
        if not isinstance(namespace, str) or not re.fullmatch(_DNS_LABEL, namespace):
            raise TopologyError(f"{where}.namespace: expected a namespace name, got {namespace!r}")
        if not isinstance(labels, dict) or not labels:
            # Every pod of a namespace is too wide for credit data.
            raise TopologyError(f"{where}.labels: expected at least one pod label")
        for key, value in labels.items():
            if not (isinstance(key, str) and re.fullmatch(_LABEL_KEY, key)):
                raise TopologyError(f"{where}.labels: {key!r} is not a label key")
            if not (isinstance(value, str) and re.fullmatch(_LABEL_VALUE, value)):
                raise TopologyError(f"{where}.labels.{key}: expected a label value, got {value!r}")
        clients.append((namespace, tuple(sorted(labels.items()))))
    return tuple(clients)


def _kubernetes(raw: object) -> KubernetesSpec:
    if raw is None:
        return KubernetesSpec()
    if not isinstance(raw, dict):
        raise TopologyError("kubernetes: expected a mapping")
    unknown = set(raw) - _KUBERNETES_FIELDS
    if unknown:
        raise TopologyError(f"kubernetes.{sorted(unknown)[0]}: unknown field")
    defaults = KubernetesSpec()
    namespace = raw.get("namespace", defaults.namespace)
    if not isinstance(namespace, str) or not re.fullmatch(_DNS_LABEL, namespace):
        raise TopologyError(f"kubernetes.namespace: expected a DNS label, got {namespace!r}")
    images = {}
    for key in ("image", "envoy_image", "redis_image"):
        value = raw.get(key, getattr(defaults, key))
        # A pinned tag or digest: `latest` or no tag would make rollouts unrepeatable.
        if not isinstance(value, str) or not re.fullmatch(
            r"[a-z0-9./_-]+(:[A-Za-z0-9._-]+|@sha256:[a-f0-9]{64})", value
        ):
            raise TopologyError(f"kubernetes.{key}: expected an image with a pinned tag or digest, got {value!r}")
        if value.endswith(":latest"):
            raise TopologyError(f"kubernetes.{key}: pin a version instead of 'latest'")
        images[key] = value
    postgres_cidr = raw.get("postgres_cidr", defaults.postgres_cidr)
    try:
        ipaddress.ip_network(postgres_cidr)
    except (TypeError, ValueError):
        raise TopologyError(
            f"kubernetes.postgres_cidr: expected a CIDR such as 10.0.0.0/8, got {postgres_cidr!r}"
        ) from None
    return KubernetesSpec(
        namespace=namespace,
        postgres_cidr=str(postgres_cidr),
        postgres_port=_port(raw.get("postgres_port", defaults.postgres_port), "kubernetes.postgres_port"),
        metrics_port=_port(raw.get("metrics_port", defaults.metrics_port), "kubernetes.metrics_port"),
        probe_port=_port(raw.get("probe_port", defaults.probe_port), "kubernetes.probe_port"),
        grpc_clients=_grpc_clients(raw.get("grpc_clients")),
        envoy_replicas=_count(raw.get("envoy_replicas"), "kubernetes.envoy_replicas", defaults.envoy_replicas),
        **images,
    )


def _env(raw: object, where: str) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise TopologyError(f"{where}: expected a mapping of variable names to values")
    pairs = []
    for key, value in raw.items():
        if not isinstance(key, str) or not re.fullmatch(r"[A-Z_][A-Z0-9_]*", key):
            raise TopologyError(f"{where}.{key}: expected an upper-case variable name")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise TopologyError(f"{where}.{key}: expected a string or number")
        pairs.append((key, str(value)))
    return tuple(pairs)


def topology_for_command(path: str) -> Topology:
    """The topology a command line names; a bad one ends the command with
    the field named (exit code 2)."""
    try:
        return load_topology(path)
    except TopologyError as error:
        print(f"{path}: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def parse_topology(text: str) -> Topology:
    doc = yaml.safe_load(text)
    if not isinstance(doc, dict):
        raise TopologyError("topology: expected a mapping with 'envoy' and 'services'")
    unknown = set(doc) - {"envoy", "services", "kubernetes", "clients"}
    if unknown:
        raise TopologyError(f"{sorted(unknown)[0]}: unknown field")
    envoy = _envoy(doc.get("envoy"))
    raw_services = doc.get("services")
    if not isinstance(raw_services, dict) or not raw_services:
        raise TopologyError("services: required non-empty mapping")
    services = {name: _service(name, raw) for name, raw in raw_services.items()}
    for name, spec in services.items():
        for key, peers in (("peers", spec.peers), ("later_peers", spec.later_peers)):
            for peer in peers:
                if peer not in services:
                    raise TopologyError(f"services.{name}.{key}: unknown service {peer!r}")
    if sum(1 for s in services.values() if s.protocol == "http") != 1:
        raise TopologyError("services: exactly one service must have protocol: http (the REST gateway)")
    topology = Topology(
        envoy=envoy,
        services=services,
        kubernetes=_kubernetes(doc.get("kubernetes")),
        clients=_clients(doc.get("clients")),
    )
    topology.start_order()
    return topology


_ENVOY_FIELDS = {
    "rest_port", "grpc_port", "admin_port", "stream_idle_timeout_s", "max_stream_duration_s", "rate_limit_rps",
    "rate_limit_burst",
}  # fmt: skip


def _envoy(envoy: object) -> EnvoySpec:
    if not isinstance(envoy, dict):
        raise TopologyError("envoy: required mapping")
    unknown = set(envoy) - _ENVOY_FIELDS
    if unknown:
        raise TopologyError(f"envoy.{sorted(unknown)[0]}: unknown field")
    spec = EnvoySpec(
        rest_port=_port(envoy.get("rest_port"), "envoy.rest_port"),
        grpc_port=_port(envoy.get("grpc_port"), "envoy.grpc_port"),
        admin_port=_port(envoy.get("admin_port"), "envoy.admin_port"),
        stream_idle_timeout_s=_count(envoy.get("stream_idle_timeout_s"), "envoy.stream_idle_timeout_s", 120),
        max_stream_duration_s=_count(envoy.get("max_stream_duration_s"), "envoy.max_stream_duration_s", 300),
        rate_limit_rps=_count(envoy.get("rate_limit_rps"), "envoy.rate_limit_rps", 200),
        rate_limit_burst=_count(envoy.get("rate_limit_burst"), "envoy.rate_limit_burst", 400),
    )
    if spec.rate_limit_burst < spec.rate_limit_rps:
        raise TopologyError(
            f"envoy.rate_limit_burst: {spec.rate_limit_burst} is below rate_limit_rps "
            f"({spec.rate_limit_rps}); a bucket cannot hold less than one second's refill"
        )
    return spec


def _service(name: str, raw: object) -> ServiceSpec:
    where = f"services.{name}"
    if not isinstance(raw, dict):
        raise TopologyError(f"{where}: expected a mapping")
    unknown = set(raw) - _SERVICE_FIELDS
    if unknown:
        raise TopologyError(f"{where}.{sorted(unknown)[0]}: unknown field")
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,40}", str(name)):
        raise TopologyError(f"{where}: service names are lower-case letters, digits and underscores")
    protocol = raw.get("protocol", "grpc")
    if protocol not in ("grpc", "http"):
        raise TopologyError(f"{where}.protocol: expected 'grpc' or 'http', got {protocol!r}")
    grpc_service = raw.get("grpc_service", "")
    if protocol == "grpc" and (not isinstance(grpc_service, str) or "." not in grpc_service):
        raise TopologyError(f"{where}.grpc_service: required full service name, e.g. tilores_x.v1.RouterService")
    peers = _names(raw, "peers", where)
    later_peers = _names(raw, "later_peers", where)
    replicas = _count(raw.get("replicas"), f"{where}.replicas", 1)
    max_replicas = _count(raw.get("max_replicas"), f"{where}.max_replicas", max(10, replicas))
    if max_replicas < replicas:
        raise TopologyError(f"{where}.max_replicas: {max_replicas} is below replicas ({replicas})")
    volume = raw.get("volume", "")
    if not isinstance(volume, str) or (volume and not volume.startswith("/")):
        raise TopologyError(f"{where}.volume: expected an absolute mount path, got {volume!r}")
    if volume and max_replicas != 1:
        # The state is a single-writer file (SQLite): one pod owns it.
        raise TopologyError(f"{where}.max_replicas: a service with a volume runs exactly one replica")
    return ServiceSpec(
        name=name,
        port=_port(raw.get("port"), f"{where}.port"),
        protocol=protocol,
        grpc_service=grpc_service,
        streaming=_flag(raw, "streaming", where),
        peers=tuple(peers),
        later_peers=tuple(later_peers),
        replicas=replicas,
        max_replicas=max_replicas,
        cpu=_quantity(raw.get("cpu"), f"{where}.cpu", "250m", _CPU),
        memory=_quantity(raw.get("memory"), f"{where}.memory", "256Mi", _BYTES),
        volume=volume,
        volume_size=_quantity(raw.get("volume_size"), f"{where}.volume_size", "1Gi", _BYTES),
        egress_https=_flag(raw, "egress_https", where),
        env=_env(raw.get("env"), f"{where}.env"),
        secrets=_secrets(raw.get("secrets"), f"{where}.secrets"),
        redis=_flag(raw, "redis", where),
        postgres=_flag(raw, "postgres", where),
        scopes=_scopes(raw.get("scopes"), f"{where}.scopes"),
    )


def _names(raw: dict, name: str, where: str) -> list[str]:
    """A list of service names (checked against the services later)."""
    names = raw.get(name, [])
    if not isinstance(names, list) or not all(isinstance(p, str) for p in names):
        raise TopologyError(f"{where}.{name}: expected a list of service names")
    return names


def _scopes(raw: object, where: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
        raise TopologyError(f"{where}: expected a list of scopes")
    unknown = sorted(set(raw) - SCOPES)
    if unknown:
        raise TopologyError(f"{where}: unknown scope {unknown[0]!r} (known: {', '.join(sorted(SCOPES))})")
    return tuple(sorted(set(raw)))


def _clients(raw: object) -> dict[str, tuple[str, ...]]:
    """`{agent-desk: [chat], ...}`: callers from outside and their scopes."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise TopologyError("clients: expected a mapping of client names to scopes")
    clients = {}
    for name, scopes in raw.items():
        if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", name):
            raise TopologyError(f"clients: {name!r} is not a client name (lower-case letters, digits, dashes)")
        clients[name] = _scopes(scopes, f"clients.{name}")
    return clients


def _secrets(raw: object, where: str) -> tuple[tuple[str, bool], ...]:
    """`[{name: llm-providers, optional: true}, ...]`"""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise TopologyError(f"{where}: expected a list of {{name, optional}}")
    secrets = []
    for n, entry in enumerate(raw):
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name):
            raise TopologyError(f"{where}[{n}].name: expected a Kubernetes Secret name")
        unknown = set(entry) - {"name", "optional"}
        if unknown:
            raise TopologyError(f"{where}[{n}].{sorted(unknown)[0]}: unknown field")
        secrets.append((name, _flag(entry, "optional", f"{where}[{n}]")))
    return tuple(secrets)


def _flag(raw: dict, name: str, where: str) -> bool:
    value = raw.get(name, False)
    if not isinstance(value, bool):
        raise TopologyError(f"{where}.{name}: expected true or false")
    return value


def load_topology(path: str | Path) -> Topology:
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise TopologyError(f"{path}: {error.strerror}") from None
    return parse_topology(text)
