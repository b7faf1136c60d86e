"""PostgresStore: the optimizer's store shared by several replicas.

Each change is one transaction that first takes a transaction-level
advisory lock, so writers from every replica go one at a time, as they do
on the embedded SQLite file: a version number, an alert's cooldown or an
experiment's state is read and written by one replica at a time, and an
outcome is recorded once whichever replica receives it (its completion id
is unique). A replica killed mid-change leaves nothing: PostgreSQL rolls
back the open transaction when its connection drops.

Leadership is a session-level advisory lock on a connection of its own:
the replica holding it runs the scheduled quality checks and improvement
cycles; when it dies, its session ends, the lock is free, and the next
replica to ask takes it.

Migrations (services/optimizer/storage/schema.py) run under an advisory
lock of their own, so replicas starting together migrate once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from services.optimizer.storage.statement import Statement
from services.optimizer.storage.store import Connection, OptimizerStore
from services.runtime.faults import Unavailable

log = logging.getLogger("optimizer.storage")

# Either end of a connection may vanish with its host. This side: keepalive
# probes after 2 s of silence and sent data unacknowledged for 5 s end the
# connection (the call fails UNAVAILABLE and is retried; the next opens a
# new connection) instead of waiting minutes on TCP. The server's side, set
# for this session: it probes the same way, ends a transaction left open
# for 10 s (a replica that vanished holding the write lock would otherwise
# stop every other replica's writes until its session timed out, hours by
# default), and a writer waits at most 5 s for the write lock.
DEAD_PEER_SETTINGS: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 2,
    "keepalives_interval": 1,
    "keepalives_count": 3,
    "tcp_user_timeout": 5_000,
    "options": " ".join(
        f"-c {name}={value}"
        for name, value in (
            ("tcp_keepalives_idle", 2),
            ("tcp_keepalives_interval", 1),
            ("tcp_keepalives_count", 3),
            ("tcp_user_timeout", 5_000),
            ("idle_in_transaction_session_timeout", 10_000),
            ("lock_timeout", 5_000),
        )
    ),
}

# Advisory lock keys of this schema (any 64-bit numbers, fixed).
WRITE_LOCK = 0x7469_6C6F_7265_7301
MIGRATION_LOCK = 0x7469_6C6F_7265_7302
LEADER_LOCK = 0x7469_6C6F_7265_7303


@contextmanager
def _unavailable_when_down() -> Iterator[None]:
    """A lost server is UNAVAILABLE to the caller, who may try again (the
    router's outbox does); nothing of the change was kept."""
    try:
        yield
    except psycopg.OperationalError as error:
        log.warning("storage.unavailable", extra={"fields": {"error": type(error).__name__}})
        raise Unavailable("the optimizer's database is unreachable; nothing was changed") from None


class PostgresStore(OptimizerStore):
    dialect = "postgres"

    def __init__(self, url: str, connect_timeout_s: float = 10.0):
        self._url = url
        self._timeout = connect_timeout_s
        self._lock = threading.RLock()
        self._conn = self._connect()
        self._leader_conn: psycopg.Connection | None = None
        self.migrate()

    def _connect(self) -> psycopg.Connection:
        return psycopg.connect(
            self._url, autocommit=True, connect_timeout=max(1, int(self._timeout)), **DEAD_PEER_SETTINGS
        )

    def _connection(self) -> psycopg.Connection:
        """The connection, opened again if the server dropped it (a
        restart, a failover); the call that found it broken has failed."""
        if self._conn.closed or self._conn.broken:
            log.warning("storage.reconnect")
            self._conn = self._connect()
        return self._conn

    @contextmanager
    def _migrating(self) -> Iterator[Connection]:
        with self._lock:
            conn = self._connection()
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                yield Connection(conn, self.dialect)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self._lock, _unavailable_when_down():
            conn = self._connection()
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                yield Connection(conn, self.dialect)

    def query(self, statement: Statement | str, /, **params: object) -> list[tuple[Any, ...]]:
        with self._lock, _unavailable_when_down():
            return Connection(self._connection(), self.dialect).execute(statement, **params).fetchall()

    def leadership(self) -> bool:
        with self._lock:
            try:
                if self._leader_conn is not None and not self._leader_conn.closed:
                    self._leader_conn.execute("SELECT 1")  # still ours while the session lives
                    return True
            except psycopg.Error:
                self._drop_leadership()
            try:
                conn = self._leader_conn = self._connect()
                row = conn.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK,)).fetchone()
            except psycopg.Error:
                self._drop_leadership()
                return False
            if row is None or not row[0]:
                self._drop_leadership()
                return False
            log.info("storage.leader")
            return True

    def _drop_leadership(self) -> None:
        if self._leader_conn is not None:
            self._leader_conn.close()
        self._leader_conn = None

    def close(self) -> None:
        with self._lock:
            self._drop_leadership()
            self._conn.close()
