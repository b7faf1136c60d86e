"""The optimizer's PostgreSQL store against a real server: versioned
migrations applied once, replicas writing at once, a writer killed in the
middle of a change, one leader for the scheduled decisions, decisions taken
once, and a lost server reported as UNAVAILABLE and survived."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading

import psycopg
import pytest

from services.optimizer.experiments import Experiments
from services.optimizer.prompts import PromptRegistry
from services.optimizer.storage.postgres import DEAD_PEER_SETTINGS, WRITE_LOCK, PostgresStore
from services.optimizer.storage.schema import MIGRATIONS
from services.runtime.faults import Unavailable

TEMPLATE = "Answer from the data only.\n\n{context}"


@pytest.fixture
def stores(postgres_url):
    opened: list[PostgresStore] = []

    def make() -> PostgresStore:
        opened.append(PostgresStore(postgres_url))
        return opened[-1]

    yield make
    for store in opened:
        store.close()


def at_once(*calls) -> list[BaseException]:
    """Run each call on its own thread, all at once; what they raised."""
    errors: list[BaseException] = []

    def run(call) -> None:
        try:
            call()
        except BaseException as error:  # collected, then asserted on
            errors.append(error)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_migrations_are_versioned_and_applied_once_by_replicas_starting_together(postgres_url):
    started: list[PostgresStore] = []
    assert at_once(*[lambda: started.append(PostgresStore(postgres_url))] * 3) == []
    latest = max(version for version, _, _ in MIGRATIONS)
    rows = started[0].query("SELECT version, description FROM schema_migrations ORDER BY version")
    assert rows == [(version, description) for version, description, _ in MIGRATIONS]
    assert all(store.schema_version() == latest for store in started)
    # A store opened later finds nothing to do.
    assert started[0].migrate() == []
    for store in started:
        store.close()


def test_two_replicas_recording_the_same_and_different_outcomes_count_each_once(stores):
    a, b = stores(), stores()
    PromptRegistry(a)

    def replica(store: PostgresStore, name: str) -> None:
        experiments = Experiments(store, PromptRegistry(store))
        for i in range(150):
            experiments.record(f"{name}-{i}", "customer", 1, score=0.9)
            experiments.record(f"both-{i}", "customer", 1, score=0.8)  # a retried delivery, to either

    assert at_once(lambda: replica(a, "a"), lambda: replica(b, "b")) == []
    assert a.query("SELECT COUNT(*), COUNT(DISTINCT completion_id) FROM outcomes") == [(450, 450)]


def test_a_writer_killed_mid_change_leaves_nothing_and_blocks_no_one(stores, postgres_url):
    survivor = stores()
    PromptRegistry(survivor)
    # A replica that has written three outcomes in its open transaction, then dies.
    script = textwrap.dedent(
        f"""
        import sys, time
        from services.optimizer.storage.postgres import DEAD_PEER_SETTINGS, WRITE_LOCK, PostgresStore
        store = PostgresStore({postgres_url!r})
        with store.transaction() as db:
            for n in range(3):
                db.execute(
                    "INSERT INTO outcomes(completion_id, prompt, version, at) VALUES (:id, 'customer', 1, 0)",
                    id=f"doomed-{{n}}",
                )
            print("written", flush=True)
            time.sleep(60)
        """
    )
    writer = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=os.getcwd(), env=os.environ.copy()
    )
    try:
        assert writer.stdout.readline().strip() == "written"
        writer.send_signal(signal.SIGKILL)
        assert writer.wait(timeout=10) == -signal.SIGKILL
    finally:
        if writer.poll() is None:
            writer.kill()
    # The survivor takes the write lock the dead replica held, and writes.
    Experiments(survivor, PromptRegistry(survivor)).record("after-1", "customer", 1, score=0.9)
    assert survivor.query("SELECT completion_id FROM outcomes ORDER BY id") == [("after-1",)]


def test_one_replica_leads_and_the_next_takes_over_when_it_is_gone(stores):
    first, second = stores(), stores()
    assert first.leadership() is True
    assert first.leadership() is True  # asked again: still the leader
    assert second.leadership() is False
    first.close()  # the leader's session ends (a pod gone)
    assert second.leadership() is True


def test_an_experiments_decision_is_taken_once_by_replicas_recording_at_once(stores):
    a, b = stores(), stores()
    registry = PromptRegistry(a)
    candidate = registry.create("customer", TEMPLATE + "\nBe brief.").version
    experiment = Experiments(a, registry).start(
        "customer", [(1, 1.0), (candidate, 1.0)], min_samples=20, auto_promote=True
    )
    decisions: list = []

    def replica(store: PostgresStore, name: str) -> None:
        experiments = Experiments(store, PromptRegistry(store))
        for i in range(40):
            for version, score in ((1, 0.5 + 0.01 * (i % 3)), (candidate, 0.95 + 0.01 * (i % 3))):
                decision = experiments.record(f"{name}-{version}-{i}", "customer", version, experiment.id, score=score)
                if decision is not None and decision.action == "promote":
                    decisions.append(decision)

    assert at_once(lambda: replica(a, "a"), lambda: replica(b, "b")) == []
    assert len(decisions) == 1
    ended = Experiments(a, registry).get(experiment.id)
    assert ended.state == "promoted"
    assert registry.active("customer").version == candidate
    activations = [
        row for row in registry.history("customer") if row.action == "activated" and row.version == candidate
    ]
    assert len(activations) == 1


def test_a_lost_server_is_unavailable_then_the_store_reconnects(stores, postgres_url):
    store = stores()
    assert store.query("SELECT 1") == [(1,)]
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
    with pytest.raises(Unavailable, match="unreachable; nothing was changed"):
        store.query("SELECT 1")
    assert store.query("SELECT 1") == [(1,)]
    with store.transaction() as db:
        db.execute("INSERT INTO learning(pattern, wins, losses) VALUES (:pattern, 1, 0)", pattern="brief")
    assert store.query("SELECT pattern, wins FROM learning") == [("brief", 1)]


def test_a_writer_gone_silent_holding_the_write_lock_stops_other_replicas_for_seconds_not_hours(stores, postgres_url):
    """A replica whose host vanished mid-change holds the write lock with
    its session open and silent: the others wait at most their lock timeout
    (UNAVAILABLE, retried by their callers), and the server ends the silent
    session's transaction, freeing the lock."""
    store = stores()
    registry = PromptRegistry(store)
    silent = psycopg.connect(postgres_url, autocommit=True, options=DEAD_PEER_SETTINGS["options"])
    silent.execute("BEGIN")
    silent.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
    with pytest.raises(Unavailable):
        registry.create("waits", TEMPLATE)
    # idle_in_transaction_session_timeout: the server ends the silent session.
    for _ in range(200):
        try:
            registry.create("after", TEMPLATE)
            break
        except Unavailable:
            continue
    assert registry.active("after").version == 1
    with pytest.raises(psycopg.errors.IdleInTransactionSessionTimeout):
        silent.execute("SELECT 1")
    names = ("lock_timeout", "idle_in_transaction_session_timeout", "tcp_keepalives_idle", "tcp_user_timeout")
    settings = dict(store.query(f"SELECT name, setting FROM pg_settings WHERE name IN {names}"))
    assert settings == {
        "lock_timeout": "5000",
        "idle_in_transaction_session_timeout": "10000",
        "tcp_keepalives_idle": "2",
        "tcp_user_timeout": "5000",
    }
