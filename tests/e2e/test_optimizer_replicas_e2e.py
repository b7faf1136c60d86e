"""Two optimizer processes on one PostgreSQL database, as Kubernetes runs
them: chat turns through Envoy record their outcomes on both at once, one
is killed with SIGKILL while outcomes stream in, and every answer's outcome
is in the database exactly once; the scheduled checks run on one replica,
and the other takes them over when it dies."""

from __future__ import annotations

import json
import threading
import time

import psycopg
import pytest

from deploy.local_mesh import UNMETERED_KEY_LIMITS, LocalMesh
from deploy.topology import load_topology
from tests.e2e.conftest import API_KEY, SAMPLE_CUSTOMERS, http

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def database(postgres) -> str:
    return postgres.create_database("mesh_optimizer")


@pytest.fixture(scope="module")
def two_optimizers(tmp_path_factory, database):
    mesh = LocalMesh(
        load_topology("deploy/topology.yaml"),
        tmp_path_factory.mktemp("optimizers"),
        free_ports=True,
        api_key=API_KEY,
        grace_period_s=10.0,
        replicas={"optimizer": 2},
        env={
            "SAMPLE_CUSTOMERS": str(SAMPLE_CUSTOMERS),
            "OPTIMIZER_DATABASE_URL": database,
            "QUALITY_CHECK_INTERVAL_S": "0.5",
            "ROUTER_PROMPT_TTL_S": "0",
        },
        key_limits=UNMETERED_KEY_LIMITS,
    )
    mesh.start()
    yield mesh
    mesh.stop()


def ask(mesh: LocalMesh, n: int) -> str:
    """One whole chat turn; its completion id."""
    body = {
        "model": "offline",
        "messages": [{"role": "user", "content": f"What is the status of client id 2480135? ({n})"}],
    }
    status, _, payload = http(
        "POST",
        f"{mesh.rest_url}/v1/chat/completions",
        json.dumps(body).encode(),
        {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
    )
    assert status == 200, payload[:300]
    return json.loads(payload)["id"]


def recorded(database: str, ids: list[str]) -> dict[str, int]:
    with psycopg.connect(database) as conn:
        rows = conn.execute(
            "SELECT completion_id, COUNT(*) FROM outcomes WHERE completion_id = ANY(%s) GROUP BY completion_id", (ids,)
        ).fetchall()
    return dict(rows)


def leaders(mesh: LocalMesh) -> list[str]:
    """The optimizer replicas that have logged taking the leader lock."""
    found = []
    for name in mesh.instances("optimizer"):
        for line in mesh.log_path(name).read_text(errors="replace").splitlines():
            if '"storage.leader"' in line:
                found.append(name)
                break
    return found


def test_one_replica_runs_the_scheduled_checks_and_the_other_takes_over(two_optimizers):
    mesh = two_optimizers
    deadline = time.monotonic() + 20
    while not leaders(mesh) and time.monotonic() < deadline:
        time.sleep(0.2)
    first = leaders(mesh)  # the mesh has just started: no replica has died yet
    assert len(first) == 1, first
    time.sleep(2.0)  # several checks later: still one leader
    assert leaders(mesh) == first
    other = next(name for name in mesh.instances("optimizer") if name not in first)
    mesh.stop_instance(first[0], kill=True)
    try:
        deadline = time.monotonic() + 20
        while other not in leaders(mesh) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert other in leaders(mesh)
    finally:
        mesh.restart(first[0])


def outcome_calls(mesh: LocalMesh, name: str) -> int:
    """RecordOutcomes calls a replica has served, by its log."""
    text = mesh.log_path(name).read_text(errors="replace")
    return text.count('"method":"/tilores_x.v1.OptimizerService/RecordOutcomes","code":"OK"')


def test_outcomes_from_both_replicas_survive_one_killed_mid_stream_each_once(two_optimizers, database):
    mesh = two_optimizers
    ids: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def agent(worker: int) -> None:
        n = 0
        try:
            while not stop.is_set():
                ids.append(ask(mesh, worker * 10_000 + n))
                n += 1
        except BaseException as error:  # collected, then asserted on
            errors.append(error)

    agents = [threading.Thread(target=agent, args=(w,)) for w in range(4)]
    for thread in agents:
        thread.start()
    try:
        deadline = time.monotonic() + 20
        while not (outcome_calls(mesh, "optimizer") and outcome_calls(mesh, "optimizer-2")):
            assert time.monotonic() < deadline, "the outcomes did not reach both replicas"
            time.sleep(0.1)
        # Both replicas are taking outcomes now: one dies in the middle of it.
        assert mesh.stop_instance("optimizer-2", kill=True) != 0
        time.sleep(3.0)
    finally:
        stop.set()
        for thread in agents:
            thread.join(60)
    try:
        assert errors == []
        assert len(ids) >= 20
        # The router's outbox delivers what the dead replica did not take to the live one.
        deadline = time.monotonic() + 30
        while (found := recorded(database, ids)).keys() != set(ids) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert set(found) == set(ids), f"{len(set(ids) - set(found))} of {len(ids)} outcomes lost"
        assert set(found.values()) == {1}
    finally:
        mesh.restart("optimizer-2")
