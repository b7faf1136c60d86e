"""Several processes per service, as `make run REPLICAS=...` starts them:
Envoy and the peers' channels spread calls over the replicas, a replica
killed with SIGKILL under load loses no request that starts after it died
(streams that were on it end with an error event), and a replica stopped
with SIGTERM lets its streams finish."""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from dataclasses import dataclass, field

import pytest

from deploy.local_mesh import UNMETERED_KEY_LIMITS, LocalMesh, MeshError, parse_replicas
from deploy.topology import load_topology
from tests.e2e.conftest import API_KEY, SAMPLE_CUSTOMERS

pytestmark = pytest.mark.e2e

QUESTION = "What is the status and credit score of edwina.hawthorne@example.com?"
REPLICAS = {"router": 2, "llm_gateway": 2, "gateway": 2}


@pytest.fixture(scope="module")
def replicated(tmp_path_factory):
    mesh = LocalMesh(
        load_topology("deploy/topology.yaml"),
        tmp_path_factory.mktemp("replicated"),
        free_ports=True,
        api_key=API_KEY,
        grace_period_s=10.0,
        replicas=REPLICAS,
        # Tokens 5 ms apart: an answer streams for about a second and a half.
        env={"SAMPLE_CUSTOMERS": str(SAMPLE_CUSTOMERS), "OFFLINE_TOKEN_DELAY_MS": "5"},
        key_limits=UNMETERED_KEY_LIMITS,
    )
    mesh.start()
    yield mesh
    mesh.stop()


@dataclass
class Outcome:
    request_id: str
    started: float
    status: int = 0
    body: bytes = b""
    first_token: threading.Event = field(default_factory=threading.Event)

    @property
    def complete(self) -> bool:
        return self.status == 200 and self.body.rstrip().endswith(b"data: [DONE]") and b"Edwina" in self.body

    def error_event(self) -> dict | None:
        """The stream's closing error event, if it ended with one."""
        last = self.body.rstrip().rsplit(b"\n\n", 1)[-1]
        if not last.startswith(b"data: {"):
            return None
        event = json.loads(last[len(b"data: ") :])
        return event.get("error")


def stream_chat(mesh: LocalMesh, outcome: Outcome) -> Outcome:
    body = json.dumps({"model": "offline", "stream": True, "messages": [{"role": "user", "content": QUESTION}]})
    connection = http.client.HTTPConnection("127.0.0.1", mesh.envoy_ports["rest"], timeout=30)
    try:
        connection.request(
            "POST",
            "/v1/chat/completions",
            body,
            {
                "Authorization": f"Bearer {API_KEY}",
                "Content-Type": "application/json",
                "x-request-id": outcome.request_id,
            },
        )
        response = connection.getresponse()
        outcome.status = response.status
        while chunk := response.read1(65536):
            outcome.body += chunk
            if b'"content"' in outcome.body:
                outcome.first_token.set()
    except (OSError, http.client.HTTPException) as error:
        outcome.body += f"\n[client error: {error!r}]".encode()
    finally:
        connection.close()
        outcome.first_token.set()
    return outcome


def served_by(mesh: LocalMesh, instance: str, request_ids: set[str]) -> set[str]:
    """Request ids whose Chat call this instance logged."""
    found = set()
    for line in mesh.log_path(instance).read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("request_id") in request_ids and entry.get("event") in ("rpc", "http"):
            found.add(entry["request_id"])
    return found


def test_replica_counts_are_checked_against_the_topology():
    topology = load_topology("deploy/topology.yaml")
    assert parse_replicas("router=2 llm_gateway=3", topology) == {"router": 2, "llm_gateway": 3}
    assert parse_replicas("router=2,cache=2", topology) == {"router": 2, "cache": 2}
    for text, message in [
        ("routr=2", "unknown service 'routr'"),
        ("router=0", "router=0"),
        ("router", "service=count"),
        ("optimizer=7", "services.optimizer.max_replicas"),
    ]:
        with pytest.raises(MeshError, match=message):
            parse_replicas(text, topology)
    # Optimizer replicas share PostgreSQL or nothing.
    with pytest.raises(MeshError, match="optimizer=2 needs OPTIMIZER_DATABASE_URL"):
        parse_replicas("optimizer=2", topology, env={})
    assert parse_replicas("optimizer=2", topology, env={"OPTIMIZER_DATABASE_URL": "postgresql://h/db"}) == {
        "optimizer": 2
    }


