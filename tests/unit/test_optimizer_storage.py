"""The optimizer's store: one schema and one set of statements for SQLite
and PostgreSQL, SQL only in the storage package, and a file written before
the schema had versions brought up to date without losing a row."""

from __future__ import annotations

import ast
import pathlib
import sqlite3

import pytest

from services.optimizer.experiments import Experiments
from services.optimizer.prompts import PromptRegistry
from services.optimizer.storage import SqliteStore, statements
from services.optimizer.storage.schema import MIGRATIONS
from services.optimizer.storage.statement import Statement

OPTIMIZER = pathlib.Path(__file__).resolve().parents[2] / "services" / "optimizer"


def test_a_statement_is_spelled_for_each_driver_once():
    statement = Statement("SELECT prompt || ':v' || version FROM t WHERE a = :a AND b LIKE '50%' AND c::text = :c_2")
    assert statement.sqlite == statement.text
    assert statement.postgres == (
        "SELECT prompt || ':v' || version FROM t WHERE a = %(a)s AND b LIKE '50%%' AND c::text = %(c_2)s"
    )
    assert Statement.of("SELECT 1") is Statement.of("SELECT 1")


def test_both_engines_apply_the_same_migrations_and_run_the_same_statements(open_store):
    store = open_store()
    assert store.query("SELECT version, description FROM schema_migrations ORDER BY version") == [
        (m.version, m.description) for m in MIGRATIONS
    ]
    assert store.schema_version() == MIGRATIONS[-1].version
    assert store.migrate() == []  # opened again: nothing to do
    registry = PromptRegistry(store)
    experiments = Experiments(store, registry)
    experiments.record("c-1", "customer", 1, score=0.5, mode="debt")
    assert store.query(statements.HAS_OUTCOME, completion_id="c-1") == [(1,)]
    assert [row[0] for row in store.query(statements.GROUP_KEYS["prompt"])] == ["customer:v1"]


def test_a_file_written_before_versions_is_brought_up_to_date_and_keeps_its_rows(tmp_path):
    path = tmp_path / "optimizer.db"
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE outcomes (id INTEGER PRIMARY KEY AUTOINCREMENT, completion_id TEXT UNIQUE, experiment_id INTEGER,
            prompt TEXT NOT NULL, version INTEGER NOT NULL, model TEXT NOT NULL DEFAULT '',
            category TEXT NOT NULL DEFAULT '', score REAL, latency_ms REAL, tokens INTEGER,
            error INTEGER NOT NULL DEFAULT 0, feedback INTEGER, comment TEXT NOT NULL DEFAULT '', at REAL NOT NULL);
        INSERT INTO outcomes(completion_id, prompt, version, score, at) VALUES ('old-1', 'customer', 1, 0.75, 0);
        CREATE TABLE prompt_audit (id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, name TEXT NOT NULL,
            action TEXT NOT NULL, version INTEGER NOT NULL, previous_version INTEGER, detail TEXT NOT NULL DEFAULT '');
        """
    )
    old.close()
    store = SqliteStore(str(path))
    try:
        assert store.schema_version() == MIGRATIONS[-1].version
        Experiments(store, PromptRegistry(store)).record("new-1", "customer", 1, score=0.9, mode="debt")
        rows = store.query("SELECT completion_id, score, mode, weakest FROM outcomes ORDER BY id")
        assert rows == [("old-1", 0.75, "", ""), ("new-1", 0.9, "debt", "")]
        history = PromptRegistry(store).history("customer")
        assert [(entry.action, entry.actor) for entry in history] == [("activated", "")]
    finally:
        store.close()


def _sql_in(path: pathlib.Path) -> list[str]:
    words = ("SELECT ", "INSERT INTO", "UPDATE ", "DELETE FROM", "CREATE TABLE")
    return [
        node.value[:60]
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.lstrip().startswith(words)
    ]


@pytest.mark.parametrize(
    "module", sorted(p.name for p in OPTIMIZER.glob("*.py")), ids=lambda name: name.removesuffix(".py")
)
def test_sql_lives_only_in_the_storage_package(module):
    assert _sql_in(OPTIMIZER / module) == []
