"""Cluster: the mesh as deploy/k8s places it, on simulated hosts of one machine.

Every process is a Pod (tests/pods.py: its Deployment's environment, secrets
and read-only root) in a network namespace of its own (tests/chaos/network.py),
dialling its peers by the cluster's names through its own /etc/hosts, as a
headless Service resolves: every replica's address, whether it answers or not.

    edge     Envoy (its ConfigMap from deploy/k8s/90-envoy.yaml)
    node-a   one replica of every stateless service
    node-b   the other replica of every stateless service
    node-c   audit (one writer of the access log)
    redis    Redis (quotas, the customers-per-hour limit, the cache's tier)
    postgres PostgreSQL (the optimizer's store)

No host holds every replica of a service, so every fault of one host
leaves each service served.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import tempfile
import time
from base64 import b64decode
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from deploy import redis_users
from deploy.certificates import MeshCertificates, secret_folders
from deploy.topology import load_topology
from tests.chaos.network import PodNetwork
from tests.integration.redis_server import RedisServer
from tests.pods import REPO, Pod, config_map, deployments
from tests.postgres_server import PostgresServer

EDGE, NODE_A, NODE_B, NODE_C, REDIS_HOST, POSTGRES_HOST = "edge", "node-a", "node-b", "node-c", "redis", "postgres"
STATELESS_NODES = (NODE_A, NODE_B)
NAMESPACE_DOMAIN = "tilores-x.svc.cluster.local"
REDIS_PORT, POSTGRES_PORT = 6379, 5432

# The API keys of the load: unmetered ones, and one of each metered kind
# whose counts the report checks (requests a minute, customers an hour).
UNMETERED = {"requests_per_minute": 10_000_000, "tokens_per_minute": 10**12, "customers_per_hour": 10**9}
KEYS = {
    "sk-chaos-desk-1-0123456789": ("desk-1", UNMETERED),
    "sk-chaos-desk-2-0123456789": ("desk-2", UNMETERED),
    "sk-chaos-desk-3-0123456789": ("desk-3", UNMETERED),
    "sk-chaos-metered-0123456789": ("metered", {**UNMETERED, "requests_per_minute": 30}),
    "sk-chaos-lookups-0123456789": ("lookups", {**UNMETERED, "customers_per_hour": 12}),
}
ADMIN_KEY = "sk-chaos-admin-0123456789"


class Cluster:
    def __init__(self, root: Path, network: PodNetwork, read_only: set[str]):
        self.root = root
        self.network = network
        self.read_only = read_only
        self.topology = load_topology(REPO / "deploy/topology.yaml")
        self.pods: dict[str, Pod] = {}
        self.redis: RedisServer | None = None
        self.postgres: PostgresServer | None = None
        self.optimizer_db_url = ""

    # -- placement -------------------------------------------------------

    def _placement(self) -> list[tuple[str, str, str]]:
        """(pod name, service, host) for every pod, in start order."""
        placed = []
        for service in self.topology.start_order():
            spec = self.topology.services[service]
            if spec.replicas == 1:
                placed.append((service, service, NODE_C))
                continue
            placed += [(f"{service}-{i + 1}", service, host) for i, host in enumerate(STATELESS_NODES)]
        return placed

    def start(self) -> None:
        self.network.create()
        placement = self._placement()
        for name, _, host in placement:
            self.network.add_pod(name, host)
        self.network.add_pod("envoy", EDGE)
        self.network.add_pod("redis", REDIS_HOST)
        self.network.add_pod("postgres", POSTGRES_HOST)
        names: dict[str, list[str]] = {}
        for service, spec in self.topology.services.items():
            pods = [name for name, of, _ in placement if of == service]
            for alias in (f"{spec.k8s_name}-headless", spec.k8s_name):
                names[f"{alias}.{NAMESPACE_DOMAIN}"] = pods
        names["redis"] = names[f"redis.{NAMESPACE_DOMAIN}"] = ["redis"]
        names["postgres"] = ["postgres"]
        hosts_file = self.network.write_hosts_file(self.root / "hosts", names)

        self._start_stores()
        cluster_secrets = self._redis_users()
        secrets = self._operator_secrets()
        folders = secret_folders(self.topology, MeshCertificates(self.root / "certs"))
        specs = deployments()
        by_service: dict[str, list[Pod]] = {}
        for name, service, _ in placement:
            spec = self.topology.services[service]
            net = self.network.pods[name]
            pod = Pod(service, specs[spec.k8s_name], self.root / "pods", name=name, netns=net.netns,
                      address=net.address, hosts_file=hosts_file)  # fmt: skip
            pod.install_secret(folders[f"{spec.k8s_name}-tls"])
            self.pods[name] = pod
            by_service.setdefault(service, []).append(pod)
        self._write_keys_files(by_service["gateway"])
        for service in self.topology.start_order():
            for pod in by_service[service]:
                pod.start(pod.environment({}, cluster_secrets, secrets=secrets), self.read_only)
            with ThreadPoolExecutor(len(by_service[service])) as waiting:
                list(waiting.map(lambda p: p.wait_ready(120), by_service[service]))
        self._start_envoy(folders["envoy-tls"], hosts_file)

    def _start_stores(self) -> None:
        redis_net, postgres_net = self.network.pods["redis"], self.network.pods["postgres"]
        (self.root / "redis").mkdir(parents=True, exist_ok=True)
        self._acl = self.root / "redis" / "users.acl"
        self.redis = RedisServer(
            self.root / "redis", self._acl, host=redis_net.address, port=REDIS_PORT, netns=redis_net.netns
        )
        # PostgreSQL runs as its own user, which must reach its folder.
        self._postgres_folder = Path(tempfile.mkdtemp(prefix="pg-"))
        self._postgres_folder.chmod(0o755)
        self.postgres = PostgresServer(
            self._postgres_folder / "cluster", host=postgres_net.address, port=POSTGRES_PORT, netns=postgres_net.netns
        ).start()
        # The optimizer reaches it by its name, as in the cluster.
        self.optimizer_db_url = self.postgres.create_database("optimizer").replace(postgres_net.address, "postgres")

    def _redis_users(self) -> dict[str, dict[str, str]]:
        """The redis-users Secret docs/operations.md has an operator create."""
        users = redis_users.secret_manifest(
            "tilores-x", redis_users.new_passwords(("cache", "router", "gateway")), "redis", REDIS_PORT
        )
        secret = {key: b64decode(value).decode() for key, value in users["data"].items()}
        self._acl.write_text(secret[redis_users.ACL_KEY])
        assert self.redis is not None
        self.redis.start()
        return {users["metadata"]["name"]: secret}

    def _operator_secrets(self) -> dict[str, dict[str, str]]:
        return {
            "gateway": {"GATEWAY_ADMIN_KEYS": ADMIN_KEY, "GATEWAY_KEYS_FILE": "/scratch/keys.yaml"},
            "audit": {"AUDIT_CHAIN_KEY": "5a" * 32},
            "optimizer": {"OPTIMIZER_DATABASE_URL": self.optimizer_db_url},
        }

    def _write_keys_files(self, gateways: list[Pod]) -> None:
        """The load's keys with their limits, as `python -m gateway.api_keys` writes them."""
        records = [
            {"id": key_id, "sha256": hashlib.sha256(key.encode()).hexdigest(),
             "scopes": ["chat", "feedback", "models"], "limits": limits}
            for key, (key_id, limits) in KEYS.items()
        ]  # fmt: skip
        for pod in gateways:
            path = pod.volumes["/scratch"] / "keys.yaml"
            path.write_text(yaml.safe_dump({"keys": records}, sort_keys=False))
            path.chmod(0o600)

    def _start_envoy(self, tls_folder: Path, hosts_file: Path) -> None:
        net = self.network.pods["envoy"]
        pod = Pod("envoy", deployments()["envoy"], self.root / "pods", netns=net.netns, address=net.address,
                  hosts_file=hosts_file)  # fmt: skip
        pod.install_secret(tls_folder)
        (pod.volumes["/etc/envoy"] / "envoy.yaml").write_text(pod.in_volumes(config_map("envoy-config")["envoy.yaml"]))
        pod.start(pod.environment({}, {}), self.read_only)
        self.pods["envoy"] = pod
        pod.wait_ready(60)
        # Envoy's health checks find every upstream before the load starts.
        time.sleep(6)

    # -- what the faults act on --------------------------------------------

    @property
    def rest_url(self) -> str:
        return f"http://{self.network.pods['envoy'].address}:8080"

    def on_host(self, host: str) -> list[Pod]:
        names = {pod.name for pod in self.network.on_host(host)}
        return [pod for name, pod in self.pods.items() if name in names]

    def kill_host(self, host: str) -> None:
        """Every process of the host SIGKILLed at once."""
        for pod in self.on_host(host):
            pod.kill()

    def restart_host(self, host: str) -> None:
        """The kubelet starts each container again on the same pod address."""
        pods = self.on_host(host)
        for pod in pods:
            pod.restart()
        for pod in pods:
            pod.wait_ready(120)

    def audit_db(self) -> Path:
        return self.pods["audit"].volumes["/var/lib/audit"] / "audit.db"

    def stop(self) -> dict[str, int]:
        codes = {}
        for name in reversed(list(self.pods)):
            codes[name] = self.pods[name].stop()
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.stop()
            # Its log stays with the pods' for whoever looks into a run.
            with contextlib.suppress(OSError):
                shutil.copyfile(self._postgres_folder / "cluster" / "log", self.root / "postgres.log")
            shutil.rmtree(self._postgres_folder, ignore_errors=True)
        self.network.close()
        return codes
