"""Every service as its Kubernetes Deployment runs it, short of a cluster:
the container's own environment from deploy/k8s, the secrets docs/operations.md has
an operator create (API keys, each pod's certificate) and nothing else, a read-only root filesystem with
writable storage only where the pod mounts volumes, peers dialled through
`dns:///` as in the cluster. Each process runs in a private mount namespace
(unshare) in which the root filesystem is read-only. Then a chat about the
demo customer must work end to end, and every process must stop cleanly."""

from __future__ import annotations

import json
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from base64 import b64decode
from pathlib import Path

import grpc
import psycopg
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from deploy import redis_users
from deploy.certificates import MeshCertificates, secret_folders
from deploy.edge_envoy import with_parent
from deploy.topology import load_topology
from services.runtime.loop_watchdog import EXIT_STUCK
from tests.integration.redis_server import RedisServer

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
API_KEY = "sk-pod-test-0123456789"
# What `kubectl create secret generic gateway-keys` holds (docs/operations.md, Deploy).
SECRETS = {
    "gateway": {"GATEWAY_API_KEYS": API_KEY, "GATEWAY_ADMIN_KEYS": "sk-admin-pod-test-0123456789"},
    "audit": {"AUDIT_CHAIN_KEY": "5a" * 32},
}


def _deployments() -> dict[str, dict]:
    found = {}
    for path in sorted((REPO / "deploy/k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] == "Deployment":
                found[doc["metadata"]["name"]] = doc["spec"]["template"]["spec"]
    return found


def _mount_points(*paths: Path) -> set[str]:
    """The mounts holding these paths: each is made read-only in the pod."""
    return {
        subprocess.run(["findmnt", "-T", str(p), "-n", "-o", "TARGET"], capture_output=True, text=True, check=True)
        .stdout.strip()
        .splitlines()[0]
        for p in paths
    }


def _read_only(mounts: set[str]) -> str:
    """Shell that makes these mounts read-only in a private mount namespace."""
    return " && ".join(f"mount -o remount,bind,ro {shlex.quote(target)}" for target in sorted(mounts))


class Pod:
    """One service process with its Deployment's container settings."""

    def __init__(self, service: str, pod_spec: dict, root: Path):
        self.service = service
        self.container = pod_spec["containers"][0]
        self.root = root / service
        # Each volume the pod mounts becomes a writable folder of its own.
        self.volumes = {mount["mountPath"]: self.root / mount["name"] for mount in self.container["volumeMounts"]}
        for folder in self.volumes.values():
            folder.mkdir(parents=True)
        self.port_file = self.volumes["/scratch"] / "port"
        self.process: subprocess.Popen | None = None
        self.port = 0
        self.probe_port = 0
        self.ssl_context: ssl.SSLContext | None = None
        self.env: dict[str, str] = {}

    def install_secret(self, folder: Path) -> None:
        """What Kubernetes mounts from the pod's `<name>-tls` Secret."""
        volume = next(v for v in self.container["volumeMounts"] if v["name"] == "tls")
        for item in folder.iterdir():
            (self.volumes[volume["mountPath"]] / item.name).write_bytes(item.read_bytes())
        # The kubelet would not verify the gateway's certificate; this test does.
        self.ssl_context = ssl.create_default_context(cafile=str(folder / "ca.crt"))

    def environment(
        self,
        ports: dict[str, int],
        cluster_secrets: dict[str, dict[str, str]],
        listen_port: int = 0,
        secrets: dict[str, dict[str, str]] = SECRETS,
    ) -> dict[str, str]:
        """`cluster_secrets`: what `secretKeyRef`s name (secret -> key -> value)."""
        env = {}
        for item in self.container["env"]:
            if "valueFrom" in item:
                ref = item["valueFrom"]["secretKeyRef"]
                env[item["name"]] = cluster_secrets[ref["name"]][ref["key"]]
                continue
            value = item["value"]
            for mount, folder in self.volumes.items():
                value = value.replace(mount, str(folder))
            env[item["name"]] = value
        # Loopback stands in for the pod network: the same variables, the
        # cluster names and ports swapped for this machine's.
        env["LISTEN_ADDR"] = f"127.0.0.1:{listen_port}"
        for name in ("METRICS_ADDR", "PROBE_ADDR"):
            if name in env:
                env[name] = "127.0.0.1:0"
        for name, value in list(env.items()):
            if name.endswith("_SERVICE_ADDR"):
                assert value.startswith("dns:///"), (name, value)
                env[name] = f"dns:///127.0.0.1:{ports[name.removesuffix('_SERVICE_ADDR').lower()]}"
        env["PORT_FILE"] = str(self.port_file)
        env.update(secrets.get(self.service, {}))
        # What the image sets (Dockerfile ENV), and no other variable.
        env.update(
            PATH=f"{Path(sys.executable).parent}:/usr/bin:/bin",
            PYTHONPATH=f"{REPO}:{REPO / 'gen/python'}",
            PYTHONDONTWRITEBYTECODE="1",
            PYTHONUNBUFFERED="1",
        )
        return env

    def start(self, env: dict[str, str], read_only: set[str]) -> None:
        self.env = env
        writable = " && ".join(
            f"mount --bind {shlex.quote(str(f))} {shlex.quote(str(f))}" for f in self.volumes.values()
        )
        script = f'mount --make-rprivate / && {writable} && {_read_only(read_only)} && exec "$@"'
        command = self.container["command"]
        assert command[:2] == ["python", "-m"], command
        with open(self.root / "log", "ab") as log:
            self.process = subprocess.Popen(
                with_parent(["unshare", "--mount", "--", "sh", "-c", script, "pod", sys.executable, *command[1:]]),
                env=env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return (self.root / "log").read_text(errors="replace")

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.port_file.exists():
            assert self.process.poll() is None, f"{self.service} exited:\n{self.log()[-2000:]}"
            assert time.monotonic() < deadline, f"{self.service} did not start:\n{self.log()[-2000:]}"
            time.sleep(0.05)
        self.port = int(self.port_file.read_text())
        probe_file = self.port_file.with_name("port.probe")
        self.probe_port = int(probe_file.read_text()) if probe_file.exists() else 0
        while not self._ready():
            assert self.process.poll() is None, f"{self.service} exited:\n{self.log()[-2000:]}"
            assert time.monotonic() < deadline, f"{self.service} not ready:\n{self.log()[-2000:]}"
            time.sleep(0.05)

    def _ready(self) -> bool:
        return self.probe("readinessProbe")

    def probe(self, kind: str) -> bool:
        """The Deployment's readiness or liveness probe, as the kubelet asks it."""
        probe = self.container[kind]
        if "grpc" in probe:
            # The kubelet asks the plaintext probe port; the service port is mutual TLS.
            with grpc.insecure_channel(f"127.0.0.1:{self.probe_port}") as channel:
                try:
                    reply = health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(service=probe["grpc"]["service"]),
                        timeout=probe.get("timeoutSeconds", 1),
                    )
                except grpc.RpcError:
                    return False
                return reply.status == health_pb2.HealthCheckResponse.SERVING
        scheme = probe["httpGet"].get("scheme", "HTTP").lower()
        url = f"{scheme}://127.0.0.1:{self.port}{probe['httpGet']['path']}"
        try:
            with urllib.request.urlopen(url, timeout=1, context=self.ssl_context) as reply:
                return reply.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


@pytest.fixture(scope="module")
def read_only_mounts() -> set[str]:
    """The mounts a pod sees read-only, checked: a write there fails."""
    mounts = _mount_points(Path("/"), REPO, Path(sys.prefix))
    probe = subprocess.run(
        [
            "unshare",
            "--mount",
            "--",
            "sh",
            "-c",
            f"mount --make-rprivate / && {_read_only(mounts)} && touch {shlex.quote(str(REPO / '.ro-probe'))}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "Read-only file system" in probe.stderr, f"needs root and mount namespaces (unshare): {probe.stderr}"
    assert not (REPO / ".ro-probe").exists()
    return mounts


def _ask(gateway: Pod) -> str:
    question = "What is the status and credit score of edwina.hawthorne@example.com?"
    request = urllib.request.Request(
        f"https://127.0.0.1:{gateway.port}/v1/chat/completions",
        data=json.dumps({"model": "offline", "messages": [{"role": "user", "content": question}]}).encode(),
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
        method="POST",
    )
    deadline = time.monotonic() + 30
    while True:  # a restarted peer is dialled again within a second or two
        try:
            with urllib.request.urlopen(request, timeout=30, context=gateway.ssl_context) as reply:
                return json.load(reply)["choices"][0]["message"]["content"]
        except urllib.error.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_every_service_runs_as_its_deployment_on_a_read_only_root(tmp_path, read_only_mounts, postgres):
    topology = load_topology(REPO / "deploy/topology.yaml")
    # What `kubectl create secret generic optimizer-database` holds (docs/operations.md): the replicas' PostgreSQL.
    operator_secrets = {**SECRETS, "optimizer": {"OPTIMIZER_DATABASE_URL": postgres.create_database("pods")}}
    deployments = _deployments()
    # The redis-users Secret docs/operations.md has an operator create, for a Redis on this machine.
    acl = tmp_path / "users.acl"
    redis = RedisServer(tmp_path, acl)
    users = redis_users.secret_manifest("tilores-x", redis_users.new_passwords(("cache", "router", "gateway")),
                                        "127.0.0.1", redis.port)  # fmt: skip
    cluster_secrets = {users["metadata"]["name"]: {k: b64decode(v).decode() for k, v in users["data"].items()}}
    acl.write_text(cluster_secrets[redis_users.SECRET][redis_users.ACL_KEY])
    redis.start()
    pods: dict[str, Pod] = {}
    codes: dict[str, int] = {}
    # The Secrets docs/operations.md has an operator create (python -m deploy.certificates).
    secrets = secret_folders(topology, MeshCertificates(tmp_path / "certs"))
    # A service called only later (`later_peers`) may start after its
    # caller: its port is chosen first, as a cluster's DNS name exists first.
    reserved = {peer: _free_port() for spec in topology.services.values() for peer in spec.later_peers}
    try:
        for name in topology.start_order():
            spec = topology.services[name]
            pod = Pod(name, deployments[spec.k8s_name], tmp_path / "pods")
            pod.install_secret(secrets[f"{spec.k8s_name}-tls"])
            ports = {peer: pods[peer].port for peer in spec.peers} | {p: reserved[p] for p in spec.later_peers}
            env = pod.environment(ports, cluster_secrets, reserved.get(name, 0), operator_secrets)
            if name == "router":  # the test's hook: SIGUSR2 blocks its loop; stuck 3 s, it ends
                env.update(LOOP_STALL_TEST_SIGNAL="1", LOOP_STALL_LIMIT_S="3")
            pod.start(env, read_only_mounts)
            pods[name] = pod
            pod.wait_ready()

        answer = _ask(pods["gateway"])
        # A stuck loop: the liveness probe fails, the process ends itself, and
        # the kubelet (played here) starts the container again on its address.
        router = pods["router"]
        assert router.probe("livenessProbe")
        router.process.send_signal(signal.SIGUSR2)
        time.sleep(0.5)
        assert not router.probe("livenessProbe")
        assert router.process.wait(timeout=30) == EXIT_STUCK
        router.port_file.unlink()
        router.start({**router.env, "LISTEN_ADDR": f"127.0.0.1:{router.port}"}, read_only_mounts)
        router.wait_ready()
        answer_after_restart = _ask(pods["gateway"])
    finally:
        for name in reversed(list(pods)):
            codes[name] = pods[name].stop()
        redis.stop()

    assert "Edwina Hawthorne" in answer and "Active" in answer, answer
    assert "Edwina Hawthorne" in answer_after_restart, answer_after_restart
    assert codes == dict.fromkeys(pods, 0), {n: pods[n].log()[-1500:] for n, c in codes.items() if c}
    # State went where the manifests put it: the embedded demo store on the
    # tilores_data pod's scratch volume, the optimizer's prompts and outcomes in PostgreSQL, in no file.
    assert (pods["tilores_data"].volumes["/scratch"] / "tilores.db").stat().st_size > 0
    with psycopg.connect(operator_secrets["optimizer"]["OPTIMIZER_DATABASE_URL"]) as conn:
        assert conn.execute("SELECT COUNT(*) FROM active_prompts").fetchone()[0] >= 1
    assert not list((tmp_path / "pods").rglob("optimizer.db"))
