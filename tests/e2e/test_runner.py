"""`python -m deploy.local_mesh`, the command behind `make run`: it prints
how to use the mesh and stops every process on SIGTERM."""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.e2e


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_runner_prints_how_to_use_it_and_stops_everything(tmp_path):
    env = {**os.environ, "SAMPLE_CUSTOMERS": "50", "GATEWAY_API_KEYS": "sk-runner-test"}
    runner = subprocess.Popen(
        [sys.executable, "-m", "deploy.local_mesh", "--data-dir", str(tmp_path), "--free-ports"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    lines = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = runner.stdout.readline()
        lines.append(line)
        if "Ctrl-C stops everything" in line or not line:
            break
    output = "".join(lines)
    assert "Tilores X Mesh is running." in output, output
    assert "sk-runner-test" in output and "curl -N http://localhost:" in output
    assert "from openai import OpenAI" in output
    run = tmp_path / "run"
    ports = [int((run / f"{name}.port").read_text()) for name in ("gateway", "router", "llm_gateway", "cache")]
    admin = int((run / "envoy-admin").read_text().rsplit(":", 1)[1])
    assert all(listening(port) for port in [*ports, admin])

    runner.send_signal(signal.SIGTERM)
    assert runner.wait(timeout=60) == 0
    assert "stopped." in runner.stdout.read()
    assert not any(listening(port) for port in [*ports, admin])
