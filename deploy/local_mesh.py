"""LocalMesh: the whole mesh as local processes behind a real Envoy.

`python -m deploy.local_mesh` (what `make run` calls) starts every service
of the topology in dependency order, waits until each reports SERVING on
grpc.health.v1 (the REST gateway on /health), starts Envoy with a config
generated for the actual ports, prints how to use it, and on Ctrl-C or
SIGTERM stops everything in reverse order, letting in-flight streams finish.
Tests use the same class with `free_ports=True`.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import hashlib
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

import grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from deploy import redis_users
from deploy.certificates import IssuedCertificate, MeshCertificates
from deploy.edge_envoy import EdgeEnvoy, EnvoyError, with_parent
from deploy.envoy_config import render_envoy_config
from deploy.topology import Topology, TopologyError, load_topology
from services.runtime.access import SCOPES
from services.runtime.identity import MeshTls

REPO = Path(__file__).resolve().parent.parent
DEMO_QUESTION = "What is the status and credit score of edwina.hawthorne@example.com?"
DEMO_TOKEN_DELAY_MS = "15"


# Limits of the dev keys for benchmarks and tests, which ask thousands of
# questions a minute with one key (quotas are tested with keys of their own).
UNMETERED_KEY_LIMITS = {"requests_per_minute": 10_000_000, "tokens_per_minute": 10**12, "customers_per_hour": 10**9}
# Seconds before a dead process is started again, by restarts in a row.
RESTART_BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
STAYED_UP_S = 60.0


class MeshError(RuntimeError):
    """A process of the mesh failed to start or died."""


def instance_name(service: str, index: int) -> str:
    """`router` for the first replica, `router-2`, `router-3` ... after it."""
    return service if index == 0 else f"{service}-{index + 1}"


def parse_replicas(text: str, topology: Topology, env: Mapping[str, str] | None = None) -> dict[str, int]:
    """`"router=2 llm_gateway=3"` (spaces or commas) -> counts, checked
    against the topology and the environment (`env`, default this
    process's); a bad entry raises naming it."""
    env = os.environ if env is None else env
    counts: dict[str, int] = {}
    for item in text.replace(",", " ").split():
        name, sep, count = item.partition("=")
        if not sep or not count.isdigit() or int(count) < 1:
            raise MeshError(f"REPLICAS: expected service=count with a count of at least 1, got {item!r}")
        if name not in topology.services:
            raise MeshError(f"REPLICAS: unknown service {name!r} (services: {', '.join(topology.services)})")
        limit = topology.services[name].max_replicas
        if int(count) > limit:
            raise MeshError(f"REPLICAS: {name}={count} exceeds services.{name}.max_replicas ({limit})")
        if topology.services[name].postgres and int(count) > 1 and not env.get("OPTIMIZER_DATABASE_URL"):
            raise MeshError(
                f"REPLICAS: {name}={count} needs OPTIMIZER_DATABASE_URL (replicas share PostgreSQL; "
                "without it each would keep its own SQLite file)"
            )
        counts[name] = int(count)
    return counts


class LocalMesh:
    def __init__(
        self,
        topology: Topology,
        data_dir: str | Path,
        *,
        free_ports: bool = False,
        env: dict[str, str] | None = None,
        api_key: str | None = None,
        grace_period_s: float = 10.0,
        start_timeout_s: float = 90.0,
        replicas: dict[str, int] | None = None,
        progress: Callable[[str], None] | None = None,
        key_limits: dict[str, int] | None = None,
        grants: dict[str, frozenset[str]] | None = None,
    ):
        self.topology = topology
        self.replicas = {name: (replicas or {}).get(name, 1) for name in topology.services}
        self.data_dir = Path(data_dir).resolve()
        self.run_dir = self.data_dir / "run"
        self.log_dir = self.data_dir / "logs"
        self.free_ports = free_ports
        self.env = dict(env or {})
        self.api_key = api_key or self._dev_key("GATEWAY_API_KEYS", "dev-api-key", "sk-dev-")
        self.admin_key = self._admin_key()
        self.grace_period_s = grace_period_s
        self.start_timeout_s = start_timeout_s
        self.processes: dict[str, subprocess.Popen] = {}
        self.ports: dict[str, int] = {}  # instance name -> port
        self.metrics_ports: dict[str, int] = {}  # instance name -> port of GET /metrics
        self.envoy_ports: dict[str, int] = {}
        self.redis_url = ""
        self._redis_port = 0
        self._redis_passwords: dict[str, str] = {}
        self._fixed_ports: dict[str, int] = {}
        self._logs: list = []
        self.edge: EdgeEnvoy | None = None
        self.progress = progress or (lambda message: None)
        self.key_limits = dict(key_limits or {})  # of the dev keys; default: the gateway's own
        # The development CA and every member's certificate, made once per
        # data directory; `operator` is the client certificate printed for
        # grpcurl and used by the tests.
        self.certificates = MeshCertificates(self.data_dir / "certs")
        # The topology's grants, and every scope for the development operator.
        self.grants = topology.grants({"client/operator": SCOPES, **(grants or {})})
        self._written: set[Path] = set()
        self._launched_at: dict[str, float] = {}
        self._restarts: dict[str, int] = {}  # restarts in a row of a process that keeps dying
        self._restart_due: dict[str, float] = {}  # process -> when it is started again
        self._claim = None  # the open lock file that makes this data directory ours

    def _admin_key(self) -> str:
        """The first admin key the environment gives, else the data directory's own."""
        given = self.env.get("GATEWAY_ADMIN_KEYS", "").split(",")[0].strip()
        return given or self._dev_key("GATEWAY_ADMIN_KEYS", "dev-admin-key", "sk-admin-")

    # -- addresses -----------------------------------------------------
    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.envoy_ports['rest']}"

    @property
    def grpc_addr(self) -> str:
        return f"127.0.0.1:{self.envoy_ports['grpc']}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.envoy_ports['admin']}"

    def service_addr(self, name: str) -> str:
        """Address of an instance (`router`, `router-2`)."""
        return f"127.0.0.1:{self.ports[name]}"

    def instances(self, service: str) -> list[str]:
        return [instance_name(service, index) for index in range(self.replicas[service])]

    def replica_ports(self, service: str) -> list[int]:
        return [self.ports[name] for name in self.instances(service) if name in self.ports]

    def peer_addr(self, service: str) -> str:
        """What callers dial: one address, or every replica for round robin."""
        ports = self.replica_ports(service)
        if len(ports) == 1:
            return f"127.0.0.1:{ports[0]}"
        return "ipv4:" + ",".join(f"127.0.0.1:{port}" for port in ports)

    def service_of(self, instance: str) -> str:
        return instance if instance in self.topology.services else instance.rsplit("-", 1)[0]

    @property
    def operator(self) -> IssuedCertificate:
        """The client certificate of `client/operator`, a caller from outside."""
        return self.certificates.issue("client", "operator")

    def client_tls(self, kind: str = "client", name: str = "operator") -> MeshTls:
        """The certificate of a caller of :9090 or of a service (mutual TLS)."""
        issued = self.certificates.issue(kind, name)
        return MeshTls.from_files(str(issued.cert_file), str(issued.key_file), str(issued.ca_file))

    def client_credentials(self, kind: str = "client", name: str = "operator") -> grpc.ChannelCredentials:
        return self.client_tls(kind, name).channel_credentials()

    def ssl_context(self) -> ssl.SSLContext:
        """Trusts the mesh CA: for the gateway's own HTTPS port."""
        return ssl.create_default_context(cafile=str(self.certificates.ca_file))

    @property
    def gateway_url(self) -> str:
        """The gateway's own port (HTTPS, the mesh CA), not through Envoy."""
        return f"https://127.0.0.1:{self.ports[self.topology.rest_service.name]}"

    def anonymous_credentials(self) -> grpc.ChannelCredentials:
        """TLS that trusts the mesh CA but shows no certificate."""
        return grpc.ssl_channel_credentials(root_certificates=self.certificates.ca_file.read_bytes())

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def _dev_key(self, variable: str, file: str, prefix: str, nbytes: int = 16) -> str:
        """The first key the variable sets, else the one kept in the data
        directory, else a new one kept there."""
        configured = os.environ.get(variable, "").split(",")[0].strip()
        if configured:
            return configured
        path = self.data_dir / file
        if path.exists():
            return path.read_text().strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        key = f"{prefix}{secrets.token_hex(nbytes)}"
        path.touch(mode=0o600)
        path.write_text(key + "\n")
        path.chmod(0o600)
        return key

    def _key_file(self) -> Path:
        """The gateway's key records: the operator's own, kept from run to
        run, with the dev key and the dev admin key put in (as hashes; the
        keys themselves are printed, not stored there) unless revoked."""
        path = self.data_dir / "gateway-keys.yaml"
        if path in self._written:
            return path  # keys added since are the operator's
        self._written.add(path)
        kept = (yaml.safe_load(path.read_text()) if path.exists() else None) or {}
        keys = [entry for entry in kept.get("keys") or [] if entry.get("id") not in ("dev", "dev-admin")]
        revoked = kept.get("revoked") or []
        gone = {entry.get("sha256") for entry in revoked}
        records = [
            {"id": "dev", "sha256": hashlib.sha256(self.api_key.encode()).hexdigest(),
             "scopes": ["chat", "feedback", "models"]},
            {"id": "dev-admin", "sha256": hashlib.sha256(self.admin_key.encode()).hexdigest(),
             "scopes": ["chat", "feedback", "models", "admin", "audit"]},
        ]  # fmt: skip
        for record in records:
            if self.key_limits:
                record["limits"] = self.key_limits
            if record["sha256"] in gone:
                print(f"the {record['id']} key was revoked: not put back", file=sys.stderr)
        records = [record for record in records if record["sha256"] not in gone]
        path.write_text(
            "# API keys of the REST gateway (GATEWAY_KEYS_FILE): only a hash of each key is stored.\n"
            "# Add one: python -m gateway.api_keys add --file "
            + str(path)
            + " --id NAME\n"
            + yaml.safe_dump({"keys": [*records, *keys], **({"revoked": revoked} if revoked else {})}, sort_keys=False)
        )
        path.chmod(0o600)
        return path

    # -- start ---------------------------------------------------------
    def start(self) -> None:
        for folder in (self.run_dir, self.log_dir):
            folder.mkdir(parents=True, exist_ok=True)
        # Before anything of a running mesh is touched (its logs, pid files, ports).
        self._claim_data_dir()
        try:
            if not self.free_ports:
                self._check_ports_free()
        except MeshError:
            self._release_claim()
            raise
        self._rotate_logs()
        self.certificates.issue("client", "operator")  # for the user's own gRPC calls (docs/security.md)
        try:
            started = time.monotonic()
            self._start_redis()
            self._reserve_later_peer_ports()
            if self.redis_url:
                self.progress(
                    f"  {'redis':<14} ready on {self.redis_url.removeprefix('redis://')} (a user per service)"
                )
            for service in self.topology.start_order():
                # Replicas of one service start together, then are awaited.
                for name in self.instances(service):
                    self._launch(name)
                for name in self.instances(service):
                    began = time.monotonic()
                    self._await_serving(name)
                    self.progress(
                        f"  {name:<14} ready on 127.0.0.1:{self.ports[name]} ({time.monotonic() - began:.1f} s)"
                    )
            self._start_envoy()
            self._write_claim()
            self.progress(f"  {'envoy':<14} ready on {self.rest_url} ({time.monotonic() - started:.1f} s in all)")
        except BaseException:
            self.stop()
            raise

    def _claim_data_dir(self) -> None:
        """One mesh per data directory: the runner holds an exclusive lock
        on `run/mesh.lock` while it lives (the kernel lets go when it dies,
        so a crash leaves nothing stale); a second runner is refused at once,
        naming the first's pid and URL."""
        claim = open(self.run_dir / "mesh.lock", "a+")  # noqa: SIM115 - held for the mesh's lifetime
        try:
            fcntl.flock(claim, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            claim.seek(0)
            holder = claim.read().strip()
            claim.close()
            try:
                running = json.loads(holder)
            except ValueError:
                running = {}
            pid, url = running.get("pid", "unknown"), running.get("rest_url", "its URL is not known yet (starting)")
            raise MeshError(
                f"a mesh is already running from {self.data_dir} (pid {pid}, {url}); "
                f"stop it first (Ctrl-C where it runs, or kill {pid}), or give this one another --data-dir"
            ) from None
        self._claim = claim
        self._write_claim()

    def _write_claim(self) -> None:
        if self._claim is None:
            return
        running = {"pid": os.getpid(), "data_dir": str(self.data_dir)}
        if self.envoy_ports:
            running["rest_url"] = self.rest_url.replace("127.0.0.1", "localhost")
        elif not self.free_ports:
            running["rest_url"] = f"http://localhost:{self.topology.envoy.rest_port}"
        self._claim.seek(0)
        self._claim.truncate()
        self._claim.write(json.dumps(running) + "\n")
        self._claim.flush()

    def _release_claim(self) -> None:
        if self._claim is not None:
            self._claim.close()  # closing the file lets go of the lock
            self._claim = None

    def _check_ports_free(self) -> None:
        """The fixed ports are free, or nothing starts: a mesh from another
        data directory (or any program) on them is named at once instead of
        half a mesh starting beside it."""
        envoy = self.topology.envoy
        wanted = {f"envoy {name}": port for name, port in
                  (("REST", envoy.rest_port), ("gRPC", envoy.grpc_port), ("admin", envoy.admin_port))}  # fmt: skip
        wanted |= {name: spec.port for name, spec in self.topology.services.items() if spec.port}
        for what, port in wanted.items():
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError as error:
                    if error.errno != errno.EADDRINUSE:
                        raise
                    raise MeshError(
                        f"port {port} ({what}) is in use: another mesh or program listens on it "
                        f"(find it with: ss -ltnp 'sport = :{port}')"
                    ) from None

    def _reserve_later_peer_ports(self) -> None:
        """A service some other service calls only later (`later_peers`) may
        start after its caller: its ports are chosen now, so the caller is
        given its address at launch."""
        later = {peer for spec in self.topology.services.values() for peer in spec.later_peers}
        for service in later:
            for name in self.instances(service):
                if name in self._fixed_ports:
                    continue
                port = self._listen_port(name)
                if port == 0:
                    with socket.socket() as probe:
                        probe.bind(("127.0.0.1", 0))
                        port = probe.getsockname()[1]
                self._fixed_ports[name] = port
                self.ports[name] = port

    def _rotate_logs(self) -> None:
        """Each run starts with empty logs; the previous run's are kept in
        `logs/previous/`, so the first line a user reads is this run's."""
        logs = sorted(self.log_dir.glob("*.log"))
        if not logs:
            return
        previous = self.log_dir / "previous"
        if previous.exists():
            shutil.rmtree(previous)
        previous.mkdir()
        for log in logs:
            log.rename(previous / log.name)

    def _listen_port(self, name: str) -> int:
        if name in self._fixed_ports:
            return self._fixed_ports[name]
        spec = self.topology.services[self.service_of(name)]
        # Replicas after the first take free ports: they cannot share one.
        return 0 if self.free_ports or name != spec.name else spec.port

    def _service_env(self, name: str) -> dict[str, str]:
        spec = self.topology.services[self.service_of(name)]
        env = {**os.environ, **self.env}
        env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "OTEL_SERVICE_NAME": spec.name,
                "LISTEN_ADDR": f"127.0.0.1:{self._listen_port(name)}",
                # A free port the first time, the same one after a restart:
                # the banner's list of scrape addresses stays true.
                "METRICS_ADDR": f"127.0.0.1:{self.metrics_ports.get(name, 0)}",
                "PORT_FILE": str(self.run_dir / f"{name}.port"),
                "GRACE_PERIOD_S": str(self.grace_period_s),
                "TILORES_DB_PATH": env.get("TILORES_DB_PATH") or str(self.data_dir / "tilores.db"),
                "OPTIMIZER_DB_PATH": env.get("OPTIMIZER_DB_PATH") or str(self.data_dir / "optimizer.db"),
                "AUDIT_DB_PATH": env.get("AUDIT_DB_PATH") or str(self.data_dir / "audit.db"),
                "GATEWAY_KEYS_FILE": env.get("GATEWAY_KEYS_FILE") or str(self._key_file()),
                # Each process's own: what it has not delivered yet survives its restart.
                "SPOOL_DIR": str(self.data_dir / "spool" / name),
                # Health checks in plaintext on a port of their own; the
                # service port itself speaks only mutual TLS.
                "PROBE_ADDR": "127.0.0.1:0",
                "MESH_GRANTS": self.grants.render(),
                **self.certificates.issue("service", spec.name).env(),
            }
        )
        for peer in spec.all_peers:
            env[f"{peer.upper()}_SERVICE_ADDR"] = self.peer_addr(peer)
        if spec.name == "audit" and not env.get("AUDIT_CHAIN_KEY"):
            # What the audit-chain-key Secret is in Kubernetes: a key kept in
            # the data directory, made once.
            env["AUDIT_CHAIN_KEY"] = self._dev_key("AUDIT_CHAIN_KEY", "audit-chain.key", "", nbytes=32)
        if spec.redis and self.redis_url and not env.get("REDIS_URL"):
            env["REDIS_URL"] = self.redis_url_for(spec.name)
        return env

    def redis_url_for(self, service: str) -> str:
        """The private Redis as `service`'s own user sees it."""
        return redis_users.url(service, self._redis_passwords[service], "127.0.0.1", self._redis_port)

    def _start_redis(self) -> None:
        """The cache's second tier: a private redis-server (no persistence)
        unless REDIS_URL points at one already; without redis-server the
        cache runs on its in-process tier alone."""
        binary = shutil.which("redis-server")
        if binary is None or (self.env.get("REDIS_URL") or os.environ.get("REDIS_URL")):
            return
        port = self._redis_port
        if not port:
            with socket.socket() as probe:  # redis-server cannot bind port 0
                probe.bind(("127.0.0.1", 0))
                port = self._redis_port = probe.getsockname()[1]
        log = open(self.log_path("redis"), "ab")  # noqa: SIM115 - open for the process lifetime
        self._logs.append(log)
        # Every user and password in a file only this user can read, never
        # on the command line (ps would show it).
        if not self._redis_passwords:
            self._redis_passwords = redis_users.new_passwords(
                name for name, spec in self.topology.services.items() if spec.redis
            )
        config = self.run_dir / "redis.conf"
        config.touch(mode=0o600)
        config.chmod(0o600)
        settings = [f"port {port}", "bind 127.0.0.1", 'save ""', "appendonly no", f"dir {self.run_dir}"]
        config.write_text("\n".join([*settings, *redis_users.acl_lines(self._redis_passwords)]) + "\n")
        self.processes["redis"] = subprocess.Popen(
            with_parent([binary, str(config)]),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        probe = f"AUTH {redis_users.PROBE_USER} {redis_users.PROBE_USER}\r\nPING\r\n".encode()
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            self._check_alive("redis")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
                    conn.sendall(probe)
                    answer = b""
                    while len(answer) < 12 and (piece := conn.recv(64)):
                        answer += piece
                    if answer == b"+OK\r\n+PONG\r\n":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise MeshError(f"redis: did not answer PING (log: {self.log_path('redis')})")
            time.sleep(0.02)
        self.redis_url = f"redis://127.0.0.1:{port}/0"  # the address: each service has its own user

    def _start_service(self, name: str) -> None:
        self._launch(name)
        self._await_serving(name)

    def _launch(self, name: str) -> None:
        spec = self.topology.services[self.service_of(name)]
        port_file = self.run_dir / f"{name}.port"
        port_file.unlink(missing_ok=True)
        (self.run_dir / f"{name}.port.metrics").unlink(missing_ok=True)
        (self.run_dir / f"{name}.port.probe").unlink(missing_ok=True)
        module = "gateway" if spec.protocol == "http" else f"services.{spec.name}"
        log = open(self.log_path(name), "ab")  # noqa: SIM115 - open for the process lifetime
        self._logs.append(log)
        self.processes[name] = subprocess.Popen(
            with_parent([sys.executable, "-m", module]),
            cwd=REPO,
            env=self._service_env(name),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._launched_at[name] = time.monotonic()
        (self.run_dir / f"{name}.pid").write_text(f"{self.processes[name].pid}\n")

    def _await_serving(self, name: str) -> None:
        spec = self.topology.services[self.service_of(name)]
        port_file = self.run_dir / f"{name}.port"
        deadline = time.monotonic() + self.start_timeout_s
        while not port_file.exists():
            self._check_alive(name)
            if time.monotonic() > deadline:
                raise MeshError(
                    f"{name}: did not start within {self.start_timeout_s:.0f}s (log: {self.log_path(name)})"
                )
            time.sleep(0.02)
        self.ports[name] = int(port_file.read_text())
        metrics_file = self.run_dir / f"{name}.port.metrics"
        if metrics_file.exists():  # written before the port file
            self.metrics_ports[name] = int(metrics_file.read_text())
        elif spec.protocol == "http":
            self.metrics_ports[name] = self.ports[name]  # the gateway serves /metrics itself
        if spec.protocol == "grpc":
            self._wait_grpc_serving(name, int((self.run_dir / f"{name}.port.probe").read_text()), deadline)
        else:
            self._wait_http_ok(name, f"{self.gateway_url}/health", deadline)

    def _check_alive(self, name: str) -> None:
        process = self.processes[name]
        if process.poll() is not None:
            raise MeshError(
                f"{name} exited with code {process.returncode}: {self.exit_cause(name)} (log: {self.log_path(name)})"
            )

    def exit_cause(self, name: str) -> str:
        """Why a process ended, from its log: the last error it logged (a
        bad setting names the variable), else its last line."""
        lines = [line for line in self.log_path(name).read_text(errors="replace").splitlines() if line.strip()]
        for line in reversed(lines[-50:]):
            try:
                entry = json.loads(line)
            except ValueError:
                if "Error" in line or "error" in line:
                    return line.strip()
                continue
            if isinstance(entry, dict) and entry.get("level") in ("error", "critical"):
                error = str(entry.get("error") or "").strip().splitlines()
                return f"{entry.get('event', '')}: {error[-1] if error else ''}".strip(": ") or line
        return lines[-1].strip() if lines else "no output"

    def _wait_grpc_serving(self, name: str, probe_port: int, deadline: float) -> None:
        with grpc.insecure_channel(f"127.0.0.1:{probe_port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                self._check_alive(name)
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                if time.monotonic() > deadline:
                    raise MeshError(f"{name}: not SERVING on grpc.health.v1 (log: {self.log_path(name)})")
                time.sleep(0.05)

    def _wait_http_ok(self, name: str, url: str, deadline: float) -> None:
        while True:
            if name in self.processes:
                self._check_alive(name)
            try:
                context = self.ssl_context() if url.startswith("https:") else None
                with urllib.request.urlopen(url, timeout=1.0, context=context) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise MeshError(f"{name}: {url} did not answer 200 (log: {self.log_path(name)})")
            time.sleep(0.05)

    def _start_envoy(self) -> None:
        envoy = self.topology.envoy
        listener_ports = (
            {"rest": 0, "grpc": 0, "admin": 0}
            if self.free_ports
            else {"rest": envoy.rest_port, "grpc": envoy.grpc_port, "admin": envoy.admin_port}
        )
        # A restarted Envoy listens where the first one did.
        listener_ports = {name: self.envoy_ports.get(name, port) for name, port in listener_ports.items()}
        replica_ports = {service: self.replica_ports(service) for service in self.topology.services}
        config = render_envoy_config(
            self.topology,
            ports=replica_ports,
            listener_ports=listener_ports,
            tls=self.certificates.issue("edge", "envoy"),
        )
        self.edge = EdgeEnvoy(config, self.run_dir, self.log_path("envoy"), drain_time_s=int(self.grace_period_s))
        deadline = time.monotonic() + self.start_timeout_s
        try:
            self.envoy_ports = self.edge.start(self.start_timeout_s)
        except EnvoyError as error:
            raise MeshError(str(error)) from None
        finally:
            if self.edge.process is not None:
                self.processes["envoy"] = self.edge.process
                self._launched_at["envoy"] = time.monotonic()
        # Ready once Envoy's own health checks see the gateway, and every
        # replica of every service is in its rotation.
        self._wait_http_ok("envoy", f"{self.rest_url}/health", deadline)
        while unhealthy := self.edge.unhealthy_hosts():
            if time.monotonic() > deadline:
                raise MeshError(f"envoy: upstreams still failing their health checks: {', '.join(unhealthy)}")
            time.sleep(0.1)

    # -- supervise -----------------------------------------------------
    def supervise(self) -> list[str]:
        """Start again what died, as Kubernetes would: after 1 s, then 2, 4,
        ... up to 30 s while it keeps dying, afresh once it stayed up a
        minute. The other processes keep serving meanwhile (callers and
        Envoy send to the replicas that answer). Returns what happened, to
        print."""
        notes = []
        now = time.monotonic()
        for name, port in self._new_metrics_ports().items():
            self.metrics_ports[name] = port
            notes.append(f"{name} serves /metrics on 127.0.0.1:{port} now")
        for name, process in list(self.processes.items()):
            if process.poll() is None or name in self._restart_due:
                continue
            if now - self._launched_at.get(name, now) >= STAYED_UP_S:
                self._restarts[name] = 0
            attempt = self._restarts.get(name, 0)
            delay = RESTART_BACKOFF_S[min(attempt, len(RESTART_BACKOFF_S) - 1)]
            self._restart_due[name] = now + delay
            code = process.returncode
            if code < 0:
                cause = f"killed by {signal.Signals(-code).name}"
            else:
                cause = f"exit code {code}: {self.exit_cause(name) if name != 'envoy' else 'see its log'}"
            notes.append(f"{name} stopped ({cause}); restarting it in {delay:g} s")
        for name, due in list(self._restart_due.items()):
            if now < due:
                continue
            del self._restart_due[name]
            self._restarts[name] = self._restarts.get(name, 0) + 1
            try:
                self._relaunch(name)
            except (MeshError, EnvoyError, OSError) as error:
                notes.append(f"{name} could not be restarted: {error}")
                continue
            notes.append(f"{name} restarted (pid {self.processes[name].pid}, restart {self._restarts[name]})")
        return notes

    def _new_metrics_ports(self) -> dict[str, int]:
        """Metrics ports a restarted service has taken other than its own
        (it asks for the same one again, so only if that one was taken)."""
        found = {}
        for name in self.metrics_ports:
            path = self.run_dir / f"{name}.port.metrics"
            try:
                port = int(path.read_text())
            except (OSError, ValueError):
                continue
            if port != self.metrics_ports[name]:
                found[name] = port
        return found

    def _relaunch(self, name: str) -> None:
        if name == "redis":
            self._start_redis()
            self._launched_at[name] = time.monotonic()
        elif name == "envoy":
            self._start_envoy()
        else:
            self._fixed_ports[name] = self.ports[name]
            self._launch(name)  # not awaited: callers use it once it answers

    # -- stop ----------------------------------------------------------
    def stop(self) -> dict[str, int]:
        """Drain Envoy, then stop callers before their peers, each with its
        grace period; anything still running afterwards is killed. Returns
        the exit code of every process stopped here."""
        codes: dict[str, int] = {}
        if self.edge is not None:
            self.edge.drain()
        order = [n for s in reversed(self.topology.start_order()) for n in self.instances(s) if n in self.processes]
        for name in [*order, "envoy", "redis"]:
            process = self.processes.get(name)
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                codes[name] = process.wait(timeout=self.grace_period_s + 5)
            except subprocess.TimeoutExpired:
                process.kill()
                codes[name] = process.wait()
        for log in self._logs:
            log.close()
        self._logs.clear()
        self._release_claim()
        return codes

    def stop_instance(self, name: str, kill: bool = False) -> int:
        """SIGKILL (`kill`) or SIGTERM one process and wait for it; its
        exit code."""
        process = self.processes[name]
        if process.poll() is None:
            if kill:
                process.kill()
            else:
                process.send_signal(signal.SIGTERM)
        return process.wait(timeout=self.grace_period_s + 5)

    def restart(self, name: str, kill: bool = False) -> None:
        """Stop one process (SIGKILL with `kill`, else SIGTERM with its grace
        period) and start it again on the same port, as a supervisor would."""
        if name in self.processes:
            self.stop_instance(name, kill)
        if name == "redis":
            self._start_redis()
            return
        self._fixed_ports[name] = self.ports[name]
        self._start_service(name)

    def __enter__(self) -> LocalMesh:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _gateway_url(self) -> str:
        return f"https://localhost:{self.ports.get(self.topology.rest_service.name, 0)}"

    def _metrics_urls(self) -> str:
        urls = [
            f"{name} :{port}" for name, port in self.metrics_ports.items() if name != self.topology.rest_service.name
        ]
        return ", ".join(urls) + "   (GET /metrics on each)"

    def _grpcurl_health_check(self) -> str:
        """docs/api.md's grpcurl line with this mesh's certificates and port."""
        operator = self.operator
        return shlex.join(
            [
                ".venv/bin/grpcurl",
                *("-cacert", str(self.certificates.ca_file)),
                *("-cert", str(operator.cert_file), "-key", str(operator.key_file)),
                *("-H", "x-mesh-service: router", f"localhost:{self.envoy_ports['grpc']}"),
                "grpc.health.v1.Health/Check",
            ]
        )

    def banner(self) -> str:
        redis = _without_password(self.redis_url or os.environ.get("REDIS_URL", ""))
        return f"""
Tilores X Mesh is running.

  REST (OpenAI-compatible)  {self.rest_url.replace("127.0.0.1", "localhost")}/v1
  gRPC (every service)      localhost:{self.envoy_ports["grpc"]}   (TLS, client certificate required)
  gRPC client certificate   {self.operator.cert_file}   (with {self.operator.key_file.name}, ca.pem)
  grpc health check         {self._grpcurl_health_check()}
  replicas                  {", ".join(f"{name}={count}" for name, count in self.replicas.items())}
  Envoy admin               {self.admin_url}   (stats, clusters; localhost only)
  SRE endpoints             {self._gateway_url()}/health/detailed   {self._gateway_url()}/metrics
                            (HTTPS with the mesh CA: curl --cacert {self.certificates.ca_file} ...)
  metrics per service       {self._metrics_urls()}
  dev API key               {self.api_key}
  dev admin key             {self.admin_key}   (prompts, experiments, quality, access log)
  operations console        {self.rest_url.replace("127.0.0.1", "localhost")}/console   (sign in with the dev admin key)
  cache tier 2 (Redis)      {redis or "none: redis-server is not installed"}
  logs                      {self.log_dir}/

Ask about the demo customer:

  curl -N {self.rest_url.replace("127.0.0.1", "localhost")}/v1/chat/completions \\
    -H 'Authorization: Bearer {self.api_key}' -H 'Content-Type: application/json' \\
    -d '{{"model":"offline","stream":true,"messages":[{{"role":"user","content":"{DEMO_QUESTION}"}}]}}'

Or with the openai SDK:

  from openai import OpenAI
  client = OpenAI(base_url="{self.rest_url.replace("127.0.0.1", "localhost")}/v1", api_key="{self.api_key}")
  for chunk in client.chat.completions.create(
      model="offline", stream=True,
      messages=[{{"role": "user", "content": "{DEMO_QUESTION}"}}],
  ):
      print(chunk.choices[0].delta.content or "", end="", flush=True) if chunk.choices else None

Ctrl-C stops everything.
"""


def _without_password(url: str) -> str:
    """A Redis URL fit to print: its user's password left out."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--topology", default="deploy/topology.yaml")
    parser.add_argument("--data-dir", default=".data")
    parser.add_argument("--grace-period-s", type=float, default=10.0)
    parser.add_argument("--free-ports", action="store_true", help="let the kernel choose every port")
    parser.add_argument("--replicas", default="", help='processes per service, e.g. "router=2 llm_gateway=3"')
    args = parser.parse_args(argv)
    try:
        topology = load_topology(args.topology)
        replicas = parse_replicas(args.replicas, topology)
    except TopologyError as error:
        print(f"{args.topology}: {error}", file=sys.stderr)
        return 2
    except MeshError as error:
        print(str(error), file=sys.stderr)
        return 2
    stopping = False

    def request_stop(signum, frame) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    mesh = LocalMesh(
        topology,
        args.data_dir,
        free_ports=args.free_ports,
        grace_period_s=args.grace_period_s,
        replicas=replicas,
        # The demo model streams at a readable pace (OFFLINE_TOKEN_DELAY_MS=0: all at once).
        env={"OFFLINE_TOKEN_DELAY_MS": os.environ.get("OFFLINE_TOKEN_DELAY_MS", DEMO_TOKEN_DELAY_MS)},
        progress=lambda message: print(message, file=sys.stderr, flush=True),
    )
    print(f"starting the mesh (logs in {mesh.log_dir}/) ...", file=sys.stderr, flush=True)
    try:
        mesh.start()
    except MeshError as error:
        print(f"could not start the mesh: {error}", file=sys.stderr)
        return 1
    print(mesh.banner(), flush=True)
    return _supervise_until_stopped(mesh, lambda: stopping)


def _supervise_until_stopped(mesh: LocalMesh, stopping: Callable[[], bool]) -> int:
    """Restart what dies until a signal asks to stop, then stop every
    process; 1 when one did not stop cleanly."""
    code = 0
    try:
        while not stopping():
            for note in mesh.supervise():
                print(note, file=sys.stderr, flush=True)
            time.sleep(0.2)
    finally:
        print("stopping the mesh ...", file=sys.stderr, flush=True)
        unclean = {name: rc for name, rc in mesh.stop().items() if rc != 0}
        if unclean:
            print(f"not stopped cleanly (exit codes): {unclean}", file=sys.stderr)
            code = 1
        print("stopped.", file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
