"""The store's surface, the same on both engines: `transaction()` (one
change, all or nothing, writers one at a time), `query()`, `migrate()`
and `leadership()` (whether this replica runs the scheduled decisions).
Statements are services/optimizer/storage/statements.py's, spelled for
the engine by the connection that runs them."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol

import orjson

from services.optimizer.storage import statements
from services.optimizer.storage.schema import DIALECTS, MIGRATIONS, SCHEMA_MIGRATIONS
from services.optimizer.storage.statement import Statement

log = logging.getLogger("optimizer.storage")


class Rows(Protocol):
    """What a statement leaves: its rows, or how many it changed."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection:
    """A driver's connection, running statements in its engine's spelling."""

    __slots__ = ("_conn", "dialect")

    def __init__(self, conn: Any, dialect: str):
        self._conn = conn
        self.dialect = dialect

    def _spelled(self, statement: Statement | str) -> str:
        if isinstance(statement, str):
            statement = Statement.of(statement)
        return statement.postgres if self.dialect == "postgres" else statement.sqlite

    def execute(self, statement: Statement | str, /, **params: object) -> Rows:
        rows: Rows = self._conn.execute(self._spelled(statement), params)
        return rows

    def executemany(self, statement: Statement, rows: Iterable[Mapping[str, object]]) -> None:
        cursor = self._conn.cursor()
        try:
            cursor.executemany(self._spelled(statement), list(rows))
        finally:
            cursor.close()

    def script(self, ddl: str) -> None:
        """A statement with no parameters (a migration's DDL)."""
        self._conn.execute(ddl)


class OptimizerStore:
    """What both stores share: the migrations and the records kept the same
    way. An engine supplies transaction(), query(), leadership(), close()
    and _migrating() (a transaction that holds the schema's lock)."""

    dialect = ""

    def transaction(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def query(self, statement: Statement | str, /, **params: object) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def leadership(self) -> bool:
        """True while this replica is the one that runs the scheduled
        quality checks and improvement cycles."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _migrating(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    # The schema.

    def migrate(self) -> list[int]:
        """Apply the migrations this database lacks; the versions applied.
        Stores starting together: one migrates, the others wait and find
        it done."""
        with self._migrating() as db:
            db.script(SCHEMA_MIGRATIONS.format(**DIALECTS[self.dialect]))
            done = {version for (version,) in db.execute(statements.MIGRATED).fetchall()}
        applied = []
        for migration in MIGRATIONS:
            if migration.version in done:
                continue
            with self._migrating() as db:
                if db.execute(statements.IS_MIGRATED, version=migration.version).fetchone():
                    continue
                for ddl in migration.spelled(self.dialect):
                    db.script(ddl)
                db.execute(statements.RECORD_MIGRATION, version=migration.version, description=migration.description)
            applied.append(migration.version)
            log.info("storage.migrated", extra={"fields": {"version": migration.version, "to": self.dialect}})
        return applied

    def schema_version(self) -> int:
        (version,) = self.query(statements.SCHEMA_VERSION)[0]
        return int(version)

    # Prompts.

    def add_version(self, db: Connection, name: str, template: str, variables: list[str], note: str) -> int:
        (version,) = db.execute(statements.NEXT_PROMPT_VERSION, name=name).fetchone()
        db.execute(
            statements.ADD_PROMPT_VERSION,
            name=name,
            version=int(version),
            template=template,
            created_at=time.time(),
            variables=orjson.dumps(variables).decode(),
            note=note,
        )
        return int(version)

    def audit(
        self,
        db: Connection,
        name: str,
        action: str,
        version: int,
        previous: int | None,
        detail: str = "",
        actor: str = "",
    ) -> None:
        db.execute(
            statements.AUDIT_PROMPT,
            at=time.time(),
            name=name,
            action=action,
            version=version,
            previous=previous,
            detail=detail,
            actor=actor,
        )

    # Evaluation runs.

    def save_evaluation(
        self, run_id: str, started_at: float, state: str, summary: dict[str, Any], report: str = ""
    ) -> None:
        with self.transaction() as db:
            db.execute(
                statements.SAVE_EVALUATION,
                id=run_id,
                started_at=started_at,
                state=state,
                summary=orjson.dumps(summary).decode(),
                report=report,
            )

    def recent_evaluations(self, limit: int) -> list[dict[str, Any]]:
        """The summaries of the newest `limit` runs, newest first."""
        return [orjson.loads(summary) for (summary,) in self.query(statements.RECENT_EVALUATIONS, limit=limit)]

    def evaluation(self, run_id: str) -> tuple[dict[str, Any], str] | None:
        """A run's summary and its report (JSON text, "" while running)."""
        rows = self.query(statements.EVALUATION, id=run_id)
        return (orjson.loads(rows[0][0]), rows[0][1]) if rows else None
