"""EmbeddedEntityStore: a Tilores-shaped entity store in one SQLite file.

Records are grouped into entities; search follows deterministic matching
rules over indexed keys, and answers in Tilores' shapes (entities with all
their records, `recordA:recordB:RULE` edges, per-record hits, a hit score).
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson

from services.runtime.faults import InvalidArgument

# Matching rules: rule id -> how a record yields its key for that rule.
RULE_EMAIL = "R1EXACT"
RULE_CLIENT_ID = "R2EXACT"
RULE_PHONE = "R3PHONE"
RULE_RECORD_ID = "R4RECORD"
RULE_NAME = "R5NAME"

SEARCHABLE_PARAMETERS = ("id", "EMAIL", "CLIENT_ID", "PHONE_NUMBER", "PHONE_EXTERNAL", "FIRST_NAME", "LAST_NAME")
_NON_DIGIT = re.compile(r"\D+")

SCHEMA = """
CREATE TABLE IF NOT EXISTS entities (id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS records (
    id TEXT PRIMARY KEY,
    entity_id TEXT NOT NULL REFERENCES entities(id),
    position INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS records_by_entity ON records(entity_id, position);
CREATE TABLE IF NOT EXISTS match_keys (
    rule TEXT NOT NULL,
    value TEXT NOT NULL,
    record_id TEXT NOT NULL,
    entity_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS match_keys_lookup ON match_keys(rule, value);
CREATE TABLE IF NOT EXISTS edges (entity_id TEXT NOT NULL, edge TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS edges_by_entity ON edges(entity_id);
"""


def normalize_phone(raw: str) -> str:
    """The last ten digits: `(312) 555-0142`, `+1 312 555 0142` and
    `3125550142` are the same number."""
    digits = _NON_DIGIT.sub("", raw)
    return digits[-10:] if len(digits) >= 10 else ""


def _match_keys(record: dict) -> list[tuple[str, str]]:
    keys: list[tuple[str, str]] = []
    for name in ("EMAIL", "ZOHO_EMAIL"):
        if record.get(name):
            keys.append((RULE_EMAIL, str(record[name]).strip().lower()))
    if record.get("CLIENT_ID"):
        keys.append((RULE_CLIENT_ID, str(record["CLIENT_ID"]).strip()))
    for name in ("PHONE_NUMBER", "PHONE_EXTERNAL", "ZOHO_PHONE"):
        phone = normalize_phone(str(record.get(name) or ""))
        if phone:
            keys.append((RULE_PHONE, phone))
    if record.get("FIRST_NAME") and record.get("LAST_NAME"):
        keys.append((RULE_NAME, f"{record['FIRST_NAME'].strip().lower()}|{record['LAST_NAME'].strip().lower()}"))
    return list(dict.fromkeys(keys))


def _edges(records: list[dict]) -> list[str]:
    """Link each record to the previous record that shares a key, per rule:
    enough to connect the entity without listing every pair."""
    last_by_key: dict[tuple[str, str], str] = {}
    edges: list[str] = []
    for record in records:
        for key in _match_keys(record):
            previous = last_by_key.get(key)
            if previous is not None and previous != record["id"]:
                edges.append(f"{previous}:{record['id']}:{key[0]}")
            last_by_key[key] = record["id"]
    return list(dict.fromkeys(edges))


@dataclass
class EntityView:
    """An entity as Tilores returns it."""

    id: str
    records: list[dict]
    edges: list[str]
    hits: dict[str, list[str]] = field(default_factory=dict)
    hit_score: float = 0.0


def search_keys(parameters: dict[str, str]) -> list[tuple[str, str]]:
    """The (rule, key) pairs a search asks for. Empty values count as unset,
    as Tilores treats null parameters."""
    params = {k: v.strip() for k, v in parameters.items() if v is not None and v.strip()}
    for name in params:
        if name not in SEARCHABLE_PARAMETERS:
            raise InvalidArgument(
                f"unknown search parameter {name!r}; searchable: {', '.join(SEARCHABLE_PARAMETERS)}",
                field=f"parameters.{name}",
            )
    keys: list[tuple[str, str]] = []
    if "id" in params:
        keys.append((RULE_RECORD_ID, params["id"]))
    if "EMAIL" in params:
        keys.append((RULE_EMAIL, params["EMAIL"].lower()))
    if "CLIENT_ID" in params:
        keys.append((RULE_CLIENT_ID, params["CLIENT_ID"]))
    for name in ("PHONE_NUMBER", "PHONE_EXTERNAL"):
        if name in params:
            phone = normalize_phone(params[name])
            if not phone:
                raise InvalidArgument(f"{name} must hold at least 10 digits", field=f"parameters.{name}")
            keys.append((RULE_PHONE, phone))
    first, last = params.get("FIRST_NAME"), params.get("LAST_NAME")
    if bool(first) != bool(last):
        missing = "LAST_NAME" if first else "FIRST_NAME"
        raise InvalidArgument("FIRST_NAME and LAST_NAME are searched together", field=f"parameters.{missing}")
    if first and last:
        keys.append((RULE_NAME, f"{first.lower()}|{last.lower()}"))
    return list(dict.fromkeys(keys))


class EmbeddedEntityStore:
    """Entities in SQLite. Reads are short indexed queries; one connection is
    shared under a lock (SQLite serialises writers anyway)."""

    def __init__(self, path: str):
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the main file."""
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def add_entities(self, entities: Iterable[tuple[str, list[dict]]]) -> int:
        """Store entities given as (entity id, records); returns records added."""
        added = 0
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for entity_id, records in entities:
                    self._db.execute("INSERT INTO entities(id) VALUES (?)", (entity_id,))
                    self._db.executemany(
                        "INSERT INTO records(id, entity_id, position, data) VALUES (?, ?, ?, ?)",
                        [(r["id"], entity_id, n, orjson.dumps(r)) for n, r in enumerate(records)],
                    )
                    self._db.executemany(
                        "INSERT INTO match_keys(rule, value, record_id, entity_id) VALUES (?, ?, ?, ?)",
                        [(rule, key, r["id"], entity_id) for r in records for rule, key in _match_keys(r)],
                    )
                    self._db.executemany(
                        "INSERT INTO edges(entity_id, edge) VALUES (?, ?)",
                        [(entity_id, edge) for edge in _edges(records)],
                    )
                    added += len(records)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return added

    def count_entities(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM entities").fetchone()[0]

    def search(self, parameters: dict[str, str], page: int = 0, page_size: int = 0) -> list[EntityView]:
        """Entities matching any rule the parameters ask for, best first.
        `page` (1-based) turns on paging with `page_size` (default 10)."""
        if page < 0:
            raise InvalidArgument("page must be 0 (all) or a 1-based page number", field="page")
        if page_size < 0:
            raise InvalidArgument("page_size must not be negative", field="page_size")
        keys = search_keys(parameters)
        if not keys:
            return []
        hits: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        rules_hit: dict[str, set[str]] = defaultdict(set)
        with self._lock:
            for rule, key in keys:
                if rule == RULE_RECORD_ID:
                    rows = self._db.execute("SELECT id, entity_id FROM records WHERE id = ?", (key,)).fetchall()
                else:
                    rows = self._db.execute(
                        "SELECT record_id, entity_id FROM match_keys WHERE rule = ? AND value = ?", (rule, key)
                    ).fetchall()
                for record_id, entity_id in rows:
                    hits[entity_id][record_id].append(rule)
                    rules_hit[entity_id].add(rule)
        ranked = sorted(hits, key=lambda e: (-len(rules_hit[e]), e))
        if page:
            size = page_size or 10
            ranked = ranked[(page - 1) * size : page * size]
        views = []
        for entity_id in ranked:
            view = self.get_entity(entity_id)
            if view is None:
                continue
            view.hits = {record_id: rules for record_id, rules in hits[entity_id].items()}
            view.hit_score = round(len(rules_hit[entity_id]) / len(keys), 4)
            views.append(view)
        return views

    def get_entity(self, entity_id: str) -> EntityView | None:
        with self._lock:
            rows = self._db.execute(
                "SELECT data FROM records WHERE entity_id = ? ORDER BY position", (entity_id,)
            ).fetchall()
            if not rows:
                return None
            edges = [e for (e,) in self._db.execute("SELECT edge FROM edges WHERE entity_id = ?", (entity_id,))]
        return EntityView(id=entity_id, records=[orjson.loads(data) for (data,) in rows], edges=edges)

    def get_entity_by_record(self, record_id: str) -> EntityView | None:
        with self._lock:
            row = self._db.execute("SELECT entity_id FROM records WHERE id = ?", (record_id,)).fetchone()
        return self.get_entity(row[0]) if row else None
