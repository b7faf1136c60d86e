"""Peers that go away for a moment, as a deploy or a crash does it: every
turn answered has exactly one outcome in the optimizer's store, with its
feedback, when the optimizer or the router is SIGKILLed under load, and when
a router is killed holding outcomes the optimizer could not take; answers
find tilores_data again as soon as it is back."""

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
    return set(_outcome_rows(mesh, completion_ids))


def _outcome_rows(mesh, completion_ids: list[str]) -> dict[str, list[tuple]]:
    """Each completion id's rows in the optimizer's store: (version, feedback)."""
    rows: dict[str, list[tuple]] = {}
    with sqlite3.connect(mesh.data_dir / "optimizer.db") as db:
        for start in range(0, len(completion_ids), 500):
            chunk = completion_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT completion_id, version, feedback FROM outcomes WHERE completion_id IN ({marks})"
            for completion_id, version, feedback in db.execute(query, chunk):
                rows.setdefault(completion_id, []).append((version, feedback))
    return rows


class Load:
    """Four users chatting until stopped; the ids of the turns answered in full."""

    def __init__(self, mesh, customers):
        self.mesh, self.customers = mesh, customers
        self.answered: list[str] = []
        self.failed = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(4)
        self._workers = [self._pool.submit(self._chat, n) for n in range(4)]

    def _chat(self, n: int) -> None:
        with openai.OpenAI(base_url=f"{self.mesh.rest_url}/v1", api_key=API_KEY, max_retries=0) as client:
            while not self._stop.is_set():
                email = self.customers[n % SAMPLE_CUSTOMERS].records[0]["EMAIL"]
                n += 7
                try:
                    reply = client.chat.completions.create(
                        model="offline", messages=[{"role": "user", "content": f"What is the status of {email}?"}]
                    )
                except openai.APIError:  # the router itself was killed under this turn
                    with self._lock:
                        self.failed += 1
                    continue
                with self._lock:
                    self.answered.append(reply.id)

    def stop(self) -> list[str]:
        self._stop.set()
        for worker in self._workers:
            worker.result()
        self._pool.shutdown()
        with self._lock:
            return list(self.answered)


def _every_answer_has_exactly_one_outcome_with_its_feedback(mesh, ids: list[str]) -> None:
    deadline = time.monotonic() + 30
    while (missing := set(ids) - _recorded(mesh, ids)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not missing, f"{len(missing)} of {len(ids)} outcomes lost"
    # Feedback on every one of those turns finds its answer and is kept.
    for completion_id in ids:
        status, body = http_json(
            "POST", f"{mesh.rest_url}/v1/feedback", {"completion_id": completion_id, "rating": "up"}
        )
        assert status == 200, body
    rows = _outcome_rows(mesh, ids)
    assert {len(r) for r in rows.values()} == {1}  # no duplicates
    assert all(r[0][1] == 1 for r in rows.values())


def test_outcomes_survive_an_optimizer_killed_under_load(mesh, customers):
    load = Load(mesh, customers)
    time.sleep(1.0)
    mesh.restart("optimizer", kill=True)  # SIGKILL: no goodbye, then a new process
    time.sleep(1.0)
    ids = load.stop()
    assert len(ids) > 20 and load.failed == 0
    _every_answer_has_exactly_one_outcome_with_its_feedback(mesh, ids)


def test_outcomes_survive_a_router_killed_under_load(mesh, customers):
    load = Load(mesh, customers)
    time.sleep(1.0)
    mesh.restart("router", kill=True)  # the outcomes it held are on disk; the new process sends them
    time.sleep(1.0)
    ids = load.stop()
    assert len(ids) > 20
    _every_answer_has_exactly_one_outcome_with_its_feedback(mesh, ids)


def test_outcomes_a_killed_router_held_while_the_optimizer_was_away_are_delivered(mesh, customers):
    # The optimizer gone: turns are answered (with the prompt the router
    # keeps, or the fallback), and their outcomes can only wait in its spool.
    mesh.stop_instance("optimizer", kill=True)
    try:
        with openai.OpenAI(base_url=f"{mesh.rest_url}/v1", api_key=API_KEY, max_retries=0) as client:
            ids = [
                client.chat.completions.create(
                    model="offline",
                    messages=[{"role": "user", "content": f"Status of {c.records[0]['EMAIL']}?"}],
                ).id
                for c in customers[100:115]
            ]
        spooled = list((mesh.data_dir / "spool" / "router").glob("outcomes-*.spool"))
        assert spooled and sum(p.stat().st_size for p in spooled) > 0
        mesh.restart("router", kill=True)  # SIGKILL while it holds all 15
    finally:
        mesh.restart("optimizer")
    _every_answer_has_exactly_one_outcome_with_its_feedback(mesh, ids)


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


def test_access_records_a_killed_router_held_while_the_audit_service_was_away_are_kept(mesh):
    mesh.stop_instance("audit", kill=True)
    try:
        with openai.OpenAI(base_url=f"{mesh.rest_url}/v1", api_key=API_KEY, max_retries=0) as client:
            reply = client.chat.completions.create(
                model="offline",
                messages=[{"role": "user", "content": "What is the credit score of edwina.hawthorne@example.com?"}],
            )
        assert "Edwina Hawthorne" in reply.choices[0].message.content
        mesh.restart("router", kill=True)  # the record of that look is only on the router's disk now
    finally:
        mesh.restart("audit")
    deadline = time.monotonic() + 20
    while True:
        status, body = http_json("GET", f"{mesh.rest_url}/v1/access-log?completion_id={reply.id}", key=mesh.admin_key)
        assert status == 200, body
        turns = [r for r in body["data"] if r["action"] == "chat.turn"]
        if turns or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(turns) == 1 and turns[0]["recorded_by"] == "service/router", body
