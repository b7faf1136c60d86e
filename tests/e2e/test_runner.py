"""`python -m deploy.local_mesh`, the command behind `make run`: it shows
its progress, prints how to use the mesh, keeps serving when a replica dies
(and starts it again), names the cause of a failed start first, starts each
run with fresh logs and stops every process on SIGTERM."""

from __future__ import annotations

import http.client
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

pytestmark = pytest.mark.e2e
KEY = "sk-runner-test"


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Runner:
    """The runner as a user starts it, its output read line by line."""

    def __init__(self, data_dir: Path, *args: str, **env: str):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "deploy.local_mesh", "--data-dir", str(data_dir), "--free-ports", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, "SAMPLE_CUSTOMERS": "50", "GATEWAY_API_KEYS": KEY, **env},
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put("")

    def wait_for(self, text: str, timeout_s: float = 90) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                continue
            self.output.append(line)
            if text in line:
                return "".join(self.output)
            if not line:
                break  # the runner ended
        raise AssertionError(f"{text!r} never came:\n{''.join(self.output)}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


def rest_port(output: str) -> int:
    return int(output.split("REST (OpenAI-compatible)")[1].split("localhost:")[1].split("/", maxsplit=1)[0])


def stream(port: int) -> bytes:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    body = {
        "model": "offline",
        "stream": True,
        "messages": [{"role": "user", "content": "What is the status of edwina.hawthorne@example.com?"}],
    }
    connection.request(
        "POST",
        "/v1/chat/completions",
        json.dumps(body),
        {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    return payload if response.status == 200 else f"HTTP {response.status}: ".encode() + payload


def test_runner_shows_progress_survives_a_dead_replica_and_stops_everything(tmp_path):
    runner = Runner(tmp_path, "--replicas", "router=2", OFFLINE_TOKEN_DELAY_MS="1")
    try:
        output = runner.wait_for("Ctrl-C stops everything")
        # Progress, then how to use it, SRE endpoints included.
        assert output.index("tilores_data") < output.index("router-2") < output.index("Tilores X Mesh is running.")
        assert "ready on 127.0.0.1:" in output
        assert KEY in output and "curl -N http://localhost:" in output and "from openai import OpenAI" in output
        assert "/health/detailed" in output and "/metrics" in output and "metrics per service" in output
        run = tmp_path / "run"
        port = rest_port(output)

        # One router replica dies: the mesh keeps answering and starts it again.
        old_pid = int((run / "router-2.pid").read_text())
        router_port = int((run / "router-2.port").read_text())
        metrics_port = int((run / "router-2.port.metrics").read_text())
        os.kill(old_pid, signal.SIGKILL)
        with ThreadPoolExecutor(10) as pool:
            answers = list(pool.map(lambda _: stream(port), range(100)))
        failed = [a[:200] for a in answers if not a.rstrip().endswith(b"data: [DONE]") or b"Edwina" not in a]
        assert not failed, failed[:3]
        runner.wait_for("router-2 restarted")
        assert "router-2 stopped (killed by SIGKILL); restarting it in 1 s" in "".join(runner.output)
        new_pid = int((run / "router-2.pid").read_text())
        assert new_pid != old_pid
        deadline = time.monotonic() + 30
        while not listening(router_port) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert listening(router_port)
        # Its /metrics is where the banner said it is, as before the kill.
        deadline = time.monotonic() + 30
        while not listening(metrics_port) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert int((run / "router-2.port.metrics").read_text()) == metrics_port
        assert f"router-2 :{metrics_port}" in output
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as scrape:
            assert b"process_cpu_seconds_total" in scrape.read()
        assert "serves /metrics on" not in "".join(runner.output)
        ports = [int((run / f"{name}.port").read_text()) for name in ("gateway", "router", "llm_gateway", "cache")]
        admin = int((run / "envoy-admin").read_text().rsplit(":", 1)[1])
        assert all(listening(p) for p in [*ports, router_port, admin])
    finally:
        code = runner.stop()
    assert code == 0
    assert not any(listening(p) for p in [*ports, router_port, admin])
    assert "stopped." in runner.wait_for("stopped.", timeout_s=10)


def test_a_failed_start_names_its_cause_first_and_each_run_has_fresh_logs(tmp_path):
    runner = Runner(tmp_path)
    output = runner.wait_for("Ctrl-C stops everything")
    # The README's demo streams token by token, not as one block.
    events = [e for e in stream(rest_port(output)).split(b"\n\n") if b'"content":"' in e]
    assert len(events) > 20
    assert runner.stop() == 0
    first_run = (tmp_path / "logs" / "router.log").read_text()
    assert first_run
    # `make customers`: five different customers to ask about.
    listed = subprocess.run(
        [sys.executable, "-m", "services.tilores_data.seed", "--db", str(tmp_path / "tilores.db"), "--list", "5"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    emails = [line.split()[2] for line in listed]
    assert len(set(emails)) == 5 and emails[0] == "edwina.hawthorne@example.com"

    # A bad setting: the runner's own message says which service and why.
    broken = Runner(tmp_path, LLM_TIMEOUT_S="soon")
    output = broken.wait_for("could not start the mesh")
    assert broken.process.wait(timeout=60) == 1
    message = output.splitlines()[-1]
    assert message.startswith("could not start the mesh: llm_gateway exited with code 2")
    assert "LLM_TIMEOUT_S" in message
    # The failed run's logs start clean; the earlier run's are kept aside.
    assert "LLM_TIMEOUT_S" in (tmp_path / "logs" / "llm_gateway.log").read_text().splitlines()[0]
    assert (tmp_path / "logs" / "previous" / "router.log").read_text() == first_run
    assert not (tmp_path / "logs" / "router.log").exists()  # never started this time


def test_a_second_runner_is_refused_at_once_and_touches_nothing_of_the_first(tmp_path):
    first = Runner(tmp_path)
    try:
        output = first.wait_for("Ctrl-C stops everything")
        port = rest_port(output)
        run, logs = tmp_path / "run", tmp_path / "logs"
        pid_files = {p.name: p.read_text() for p in run.glob("*.pid")}
        log_sizes = {p.name: p.stat().st_size for p in logs.glob("*.log")}
        began = time.monotonic()
        second = subprocess.run(
            [sys.executable, "-m", "deploy.local_mesh", "--data-dir", str(tmp_path), "--free-ports"],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "GATEWAY_API_KEYS": KEY},
        )
        elapsed = time.monotonic() - began
        assert second.returncode == 1
        message = second.stderr.strip().splitlines()[-1]
        assert message.startswith(f"could not start the mesh: a mesh is already running from {tmp_path}")
        assert f"pid {first.process.pid}" in message and f"http://localhost:{port}" in message
        # Refused before anything started: no process of its own, nothing moved.
        assert elapsed < 10, elapsed  # the interpreter's start-up, mostly; figures in the note
        assert {p.name: p.read_text() for p in run.glob("*.pid")} == pid_files
        assert not (logs / "previous").exists()
        assert all((logs / name).stat().st_size >= size for name, size in log_sizes.items())
        assert b"data: [DONE]" in stream(port)  # the first mesh still answers
    finally:
        assert first.stop() == 0
    # Once the first has stopped, the data directory is free again.
    again = Runner(tmp_path)
    try:
        again.wait_for("Ctrl-C stops everything")
    finally:
        assert again.stop() == 0


def _liveness(probe_port: int) -> str:
    """What the kubelet's liveness probe would see on the plaintext probe port."""
    with grpc.insecure_channel(f"127.0.0.1:{probe_port}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="liveness"), timeout=1
            )
        except grpc.RpcError as error:
            return error.code().name
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def test_a_stuck_event_loop_fails_liveness_and_the_process_is_replaced(tmp_path):
    # The test hook blocks a loop on SIGUSR2; a loop stuck 3 s ends its process.
    runner = Runner(tmp_path, LOOP_STALL_TEST_SIGNAL="1", LOOP_STALL_LIMIT_S="3")
    try:
        output = runner.wait_for("Ctrl-C stops everything")
        port, run = rest_port(output), tmp_path / "run"
        old_pid = int((run / "router.pid").read_text())
        probe_port = int((run / "router.port.probe").read_text())
        assert _liveness(probe_port) == "SERVING"
        os.kill(old_pid, signal.SIGUSR2)
        time.sleep(0.5)
        assert _liveness(probe_port) == "DEADLINE_EXCEEDED"  # alive, but answering nothing
        runner.wait_for("router stopped (exit code 70: event loop stuck", timeout_s=30)
        runner.wait_for("router restarted", timeout_s=30)
        new_pid = int((run / "router.pid").read_text())
        assert new_pid != old_pid
        deadline = time.monotonic() + 30
        while b"Edwina" not in stream(port) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert b"Edwina" in stream(port)
        # The log says where the loop stood, for whoever looks into it.
        stuck = [
            json.loads(line)
            for line in (tmp_path / "logs" / "router.log").read_text().splitlines()
            if "event loop stuck" in line
        ]
        assert len(stuck) == 1 and stuck[0]["level"] == "critical" and stuck[0]["stalled_s"] >= 3
        assert "services/runtime/server.py" in stuck[0]["stack"]
    finally:
        assert runner.stop() == 0


def test_a_new_store_is_dated_as_of_the_day_it_is_made(tmp_path):
    # As `make run` makes it on a new machine: no SAMPLE_DAY.
    before = date.today()
    runner = Runner(tmp_path, SAMPLE_DAY="")
    try:
        output = runner.wait_for("Ctrl-C stops everything")
        events = stream(rest_port(output)).split(b"\n\n")
        answer = "".join(
            json.loads(e[6:])["choices"][0]["delta"].get("content", "") for e in events if b'"content":"' in e
        )
    finally:
        assert runner.stop() == 0
    after = date.today()
    enrolled = date.fromisoformat(answer.split("Enrolled on: ", 1)[1][:10])
    days = int(answer.split("Days since enrollment: ", 1)[1].split()[0])
    following = date.fromisoformat(answer.split("Next subscription date: ", 1)[1][:10])
    # Dated as of the day it was made (the run may cross midnight).
    assert (enrolled + timedelta(days=days)) in (before, after)
    assert before < following <= after + timedelta(days=28)
