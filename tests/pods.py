"""Pod: one process of the mesh as its Kubernetes Deployment runs it, short
of a cluster. The container's own environment from deploy/k8s, the secrets
docs/operations.md has an operator create and nothing else, a read-only root
filesystem with writable storage only where the pod mounts volumes. Each
process runs in a private mount namespace (unshare) in which the root
filesystem is read-only.

Two placements: on loopback (`test_pods.py`: the cluster's names and ports
swapped for free ports on 127.0.0.1), or in a network namespace of its own
with the manifests' addresses as they are and the cluster's names in its
own /etc/hosts (`tests/chaos`: a pod network on one machine)."""

from __future__ import annotations

import re
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from deploy.edge_envoy import envoy_binary, with_parent

REPO = Path(__file__).resolve().parents[1]


def deployments() -> dict[str, dict]:
    """Each Deployment's pod spec in deploy/k8s, by name."""
    found = {}
    for path in sorted((REPO / "deploy/k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] == "Deployment":
                found[doc["metadata"]["name"]] = doc["spec"]["template"]["spec"]
    return found


def config_map(name: str) -> dict[str, str]:
    """A ConfigMap's data in deploy/k8s."""
    for path in sorted((REPO / "deploy/k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == name:
                return doc["data"]
    raise KeyError(name)


def mount_points(*paths: Path) -> set[str]:
    """The mounts holding these paths: each is made read-only in the pod."""
    return {
        subprocess.run(["findmnt", "-T", str(p), "-n", "-o", "TARGET"], capture_output=True, text=True, check=True)
        .stdout.strip()
        .splitlines()[0]
        for p in paths
    }


def read_only_script(mounts: set[str]) -> str:
    """Shell that makes these mounts read-only in a private mount namespace."""
    return " && ".join(f"mount -o remount,bind,ro {shlex.quote(target)}" for target in sorted(mounts))


def checked_read_only_mounts() -> set[str]:
    """The mounts a pod sees read-only, checked: a write there fails."""
    mounts = mount_points(Path("/"), REPO, Path(sys.prefix))
    probe = subprocess.run(
        [
            "unshare",
            "--mount",
            "--",
            "sh",
            "-c",
            f"mount --make-rprivate / && {read_only_script(mounts)} && touch {shlex.quote(str(REPO / '.ro-probe'))}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if "Read-only file system" not in probe.stderr:
        raise RuntimeError(f"needs root and mount namespaces (unshare): {probe.stderr}")
    if (REPO / ".ro-probe").exists():
        raise RuntimeError("the read-only probe wrote its file")
    return mounts


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Pod:
    """One service process with its Deployment's container settings.

    `netns`: the network namespace it runs in (its own address `address`,
    the cluster's names from `hosts_file`); None: loopback."""

    def __init__(
        self,
        service: str,
        pod_spec: dict,
        root: Path,
        *,
        name: str | None = None,
        netns: str | None = None,
        address: str = "127.0.0.1",
        hosts_file: Path | None = None,
    ):
        self.service = service
        self.name = name or service
        self.container = pod_spec["containers"][0]
        self.root = root / self.name
        self.netns = netns
        self.address = address
        self.hosts_file = hosts_file
        # Each volume the pod mounts becomes a writable folder of its own.
        self.volumes = {mount["mountPath"]: self.root / mount["name"] for mount in self.container["volumeMounts"]}
        for folder in self.volumes.values():
            folder.mkdir(parents=True, exist_ok=True)
        scratch = self.volumes.get("/scratch", self.root)
        self.port_file = scratch / "port"
        self.process: subprocess.Popen | None = None
        self.port = 0
        self.probe_port = 0
        self.ssl_context: ssl.SSLContext | None = None
        self.env: dict[str, str] = {}
        self.read_only: set[str] = set()

    @property
    def is_envoy(self) -> bool:
        return self.container["command"][0] == "envoy"

    def install_secret(self, folder: Path) -> None:
        """What Kubernetes mounts from the pod's `<name>-tls` Secret."""
        volume = next(v for v in self.container["volumeMounts"] if v["name"] == "tls")
        for item in folder.iterdir():
            (self.volumes[volume["mountPath"]] / item.name).write_bytes(item.read_bytes())
        # The kubelet would not verify the gateway's certificate; this test does.
        self.ssl_context = ssl.create_default_context(cafile=str(folder / "ca.crt"))
        # Its certificate names the cluster's names and loopback, not a pod's address.
        self.ssl_context.check_hostname = self.netns is None

    def in_volumes(self, text: str) -> str:
        """`text` with each mount path swapped for the folder standing in for it."""
        # One pass, whole path segments only: a folder standing in for a
        # mount may itself lie under another mount's path (/tmp).
        mounts = "|".join(re.escape(m) for m in sorted(self.volumes, key=len, reverse=True))
        return re.sub(f"({mounts})(?![\\w.-])", lambda found: str(self.volumes[found[1]]), text)

    def environment(
        self,
        ports: dict[str, int],
        cluster_secrets: dict[str, dict[str, str]],
        listen_port: int = 0,
        secrets: dict[str, dict[str, str]] | None = None,
    ) -> dict[str, str]:
        """`cluster_secrets`: what `secretKeyRef`s name (secret -> key -> value);
        `secrets`: the variables of the Secrets mounted whole, by service."""
        env = {}
        for item in self.container.get("env", []):
            if "valueFrom" in item:
                ref = item["valueFrom"]["secretKeyRef"]
                env[item["name"]] = cluster_secrets[ref["name"]][ref["key"]]
                continue
            env[item["name"]] = self.in_volumes(item["value"])
        if self.netns is None:
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
        # A file a Secret names is in one of the pod's volumes.
        env.update((name, self.in_volumes(value)) for name, value in (secrets or {}).get(self.service, {}).items())
        # What the image sets (Dockerfile ENV), and no other variable.
        env.update(
            PATH=f"{Path(sys.executable).parent}:/usr/bin:/bin",
            PYTHONPATH=f"{REPO}:{REPO / 'gen/python'}",
            PYTHONDONTWRITEBYTECODE="1",
            PYTHONUNBUFFERED="1",
        )
        return env

    def command(self) -> list[str]:
        """The container's command as this machine runs it."""
        command = self.container["command"] + self.container.get("args", [])
        if self.is_envoy:
            return [envoy_binary(), *(self.in_volumes(arg) for arg in command[1:])]
        assert command[:2] == ["python", "-m"], command
        return [sys.executable, *command[1:]]

    def start(self, env: dict[str, str], read_only: set[str]) -> None:
        self.env = env
        self.read_only = read_only
        steps = ["mount --make-rprivate /"]
        steps += [f"mount --bind {shlex.quote(str(f))} {shlex.quote(str(f))}" for f in self.volumes.values()]
        if self.hosts_file is not None:
            steps.append(f"mount --bind -o ro {shlex.quote(str(self.hosts_file))} /etc/hosts")
        steps.append(read_only_script(read_only))
        script = " && ".join(steps) + ' && exec "$@"'
        command = ["unshare", "--mount", "--", "sh", "-c", script, "pod", *self.command()]
        if self.netns is not None:
            command = ["ip", "netns", "exec", self.netns, *command]
        with open(self.root / "log", "ab") as log:
            self.process = subprocess.Popen(
                with_parent(command), env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT
            )

    def restart(self) -> None:
        """The kubelet starts the container again, on the pod's address."""
        env = dict(self.env)
        if self.netns is None and self.port:
            env["LISTEN_ADDR"] = f"127.0.0.1:{self.port}"
        self.port_file.unlink(missing_ok=True)
        self.start(env, self.read_only)

    def log(self) -> str:
        return (self.root / "log").read_text(errors="replace")

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        if self.is_envoy:
            self.port = self.container["ports"][0]["containerPort"]
        while not self.is_envoy and not self.port_file.exists():
            assert self.process.poll() is None, f"{self.name} exited:\n{self.log()[-2000:]}"
            assert time.monotonic() < deadline, f"{self.name} did not start:\n{self.log()[-2000:]}"
            time.sleep(0.05)
        if not self.is_envoy:
            self.port = int(self.port_file.read_text())
            probe_file = self.port_file.with_name("port.probe")
            self.probe_port = int(probe_file.read_text()) if probe_file.exists() else 0
        while not self.probe("readinessProbe"):
            assert self.process.poll() is None, f"{self.name} exited:\n{self.log()[-2000:]}"
            assert time.monotonic() < deadline, f"{self.name} not ready:\n{self.log()[-2000:]}"
            time.sleep(0.05)

    def probe(self, kind: str) -> bool:
        """The Deployment's readiness or liveness probe, as the kubelet asks it."""
        probe = self.container[kind]
        if "grpc" in probe:
            # The kubelet asks the plaintext probe port; the service port is mutual TLS.
            with grpc.insecure_channel(f"{self.address}:{self.probe_port}") as channel:
                try:
                    reply = health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(service=probe["grpc"]["service"]),
                        timeout=probe.get("timeoutSeconds", 1),
                    )
                except grpc.RpcError:
                    return False
                return reply.status == health_pb2.HealthCheckResponse.SERVING
        scheme = probe["httpGet"].get("scheme", "HTTP").lower()
        url = f"{scheme}://{self.address}:{self.port}{probe['httpGet']['path']}"
        context = self.ssl_context if scheme == "https" else None
        try:
            with urllib.request.urlopen(url, timeout=1, context=context) as reply:
                return reply.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def kill(self) -> None:
        """SIGKILL, as a node's processes die at once."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
