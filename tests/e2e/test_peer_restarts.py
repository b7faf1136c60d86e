"""Peers that go away for a moment, as a deploy or a crash does it: turn
outcomes survive an optimizer restart (and feedback on those turns works),
and answers find tilores_data again as soon as it is back."""

from __future__ import annotations

import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import openai
import pytest
from tilores_x.v1 import optimizer_pb2, optimizer_pb2_grpc

from tests.e2e.conftest import API_KEY, SAMPLE_CUSTOMERS, http_json, start_local_mesh

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    # Tokens 2 ms apart: each answer streams for a fraction of a second.
    mesh = start_local_mesh(tmp_path_factory.mktemp("restarts"), OFFLINE_TOKEN_DELAY_MS="2")
    yield mesh
    mesh.stop()


def _recorded(mesh, completion_ids: list[str]) -> set[str]:
    with sqlite3.connect(mesh.data_dir / "optimizer.db") as db:
        marks = ",".join("?" * len(completion_ids))
        rows = db.execute(f"SELECT completion_id FROM outcomes WHERE completion_id IN ({marks})", completion_ids)
        return {row[0] for row in rows}


def test_outcomes_survive_an_optimizer_restart(mesh, customers):
    answered: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def chat(n: int) -> None:
        with openai.OpenAI(base_url=f"{mesh.rest_url}/v1", api_key=API_KEY, max_retries=0) as client:
            while not stop.is_set():
                email = customers[n % SAMPLE_CUSTOMERS].records[0]["EMAIL"]
                reply = client.chat.completions.create(
                    model="offline", messages=[{"role": "user", "content": f"What is the status of {email}?"}]
                )
                with lock:
                    answered.append(reply.id)
                n += 7

    with ThreadPoolExecutor(4) as pool:
        workers = [pool.submit(chat, n) for n in range(4)]
        time.sleep(1.0)
        mesh.restart("optimizer", kill=True)  # SIGKILL: no goodbye, then a new process
        time.sleep(1.0)
        stop.set()
        for worker in workers:
            worker.result()
    with lock:
        ids = list(answered)
    assert len(ids) > 20
    deadline = time.monotonic() + 20
    while (missing := set(ids) - _recorded(mesh, ids)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not missing, f"{len(missing)} of {len(ids)} outcomes lost"
    # Feedback on every one of those turns finds its answer.
    for completion_id in ids[:: max(1, len(ids) // 10)]:
        status, body = http_json(
            "POST", f"{mesh.rest_url}/v1/feedback", {"completion_id": completion_id, "rating": "up"}
        )
        assert status == 200, body


def test_recording_an_outcome_twice_keeps_its_feedback(mesh):
    with openai.OpenAI(base_url=f"{mesh.rest_url}/v1", api_key=API_KEY, max_retries=0) as client:
        reply = client.chat.completions.create(
            model="offline", messages=[{"role": "user", "content": "Status of client id 2480135?"}]
        )
    deadline = time.monotonic() + 10
    while not _recorded(mesh, [reply.id]) and time.monotonic() < deadline:
        time.sleep(0.05)
    status, _ = http_json("POST", f"{mesh.rest_url}/v1/feedback", {"completion_id": reply.id, "rating": "down"})
    assert status == 200
    # A delivery repeated after a lost reply, straight to the optimizer.
    with grpc.secure_channel(mesh.grpc_addr, mesh.client_credentials()) as channel:
        optimizer_pb2_grpc.OptimizerServiceStub(channel).RecordOutcome(
            optimizer_pb2.RecordOutcomeRequest(completion_id=reply.id, prompt="customer", version=1, error=True),
            timeout=5,
        )
    with sqlite3.connect(mesh.data_dir / "optimizer.db") as db:
        feedback, error = db.execute(
            "SELECT feedback, error FROM outcomes WHERE completion_id = ?", (reply.id,)
        ).fetchone()
    assert (feedback, error) == (0, 0)


def test_answers_find_tilores_data_as_soon_as_it_is_back(mesh, customers):
    mesh.restart("tilores_data")  # SIGTERM, then a new process on the same port, awaited until SERVING
    # Customers no turn has asked about, so nothing comes from a cache.
    with openai.OpenAI(base_url=f"{mesh.rest_url}/v1", api_key=API_KEY, max_retries=0) as client:
        for customer in customers[250:253]:
            contact = customer.records[0]
            reply = client.chat.completions.create(
                model="offline",
                messages=[{"role": "user", "content": f"What is the status of client id {contact['CLIENT_ID']}?"}],
            )
            answer = reply.choices[0].message.content
            assert "unavailable" not in answer
            assert f"{contact['FIRST_NAME']} {contact['LAST_NAME']}" in answer
