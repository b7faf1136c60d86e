"""bench/floor_chain.py, the chain `make bench` measures the mesh against:
through Envoy and its three hops it relays the upstream's answer whole, in
order and as OpenAI SSE, and its processes stop when asked."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

import pytest

from bench.floor_chain import FloorChain
from deploy.topology import load_topology
from tests.emulators.openai_api import OpenAIEmulator

pytestmark = pytest.mark.e2e
WORDS = 40


@pytest.fixture
def chain(tmp_path):
    url_file = tmp_path / "upstream"
    emulator = subprocess.Popen(
        [sys.executable, "-m", "tests.emulators.openai_api", "--url-file", str(url_file), "--words", str(WORDS),
         "--first-token-ms", "5", "--chunk-delay-ms", "1"]
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not url_file.exists():
            assert time.monotonic() < deadline, "the upstream emulator did not start"
            time.sleep(0.02)
        floor = FloorChain(
            load_topology("deploy/topology.yaml"), tmp_path / "certs", tmp_path / "run", url_file.read_text(),
            OpenAIEmulator.api_key,
        )  # fmt: skip
        floor.start()
        try:
            yield floor
        finally:
            floor.stop()
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)


def test_the_floor_relays_the_upstreams_answer_whole_as_openai_sse(chain):
    body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "Hello?"}]}
    request = urllib.request.Request(
        f"{chain.rest_url}/v1/chat/completions",
        json.dumps(body).encode(),
        {"Content-Type": "application/json"},
    )
    for _ in range(3):
        with urllib.request.urlopen(request, timeout=30) as reply:
            assert reply.status == 200 and reply.headers["Content-Type"].startswith("text/event-stream")
            events = [e for e in reply.read().decode().split("\n\n") if e]
        assert events[-1] == "data: [DONE]"
        chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
        assert all(c["object"] == "chat.completion.chunk" for c in chunks)
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
        assert text == " ".join(f"word{n}" for n in range(WORDS))
        assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert set(chain.processes) == {"model", "router", "edge", "envoy"}
    processes = list(chain.processes.values())
    chain.stop()
    assert all(p.poll() is not None for p in processes)
