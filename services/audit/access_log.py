"""AccessLog: the durable, append-only log of who looked at which
customer (SQLite in WAL mode on the service's volume). Rows are never
updated or deleted by the service; queries read by customer, by who, by
completion or by time, newest first."""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass, replace

from services.runtime.customer_access import CustomerAccess

SCHEMA = """
CREATE TABLE IF NOT EXISTS access (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    who TEXT NOT NULL,
    tenant TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    action TEXT NOT NULL,
    field_kinds TEXT NOT NULL,
    completion_id TEXT NOT NULL,
    request_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS access_by_entity ON access(entity_id, id);
CREATE INDEX IF NOT EXISTS access_by_who ON access(who, id);
CREATE INDEX IF NOT EXISTS access_by_completion ON access(completion_id);
CREATE INDEX IF NOT EXISTS access_by_time ON access(at);
-- Append-only: a row once written stays as it was.
CREATE TRIGGER IF NOT EXISTS access_no_update BEFORE UPDATE ON access
BEGIN SELECT RAISE(ABORT, 'the access log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS access_no_delete BEFORE DELETE ON access
BEGIN SELECT RAISE(ABORT, 'the access log is append-only'); END;
"""
COLUMNS = "at, who, tenant, recorded_by, entity_id, action, field_kinds, completion_id, request_id"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@dataclass(frozen=True)
class AccessQuery:
    entity_id: str = ""
    who: str = ""
    completion_id: str = ""
    since: float = 0.0
    until: float = 0.0
    limit: int = DEFAULT_LIMIT


class AccessLog:
    def __init__(self, path: str):
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a record the service acknowledged survives a power cut.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def append(self, entries: list[CustomerAccess], recorded_by: str) -> int:
        """Write the records in one transaction, stamped now and with the
        verified service that sent them."""
        now = time.time()
        rows = [
            (
                now,
                e.who,
                e.tenant,
                recorded_by or e.recorded_by,
                e.entity_id,
                e.action,
                ",".join(e.field_kinds),
                e.completion_id,
                e.request_id,
            )
            for e in entries
        ]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(f"INSERT INTO access({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return len(rows)

    def query(self, query: AccessQuery) -> tuple[list[CustomerAccess], bool]:
        """Matching records, newest first, and whether more match."""
        limit = min(max(query.limit or DEFAULT_LIMIT, 1), MAX_LIMIT)
        where, args = [], []
        for column in ("entity_id", "who", "completion_id"):
            if getattr(query, column):
                where.append(f"{column} = ?")
                args.append(getattr(query, column))
        if query.since:
            where.append("at >= ?")
            args.append(query.since)
        if query.until:
            where.append("at < ?")
            args.append(query.until)
        sql = f"SELECT {COLUMNS} FROM access"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(sql, (*args, limit + 1)).fetchall()
        records = [_entry(row) for row in rows[:limit]]
        return records, len(rows) > limit


def _entry(row: tuple) -> CustomerAccess:
    at, who, tenant, recorded_by, entity_id, action, kinds, completion_id, request_id = row
    entry = CustomerAccess(who, entity_id, action, tuple(k for k in kinds.split(",") if k))
    return replace(
        entry, tenant=tenant, recorded_by=recorded_by, completion_id=completion_id, request_id=request_id, at=at
    )
