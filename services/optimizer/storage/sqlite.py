"""SqliteStore: the embedded store, the default. One SQLite file (WAL),
one connection under a lock; a change is BEGIN IMMEDIATE, so another
process writing the same file queues instead of failing. The file has
one process, so this replica always leads."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from services.optimizer.storage.statement import Statement
from services.optimizer.storage.store import Connection, OptimizerStore

# Columns a file written before the schema had versions may lack, added
# before the migrations run: (table, column, declaration).
_UNVERSIONED_GAPS = (
    ("outcomes", "weakest", "TEXT NOT NULL DEFAULT ''"),
    ("outcomes", "judge_score", "DOUBLE PRECISION"),
    ("outcomes", "judge_reason", "TEXT NOT NULL DEFAULT ''"),
    ("outcomes", "mode", "TEXT NOT NULL DEFAULT ''"),
    ("prompt_versions", "variables", "TEXT NOT NULL DEFAULT '[]'"),
    ("prompt_versions", "note", "TEXT NOT NULL DEFAULT ''"),
    ("prompt_audit", "actor", "TEXT NOT NULL DEFAULT ''"),
    ("experiments", "started_by", "TEXT NOT NULL DEFAULT ''"),
)


class SqliteStore(OptimizerStore):
    """The embedded store: one SQLite file, one process."""

    dialect = "sqlite"

    def __init__(self, path: str):
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._lock = threading.RLock()
        self._fill_unversioned_gaps()
        self.migrate()

    def _fill_unversioned_gaps(self) -> None:
        with self.transaction() as db:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()}
            if "schema_migrations" in tables:
                return
            for table, column, declaration in _UNVERSIONED_GAPS:
                if table not in tables:
                    continue
                if column not in {row[1] for row in db.execute(f"PRAGMA table_info({table})").fetchall()}:
                    db.script(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One change, all or nothing."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield Connection(self._db, self.dialect)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    # The file's write lock is the schema's lock too.
    _migrating = transaction

    def query(self, statement: Statement | str, /, **params: object) -> list[tuple[Any, ...]]:
        with self._lock:
            return Connection(self._db, self.dialect).execute(statement, **params).fetchall()

    def leadership(self) -> bool:
        return True
