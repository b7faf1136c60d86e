"""A real redis-server (the Debian package) on a free loopback port, which a
test can kill and start again on the same port."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """`acl_file`: its users (deploy/redis_users.py), the default user off;
    `netns`: the network namespace it runs in, listening on `host`."""

    def __init__(
        self,
        directory: Path,
        acl_file: Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        netns: str | None = None,
    ):
        binary = shutil.which("redis-server")
        if binary is None:  # `make test` installs it; a bare pytest run may not have
            pytest.fail("redis-server is not installed: run `make test`, which installs it")
        self.binary = binary
        self.directory = directory
        self.host = host
        self.port = port or _free_port()
        self.netns = netns
        self.acl_file = acl_file
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> None:
        in_netns = ["ip", "netns", "exec", self.netns] if self.netns else []
        self.process = subprocess.Popen(
            [*in_netns, self.binary, "--port", str(self.port), "--bind", self.host, "--save", "", "--appendonly", "no",
             "--dir", str(self.directory), "--protected-mode", "yes",
             *(["--aclfile", str(self.acl_file)] if self.acl_file else [])],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        ping = b"AUTH probe probe\r\nPING\r\n" if self.acl_file else b"PING\r\n"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2) as conn:
                    conn.sendall(ping)
                    time.sleep(0.01)
                    if conn.recv(64).endswith(b"+PONG\r\n"):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        """SIGKILL: the server vanishes mid-conversation."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait()
            self.process = None
