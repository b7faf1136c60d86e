"""AccessLog: the durable, append-only log of who looked at which
customer (SQLite in WAL mode on the service's volume, mode 0600). Rows are
never updated or deleted by the service; queries read by customer, by who,
by completion or by time, newest first.

Tamper-evident: each row carries `chain`, the HMAC-SHA256 (under a key
kept apart from the file, AUDIT_CHAIN_KEY_FILE) of the previous row's chain
and this row's every column, its id included. Whoever holds the file but
not the key cannot change, remove or insert a row, nor drop the triggers and
rewrite one, without `verify` naming the first row whose link is broken;
cutting rows off the end shows as a head older than the one the service
logged (`audit.head`)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import orjson

from services.runtime.customer_access import CustomerAccess
from services.runtime.faults import InvalidArgument

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
    request_id TEXT NOT NULL,
    chain TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS access_by_entity ON access(entity_id, id);
CREATE INDEX IF NOT EXISTS access_by_who ON access(who, id);
CREATE INDEX IF NOT EXISTS access_by_completion ON access(completion_id);
CREATE INDEX IF NOT EXISTS access_by_time ON access(at);
-- One record per request, completion, service, action and customer (see `append`).
CREATE INDEX IF NOT EXISTS access_by_request ON access(request_id, completion_id, recorded_by, action, entity_id);
-- Append-only: a row once written stays as it was.
CREATE TRIGGER IF NOT EXISTS access_no_update BEFORE UPDATE ON access
BEGIN SELECT RAISE(ABORT, 'the access log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS access_no_delete BEFORE DELETE ON access
BEGIN SELECT RAISE(ABORT, 'the access log is append-only'); END;
"""
COLUMNS = "at, who, tenant, recorded_by, entity_id, action, field_kinds, completion_id, request_id"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
GENESIS = "0" * 64  # the link before the first chained row
_ON_FILE = (
    "SELECT 1 FROM access WHERE request_id = ? AND completion_id = ? AND recorded_by = ? AND action = ? "
    "AND entity_id = ? LIMIT 1"
)
log = logging.getLogger("audit")


