"""What the optimizer keeps, behind one small surface: `transaction()` (one
change, all or nothing, writers one at a time), `query()`, and
`leadership()` (whether this replica runs the scheduled decisions). The
SQL the optimizer's modules write is the part of SQL that SQLite and
PostgreSQL share, with `?` for parameters.

`OptimizerStorage` is the embedded store: one SQLite file (WAL, one
connection under a lock), the default. `PostgresStorage`
(services/optimizer/postgres_storage.py) is the store several replicas
share."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import orjson

SCHEMA = """
CREATE TABLE IF NOT EXISTS prompt_versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    template TEXT NOT NULL,
    created_at REAL NOT NULL,
    variables TEXT NOT NULL DEFAULT '[]',
    note TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS active_prompts (name TEXT PRIMARY KEY, version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS prompt_audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    name TEXT NOT NULL,
    action TEXT NOT NULL,
    version INTEGER NOT NULL,
    previous_version INTEGER,
    detail TEXT NOT NULL DEFAULT '',
    actor TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS experiments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    prompt TEXT NOT NULL,
    salt TEXT NOT NULL,
    state TEXT NOT NULL,
    control_version INTEGER NOT NULL,
    min_samples INTEGER NOT NULL,
    alpha REAL NOT NULL,
    auto_promote INTEGER NOT NULL,
    created_at REAL NOT NULL,
    ended_at REAL,
    decision TEXT NOT NULL DEFAULT '',
    looks INTEGER NOT NULL DEFAULT 0,
    started_by TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS experiments_running ON experiments(prompt, state);
CREATE TABLE IF NOT EXISTS arms (
    experiment_id INTEGER NOT NULL,
    version INTEGER NOT NULL,
    weight REAL NOT NULL,
    PRIMARY KEY (experiment_id, version)
);
CREATE TABLE IF NOT EXISTS outcomes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    completion_id TEXT UNIQUE,
    experiment_id INTEGER,
    prompt TEXT NOT NULL,
    version INTEGER NOT NULL,
    model TEXT NOT NULL DEFAULT '',
    category TEXT NOT NULL DEFAULT '',
    score REAL,
    latency_ms REAL,
    tokens INTEGER,
    error INTEGER NOT NULL DEFAULT 0,
    feedback INTEGER,
    comment TEXT NOT NULL DEFAULT '',
    at REAL NOT NULL,
    weakest TEXT NOT NULL DEFAULT '',
    judge_score REAL,
    judge_reason TEXT NOT NULL DEFAULT '',
    mode TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS outcomes_by_experiment ON outcomes(experiment_id, version);
CREATE TABLE IF NOT EXISTS cycles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    prompt TEXT NOT NULL,
    category TEXT NOT NULL,
    reason TEXT NOT NULL,
    experiment_id INTEGER,
    started_at REAL NOT NULL,
    ended_at REAL,
    outcome TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS cycle_variants (
    cycle_id INTEGER NOT NULL,
    version INTEGER NOT NULL,
    pattern TEXT NOT NULL,
    PRIMARY KEY (cycle_id, version)
);
CREATE TABLE IF NOT EXISTS learning (pattern TEXT PRIMARY KEY, wins INTEGER NOT NULL, losses INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    severity TEXT NOT NULL,
    message TEXT NOT NULL,
    value REAL NOT NULL,
    at REAL NOT NULL,
    delivered INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS alerts_by_key ON alerts(key, at);
CREATE TABLE IF NOT EXISTS evaluations (
    id TEXT PRIMARY KEY,
    started_at REAL NOT NULL,
    state TEXT NOT NULL,
    summary TEXT NOT NULL,
    report TEXT NOT NULL DEFAULT ''
);
"""


class OptimizerStore:
    """The records every store keeps the same way; a store adds
    transaction(), query(), leadership() and close()."""

    def transaction(self) -> AbstractContextManager:
        raise NotImplementedError

    def query(self, sql: str, args: tuple = ()) -> list[tuple]:
        raise NotImplementedError

    def leadership(self) -> bool:
        """True while this replica is the one that runs the scheduled
        quality checks and improvement cycles."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # Prompts.

    def add_version(self, db, name: str, template: str, variables: list[str], note: str) -> int:
        row = db.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM prompt_versions WHERE name = ?", (name,)).fetchone()
        version = int(row[0])
        db.execute(
            "INSERT INTO prompt_versions(name, version, template, created_at, variables, note) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (name, version, template, time.time(), orjson.dumps(variables).decode(), note),
        )
        return version

    def audit(
        self, db, name: str, action: str, version: int, previous: int | None, detail: str = "", actor: str = ""
    ) -> None:
        db.execute(
            "INSERT INTO prompt_audit(at, name, action, version, previous_version, detail, actor) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (time.time(), name, action, version, previous, detail, actor),
        )

    # Evaluation runs.

    def save_evaluation(self, run_id: str, started_at: float, state: str, summary: dict, report: str = "") -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO evaluations(id, started_at, state, summary, report) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET state = excluded.state, summary = excluded.summary, "
                "report = excluded.report",
                (run_id, started_at, state, orjson.dumps(summary).decode(), report),
            )

    def evaluation(self, run_id: str) -> tuple[dict, str] | None:
        """A run's summary and its report (JSON text, "" while running)."""
        rows = self.query("SELECT summary, report FROM evaluations WHERE id = ?", (run_id,))
        return (orjson.loads(rows[0][0]), rows[0][1]) if rows else None


class OptimizerStorage(OptimizerStore):
    """The embedded store: one SQLite file, one process."""

    def __init__(self, path: str):
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        outcome_columns = {row[1] for row in self._db.execute("PRAGMA table_info(outcomes)")}
        text = "TEXT NOT NULL DEFAULT ''"
        for column, kind in (("weakest", text), ("judge_score", "REAL"), ("judge_reason", text), ("mode", text)):
            if column not in outcome_columns:  # a store written before outcomes carried it
                self._db.execute(f"ALTER TABLE outcomes ADD COLUMN {column} {kind}")
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(prompt_versions)")}
        for column in ("variables", "note"):  # stores written before versions carried them
            if column not in columns:
                default = "'[]'" if column == "variables" else "''"
                self._db.execute(f"ALTER TABLE prompt_versions ADD COLUMN {column} TEXT NOT NULL DEFAULT {default}")
        # Stores written before changes and experiments named who made them.
        for table, column in (("prompt_audit", "actor"), ("experiments", "started_by")):
            if column not in {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} TEXT NOT NULL DEFAULT ''")
        self._lock = threading.RLock()

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One change, all or nothing; BEGIN IMMEDIATE so concurrent writers
        (another process on the same file) queue instead of failing."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def query(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def leadership(self) -> bool:
        return True  # the file has one process
