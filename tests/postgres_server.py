"""A real PostgreSQL server for tests: Debian's `postgresql` package,
a fresh cluster in a temporary folder, listening on a free loopback port,
stopped (immediately) at the end. As root, the cluster belongs to the
package's `postgres` user, since PostgreSQL refuses to run as root."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg

PASSWORD = "mesh-test-password"


def binaries() -> Path | None:
    """The folder of initdb and pg_ctl of the newest PostgreSQL installed."""
    root = Path("/usr/lib/postgresql")
    versions = sorted((p for p in root.glob("*/bin") if (p / "initdb").exists()), key=lambda p: int(p.parent.name))
    return versions[-1] if versions else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """`netns`: the network namespace it runs in, listening on `host`."""

    def __init__(self, folder: Path, *, host: str = "127.0.0.1", port: int = 0, netns: str | None = None):
        found = binaries()
        assert found, "PostgreSQL is missing: `make test` installs Debian's postgresql package"
        self.bin = found
        self.folder = folder
        self.data = folder / "data"
        self.host = host
        self.port = port or _free_port()
        self.netns = netns
        self._user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = list(args)
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        if self.netns:
            command = ["ip", "netns", "exec", self.netns, *command]
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=120)

    def start(self) -> PostgresServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        secret = self.folder / "pwfile"
        secret.write_text(PASSWORD + "\n")
        if os.geteuid() == 0:
            shutil.chown(secret, "postgres", "postgres")
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "mesh", "--pwfile", str(secret),
            "--auth=scram-sha-256", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        if self.host != "127.0.0.1":  # clients on other hosts, with the password
            with open(self.data / "pg_hba.conf", "a") as hba:
                hba.write("host all all 0.0.0.0/0 scram-sha-256\n")
        options = f"-p {self.port} -k {self.folder} -c listen_addresses={self.host} -c fsync=off -c max_connections=50"
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"), "-w", "start"
        )
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://mesh:{PASSWORD}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop", check=False)

    def restart(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "restart")


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    folder = Path(tempfile.mkdtemp(prefix="pg-"))
    os.chmod(folder, 0o755)
    server = PostgresServer(folder / "cluster").start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
