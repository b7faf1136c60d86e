"""PromptStore: named system prompts with numbered versions in SQLite. A new
store starts with the built-in defaults as version 1."""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass

from services.runtime.faults import InvalidArgument, NotFound

DEFAULT_PROMPTS = {
    "customer": (
        "You are the customer-data assistant of a credit-services call centre. "
        "Answer the agent's question about the customer using only the Tilores data below. "
        "Quote values exactly as they appear and mention the record id in brackets after each fact. "
        "If a value the question asks for is not in the data, say that it is not on file; never guess "
        "or invent customer data.\n\n{context}"
    ),
    "general": (
        "You are the customer-data assistant of a credit-services call centre. "
        "The question does not name a customer. Answer general questions briefly; to look up a customer, "
        "ask for their e-mail, client id, Salesforce contact id or phone number. Never invent customer data."
        "\n\n{context}"
    ),
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS prompt_versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    template TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS active_prompts (name TEXT PRIMARY KEY, version INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class PromptVersion:
    name: str
    version: int
    template: str


class PromptStore:
    def __init__(self, path: str):
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()
        for name, template in DEFAULT_PROMPTS.items():
            self._ensure_default(name, template)

    def _ensure_default(self, name: str, template: str) -> None:
        with self._lock:
            if self._db.execute("SELECT 1 FROM active_prompts WHERE name = ?", (name,)).fetchone():
                return
            self._db.execute(
                "INSERT OR IGNORE INTO prompt_versions(name, version, template, created_at) VALUES (?, 1, ?, ?)",
                (name, template, time.time()),
            )
            self._db.execute("INSERT INTO active_prompts(name, version) VALUES (?, 1)", (name,))

    def active(self, name: str) -> PromptVersion:
        if not name:
            raise InvalidArgument("name is required", field="name")
        with self._lock:
            row = self._db.execute(
                "SELECT v.version, v.template FROM active_prompts a "
                "JOIN prompt_versions v ON v.name = a.name AND v.version = a.version WHERE a.name = ?",
                (name,),
            ).fetchone()
        if row is None:
            raise NotFound(f"no prompt named {name!r}", field="name")
        return PromptVersion(name=name, version=row[0], template=row[1])

    def close(self) -> None:
        self._db.close()