def link(key: bytes, previous: str, row_id: int, row: tuple[Any, ...]) -> str:
    """The chain value of one row: it follows from the previous row's."""
    message = orjson.dumps([previous, row_id, *row])
    return hmac.new(key, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Verdict:
    """What `verify` found: rows checked, the head, the first broken row."""

    rows: int
    head: str
    broken_at: int | None = None  # the id of the first row whose link does not follow
    unchained: int = 0  # rows written before the log was chained

    @property
    def intact(self) -> bool:
        return self.broken_at is None


@dataclass(frozen=True)
class AccessQuery:
    entity_id: str = ""
    who: str = ""
    completion_id: str = ""
    since: float = 0.0
    until: float = 0.0
    limit: int = DEFAULT_LIMIT
    older_than: int = 0  # only rows before this one (a page's cursor); 0: from the newest


class AccessPage(NamedTuple):
    """One page of matching records, newest first."""

    records: list[CustomerAccess]
    truncated: bool  # more match than this page holds
    older_than: int  # the cursor of the next page: the last row's id (0 on the last page)


_TOKEN_PREFIX = b"older-than:"
MAX_TOKEN_CHARS = 64


def page_token(older_than: int) -> str:
    """The opaque token a client passes back for the page after a row."""
    return base64.urlsafe_b64encode(_TOKEN_PREFIX + str(older_than).encode()).decode().rstrip("=")


def page_cursor(token: str) -> int:
    """The row a page token points after; 0 for no token."""
    if not token:
        return 0
    try:
        if len(token) > MAX_TOKEN_CHARS:
            raise ValueError
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        if not raw.startswith(_TOKEN_PREFIX) or not raw[len(_TOKEN_PREFIX) :].isdigit():
            raise ValueError
        cursor = int(raw[len(_TOKEN_PREFIX) :])
    except ValueError:
        raise InvalidArgument("page_token: not a token this log gave", field="page_token") from None
    if cursor < 1:
        raise InvalidArgument("page_token: not a token this log gave", field="page_token")
    return cursor


class AccessLog:
    def __init__(self, path: str, chain_key: bytes):
        self._key = chain_key  # services/audit/chain_key.py
        old_mask = os.umask(0o077)  # the file and its WAL: this user only
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL")
        finally:
            os.umask(old_mask)
        # FULL: a record the service acknowledged survives a power cut.
        self._db.execute("PRAGMA synchronous=FULL")
        if self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'access'").fetchone():
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(access)")}
            if "chain" not in columns:  # a log from before the chain: its rows stay, unchained
                self._db.execute("ALTER TABLE access ADD COLUMN chain TEXT NOT NULL DEFAULT ''")
        self._db.executescript(SCHEMA)
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.chmod(path + suffix, 0o600)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def append(self, entries: list[CustomerAccess], recorded_by: str) -> int:
        """Write the records in one transaction, stamped now and with the
        verified service that sent them; how many were new.

        A record of a request and completion already on file for the same
        service, action and customer is not written again. A sender that
        timed out resends a batch the log may already hold (its first call
        was only slow, or held up in a network that came back), and a call
        retried on another replica reads the same customer for the same
        answer again: either is one look, recorded once. A request asked
        again whole (another completion) is another look. Records without a
        request id are all kept."""
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
                rows = self._new(rows)
                if not rows:
                    self._db.execute("COMMIT")
                    return 0
                last = self._db.execute("SELECT id, chain FROM access ORDER BY id DESC LIMIT 1").fetchone()
                row_id, previous = (last[0], last[1] or GENESIS) if last else (0, GENESIS)
                chained = []
                for row in rows:
                    row_id += 1
                    previous = link(self._key, previous, row_id, row)
                    chained.append((row_id, *row, previous))
                self._db.executemany(
                    f"INSERT INTO access(id, {COLUMNS}, chain) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", chained
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        # The head, off the file: rows cut off the end show against it.
        log.info("audit.head", extra={"fields": {"rows": row_id, "head": previous}})
        return len(rows)

    def _new(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """The rows whose request, completion, service, action and customer
        are not on file yet (nor earlier in `rows`)."""
        seen: set[tuple[str, str, str, str, str]] = set()
        fresh = []
        for row in rows:
            _, _, _, recorded_by, entity_id, action, _, completion_id, request_id = row
            once = (request_id, completion_id, recorded_by, action, entity_id)
            if request_id and (once in seen or self._db.execute(_ON_FILE, once).fetchone()):
                continue
            seen.add(once)
            fresh.append(row)
        return fresh

    def verify(self) -> Verdict:
        """Walk the chain from the first row: the first row whose link does
        not follow from the one before (changed, removed, inserted)."""
        return verify_rows(self._db.execute(f"SELECT id, {COLUMNS}, chain FROM access ORDER BY id"), self._key)

    def query(self, query: AccessQuery) -> AccessPage:
        """A page of matching records, newest first; the next page is the
        same query with `older_than` set to this page's. Each page costs
        one index range scan however deep it is (no OFFSET)."""
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
        if query.older_than:
            where.append("id < ?")
            args.append(query.older_than)
        sql = f"SELECT id, {COLUMNS} FROM access"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(sql, (*args, limit + 1)).fetchall()
        page = rows[:limit]
        truncated = len(rows) > limit
        return AccessPage([_entry(row[1:]) for row in page], truncated, page[-1][0] if truncated else 0)


def _entry(row: tuple[Any, ...]) -> CustomerAccess:
    at, who, tenant, recorded_by, entity_id, action, kinds, completion_id, request_id = row
    entry = CustomerAccess(who, entity_id, action, tuple(k for k in kinds.split(",") if k))
    return replace(
        entry, tenant=tenant, recorded_by=recorded_by, completion_id=completion_id, request_id=request_id, at=at
    )


def verify_rows(rows: Iterable[tuple[Any, ...]], key: bytes) -> Verdict:
    previous, checked, unchained, expected_id = GENESIS, 0, 0, None
    for row_id, *columns, chain in rows:
        if not chain and checked == 0:
            unchained += 1  # written before the log was chained
            expected_id = row_id + 1
            continue
        if (expected_id is not None and row_id != expected_id) or chain != link(key, previous, row_id, tuple(columns)):
            return Verdict(checked, previous, broken_at=row_id, unchained=unchained)
        previous, checked, expected_id = chain, checked + 1, row_id + 1
    return Verdict(checked, previous, unchained=unchained)
