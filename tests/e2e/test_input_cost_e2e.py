"""One hostile message cannot stop the mesh: the worst inputs known for the
patterns that read a question (a run of letters with no space, of near-miss
e-mail addresses, of digits and separators, of card numbers), each as large
as the 4 MiB body allows, sent through Envoy and over gRPC while another
key's user chats on the same replicas. Every hostile request is answered
(or refused with OpenAI's error JSON) and the other user's turns all answer,
none waiting on the hostile one."""

from __future__ import annotations

import json
import statistics
import threading
import time

import grpc
import pytest
from tilores_x.v1 import common_pb2, router_pb2, router_pb2_grpc

from deploy.local_mesh import UNMETERED_KEY_LIMITS
from gateway.api_keys import add_key
from tests.e2e.conftest import http

pytestmark = pytest.mark.e2e

BODY_LIMIT = 4 * 1024 * 1024
QUESTION = "What is the credit score of edwina.hawthorne@example.com?"
# Each unit, repeated to fill a message: the shape one kind of pattern
# backtracks on. The last names a customer, so the whole text is masked.
HOSTILE = [
    "a",
    "a1.",
    "a@b.co ",
    "1 ",
    "+1 312 555 0142 ",
    "4111 1111 1111 1111 ",
    "Jane Doe ",
    "client id ",
]


def _chat(mesh, key: str, content: str) -> tuple[int, dict, float]:
    body = json.dumps({"model": "offline", "messages": [{"role": "user", "content": content}]}).encode()
    began = time.perf_counter()
    status, _, reply = http(
        "POST",
        f"{mesh.rest_url}/v1/chat/completions",
        body,
        {"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    return status, json.loads(reply), time.perf_counter() - began


def _filled(unit: str, size: int, prefix: str = "") -> str:
    return prefix + unit * ((size - len(prefix)) // len(unit))


@pytest.fixture(scope="module")
def keys(mesh):
    # Quotas would refuse the hostile key's megabytes of tokens; the test is
    # of what they cost once admitted.
    hostile = add_key(mesh.data_dir / "gateway-keys.yaml", "hostile", ["chat"], limits=UNMETERED_KEY_LIMITS)
    neighbour = add_key(mesh.data_dir / "gateway-keys.yaml", "neighbour", ["chat"], limits=UNMETERED_KEY_LIMITS)
    time.sleep(1.5)  # every gateway re-reads the key file within a second
    return hostile, neighbour


def _latencies(mesh, key: str, stop: threading.Event, out: list, errors: list) -> None:
    while not stop.is_set():
        status, reply, seconds = _chat(mesh, key, QUESTION)
        if status != 200 or "Edwina" not in reply["choices"][0]["message"]["content"]:
            errors.append((status, reply))
        out.append(seconds)


def test_the_worst_messages_are_answered_and_a_neighbour_is_not_starved(mesh, keys):
    hostile, neighbour = keys
    idle: list[float] = []
    for _ in range(20):
        status, _, seconds = _chat(mesh, neighbour, QUESTION)
        assert status == 200
        idle.append(seconds)
    during: list[float] = []
    errors: list = []
    stop = threading.Event()
    watcher = threading.Thread(target=_latencies, args=(mesh, neighbour, stop, during, errors))
    watcher.start()
    try:
        for unit in HOSTILE:
            # JSON adds 80 bytes around the content: the largest body Envoy takes.
            content = _filled(unit, BODY_LIMIT - 200, prefix=f"{QUESTION} " if unit == "client id " else "")
            status, reply, seconds = _chat(mesh, hostile, content)
            assert status == 200, (unit, reply)
            assert reply["choices"][0]["message"]["content"], unit
            assert seconds < 20, (unit, seconds)
    finally:
        stop.set()
        watcher.join()
    assert not errors, errors[:3]
    assert len(during) >= 5
    # The neighbour's turns take about what they take idle (a hostile
    # message costs each service well under a second of CPU, which a turn
    # sharing its loop may wait for once); a turn that waited on a
    # quadratic scan would take minutes.
    idle_p50, during_p50 = statistics.median(idle), statistics.median(during)
    figures = (
        f"idle p50 {idle_p50:.3f} s, max {max(idle):.3f} s; during p50 {during_p50:.3f} s, max {max(during):.3f} s"
    )
    assert during_p50 < 2 * idle_p50 + 0.1, figures
    assert max(during) < 5, figures


def test_a_body_over_the_limit_is_refused_with_openai_json(mesh, keys):
    hostile, _ = keys
    status, reply, _ = _chat(mesh, hostile, "a" * BODY_LIMIT)
    assert status == 413
    assert reply["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("unit", ["a", "a@b.co ", "1 "])
def test_a_router_chat_over_grpc_reads_a_3_mib_question_in_bounded_time(mesh, unit):
    with grpc.secure_channel(mesh.grpc_addr, mesh.client_credentials()) as channel:
        router = router_pb2_grpc.RouterServiceStub(channel)
        content = _filled(unit, 3 * 1024 * 1024)
        request = router_pb2.ChatRequest(
            model="offline", messages=[common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content=content)]
        )
        began = time.perf_counter()
        events = list(router.Chat(request, timeout=30))
        assert time.perf_counter() - began < 20
        assert events[-1].WhichOneof("event") in ("finish", "usage")
        text = "".join(e.delta for e in events if e.WhichOneof("event") == "delta")
        assert text