def test_load_spreads_over_every_replica(replicated):
    outcomes = [Outcome(uuid.uuid4().hex, time.monotonic()) for _ in range(12)]
    threads = [threading.Thread(target=stream_chat, args=(replicated, o)) for o in outcomes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(o.complete for o in outcomes), [o.body[-200:] for o in outcomes if not o.complete]
    ids = {o.request_id for o in outcomes}
    for service, count in REPLICAS.items():
        shares = {name: len(served_by(replicated, name, ids)) for name in replicated.instances(service)}
        assert len(shares) == count
        # Each replica took part; round robin and least-request keep it near even.
        assert all(share >= 2 for share in shares.values()), (service, shares)


def test_sigterm_lets_a_replicas_streams_finish(replicated):
    outcomes = [Outcome(uuid.uuid4().hex, time.monotonic()) for _ in range(6)]
    threads = [threading.Thread(target=stream_chat, args=(replicated, o)) for o in outcomes]
    for thread in threads:
        thread.start()
    for outcome in outcomes:
        assert outcome.first_token.wait(30)
    code = replicated.stop_instance("router-2")  # SIGTERM, then waits for the drain
    for thread in threads:
        thread.join(60)
    try:
        assert code == 0
        on_stopped = served_by(replicated, "router-2", {o.request_id for o in outcomes})
        assert on_stopped, "no stream was on the stopped replica"
        assert all(o.complete for o in outcomes), [o.body[-200:] for o in outcomes if not o.complete]
        # The survivors take new calls while the replica is gone.
        after = stream_chat(replicated, Outcome(uuid.uuid4().hex, time.monotonic()))
        assert after.complete
    finally:
        replicated.restart("router-2")


@pytest.mark.parametrize("instance", ["router-2", "llm_gateway-2"])
def test_sigkill_under_load_loses_no_new_request(replicated, instance):
    outcomes: list[Outcome] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            outcome = Outcome(uuid.uuid4().hex, time.monotonic())
            outcomes.append(outcome)
            stream_chat(replicated, outcome)

    clients = [threading.Thread(target=client) for _ in range(4)]
    for thread in clients:
        thread.start()
    try:
        # Kill once the replica is in rotation again (a restarted one is
        # found by the callers' reconnect backoff), so streams are on it.
        deadline = time.monotonic() + 20
        while not served_by(replicated, instance, {o.request_id for o in outcomes}):
            assert time.monotonic() < deadline, f"{instance} took no calls"
            time.sleep(0.1)
        time.sleep(0.3)
        replicated.stop_instance(instance, kill=True)
        killed_at = time.monotonic()
        time.sleep(3.0)
    finally:
        stop.set()
        for thread in clients:
            thread.join(60)
    try:
        after = [o for o in outcomes if o.started > killed_at]
        before = [o for o in outcomes if o.started <= killed_at]
        assert len(after) >= 4
        assert all(o.complete for o in after), [o.body[-300:] for o in after if not o.complete]
        interrupted = [o for o in before if not o.complete]
        assert interrupted, "no stream was on the killed replica"
        for outcome in interrupted:
            # A clean end: the answer's HTTP status was 200, then one error
            # event and no [DONE], so a client knows the answer is cut short.
            assert outcome.status == 200
            error = outcome.error_event()
            assert error is not None, outcome.body[-300:]
            assert error["code"] in ("unavailable", "internal", "cancelled"), error
            assert b"[DONE]" not in outcome.body
    finally:
        replicated.restart(instance)
