"""EmbeddedEntityStore: a Tilores-shaped entity store in one SQLite file.

Records are grouped into entities; search follows deterministic matching
rules over indexed keys, and answers in Tilores' shapes (entities with all
their records, `recordA:recordB:RULE` edges, per-record hits, a hit score).
"""

from __future__ import annotations

import re
import sqlite3
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import orjson

from services.runtime.faults import InvalidArgument

# Matching rules: rule id -> how a record yields its key for that rule.
RULE_EMAIL = "R1EXACT"
RULE_CLIENT_ID = "R2EXACT"
RULE_PHONE = "R3PHONE"
RULE_RECORD_ID = "R4RECORD"
RULE_NAME = "R5NAME"
# Link-only keys: a name with a second attribute. Their edges carry R5NAME.
LINK_NAME_BIRTH = "R5NAME_DOB"
LINK_NAME_POSTAL = "R5NAME_POSTAL"
EDGE_RULE = {LINK_NAME_BIRTH: RULE_NAME, LINK_NAME_POSTAL: RULE_NAME}

# Parameters a matching rule covers; any other search parameter matches
# nothing, as in Tilores, where only the search rules' fields find entities.
SEARCHABLE_PARAMETERS = ("id", "EMAIL", "CLIENT_ID", "PHONE_NUMBER", "PHONE_EXTERNAL", "FIRST_NAME", "LAST_NAME")
_NON_DIGIT = re.compile(r"\D+")

SCHEMA = """
CREATE TABLE IF NOT EXISTS entities (id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS records (
    id TEXT PRIMARY KEY,
    entity_id TEXT NOT NULL REFERENCES entities(id),
    position INTEGER NOT NULL,
    data BLOB NOT NULL,
    source TEXT
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


def _match_keys(record: dict[str, Any]) -> list[tuple[str, str]]:
    """Search keys of a record: what a search by each rule finds it by."""
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
    name = _name_key(record)
    if name:
        keys.append((RULE_NAME, name))
    return list(dict.fromkeys(keys))


def _name_key(record: dict[str, Any]) -> str:
    first, last = str(record.get("FIRST_NAME") or "").strip(), str(record.get("LAST_NAME") or "").strip()
    return f"{first.lower()}|{last.lower()}" if first and last else ""


def _link_keys(record: dict[str, Any]) -> list[tuple[str, str]]:
    """Keys that join a submitted record to an entity: the exact identifiers,
    and a name only together with a second attribute (date of birth or postal
    code), since two people may share a name."""
    keys = [(rule, key) for rule, key in _match_keys(record) if rule != RULE_NAME]
    name = _name_key(record)
    if name:
        for rule, attribute in ((LINK_NAME_BIRTH, "DATE_OF_BIRTH"), (LINK_NAME_POSTAL, "MAILING_POSTAL_CODE")):
            value = str(record.get(attribute) or "").strip().lower()
            if value:
                keys.append((rule, f"{name}|{value}"))
    return keys


def _edges(records: list[dict[str, Any]]) -> list[str]:
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


class EntityView:
    """An entity as Tilores returns it. Records read from the store stay
    JSON until something asks for them as dicts: a search answer goes out
    without parsing and re-encoding every record."""

    __slots__ = ("_raw", "_records", "edges", "hit_score", "hits", "id")

    def __init__(
        self,
        id: str,
        records: list[dict[str, Any]] | None = None,
        edges: list[str] | None = None,
        hits: dict[str, list[str]] | None = None,
        hit_score: float = 0.0,
        raw_records: list[tuple[str, str, bytes]] | None = None,
    ):
        self.id = id
        self._records = records
        self._raw = raw_records
        self.edges = edges if edges is not None else []
        self.hits = hits if hits is not None else {}
        self.hit_score = hit_score

    @property
    def records(self) -> list[dict[str, Any]]:
        if self._records is None:
            self._records = [orjson.loads(data) for _, _, data in self._raw or ()]
        return self._records

    @property
    def raw_records(self) -> list[tuple[str, str, bytes]] | None:
        """(id, SOURCE, JSON) per record when read from the store unparsed."""
        return self._raw if self._records is None else None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EntityView):
            return NotImplemented
        return (self.id, self.records, self.edges, self.hits, self.hit_score) == (
            other.id, other.records, other.edges, other.hits, other.hit_score,
        )  # fmt: skip

    __hash__ = None  # type: ignore[assignment]  # mutable: not a dict key

    def __repr__(self) -> str:
        return f"EntityView(id={self.id!r}, records={len(self.records)}, edges={len(self.edges)})"


def search_keys(parameters: dict[str, str]) -> list[tuple[str, str]]:
    """The (rule, key) pairs a search asks for. Empty values count as unset,
    as Tilores treats null parameters; names no rule covers add nothing, and
    a name is searched only as FIRST_NAME with LAST_NAME."""
    params = {k: str(v).strip() for k, v in parameters.items() if v is not None and str(v).strip()}
    keys: list[tuple[str, str]] = []
    if "id" in params:
        keys.append((RULE_RECORD_ID, params["id"]))
    if "EMAIL" in params:
        keys.append((RULE_EMAIL, params["EMAIL"].lower()))
    if "CLIENT_ID" in params:
        keys.append((RULE_CLIENT_ID, params["CLIENT_ID"]))
    for name in ("PHONE_NUMBER", "PHONE_EXTERNAL"):
        phone = normalize_phone(params.get(name, ""))
        if phone:
            keys.append((RULE_PHONE, phone))
    first, last = params.get("FIRST_NAME"), params.get("LAST_NAME")
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
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(records)")}
        if "source" not in columns:  # a store written before records kept their source apart
            self._db.execute("ALTER TABLE records ADD COLUMN source TEXT")
            self._db.execute("UPDATE records SET source = json_extract(CAST(data AS TEXT), '$.SOURCE')")
        self._lock = threading.Lock()
        self._version = 0  # bumped by every write; keys cached aggregates
        self._shares: tuple[int, dict[str, float]] | None = None

    def close(self) -> None:
        self._db.close()

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the main file."""
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def add_entities(self, entities: Iterable[tuple[str, list[dict[str, Any]]]]) -> int:
        """Store entities given as (entity id, records); returns records added."""
        added = 0
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for entity_id, records in entities:
                    self._db.execute("INSERT INTO entities(id) VALUES (?)", (entity_id,))
                    self._db.executemany(
                        "INSERT INTO records(id, entity_id, position, data, source) VALUES (?, ?, ?, ?, ?)",
                        [(r["id"], entity_id, n, orjson.dumps(r), r.get("SOURCE")) for n, r in enumerate(records)],
                    )
                    self._db.executemany(
                        "INSERT INTO match_keys(rule, value, record_id, entity_id) VALUES (?, ?, ?, ?)",
                        [
                            (rule, key, r["id"], entity_id)
                            for r in records
                            for rule, key in dict.fromkeys([*_match_keys(r), *_link_keys(r)])
                        ],
                    )
                    self._db.executemany(
                        "INSERT INTO edges(entity_id, edge) VALUES (?, ?)",
                        [(entity_id, edge) for edge in _edges(records)],
                    )
                    added += len(records)
                self._db.execute("COMMIT")
                self._version += 1
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return added

    def submit_records(self, records: list[dict[str, Any]]) -> int:
        """Add records and resolve them into entities by the link rules: a
        record joins the entity it shares a key with; one that joins several
        merges them into the oldest, which keeps its id. Returns records added."""
        for n, record in enumerate(records):
            if not isinstance(record.get("id"), str) or not record["id"].strip():
                raise InvalidArgument(f"records[{n}].id is required", field=f"records[{n}].id")
        ids = [r["id"] for r in records]
        if len(set(ids)) != len(ids):
            duplicate = next(i for i in ids if ids.count(i) > 1)
            raise InvalidArgument(f"record id {duplicate!r} is submitted twice", field="records")
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for n, record in enumerate(records):
                    if self._db.execute("SELECT 1 FROM records WHERE id = ?", (record["id"],)).fetchone():
                        raise InvalidArgument(
                            f"a record with id {record['id']!r} already exists", field=f"records[{n}].id"
                        )
                    self._resolve(record)
                self._db.execute("COMMIT")
                self._version += 1
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return len(records)

    def _resolve(self, record: dict[str, Any]) -> None:
        links = _link_keys(record)
        partners: list[tuple[str, str, str]] = []  # (rule, record id, entity id)
        for rule, key in links:
            row = self._db.execute(
                "SELECT record_id, entity_id FROM match_keys WHERE rule = ? AND value = ? ORDER BY rowid DESC LIMIT 1",
                (rule, key),
            ).fetchone()
            if row:
                partners.append((EDGE_RULE.get(rule, rule), row[0], row[1]))
        entity_ids = list(dict.fromkeys(entity for _, _, entity in partners))
        if not entity_ids:
            entity_id = str(uuid.uuid4())
            self._db.execute("INSERT INTO entities(id) VALUES (?)", (entity_id,))
        else:
            # The oldest entity (first inserted) keeps its id.
            marks = ",".join("?" * len(entity_ids))
            entity_id = self._db.execute(
                f"SELECT id FROM entities WHERE id IN ({marks}) ORDER BY rowid LIMIT 1", entity_ids
            ).fetchone()[0]
            for other in entity_ids:
                if other != entity_id:
                    for table in ("records", "match_keys", "edges"):
                        self._db.execute(f"UPDATE {table} SET entity_id = ? WHERE entity_id = ?", (entity_id, other))
                    self._db.execute("DELETE FROM entities WHERE id = ?", (other,))
        position = self._db.execute(
            "SELECT COALESCE(MAX(position) + 1, 0) FROM records WHERE entity_id = ?", (entity_id,)
        ).fetchone()[0]
        self._db.execute(
            "INSERT INTO records(id, entity_id, position, data, source) VALUES (?, ?, ?, ?, ?)",
            (record["id"], entity_id, position, orjson.dumps(record), record.get("SOURCE")),
        )
        keys = list(dict.fromkeys([*_match_keys(record), *links]))
        self._db.executemany(
            "INSERT INTO match_keys(rule, value, record_id, entity_id) VALUES (?, ?, ?, ?)",
            [(rule, key, record["id"], entity_id) for rule, key in keys],
        )
        edges = dict.fromkeys(f"{partner}:{record['id']}:{rule}" for rule, partner, _ in partners)
        self._db.executemany("INSERT INTO edges(entity_id, edge) VALUES (?, ?)", [(entity_id, e) for e in edges])

    def field_shares(self) -> dict[str, float]:
        """Per top-level record field, the share of entities with a value
        for it. A full scan, so computed once per version of the data."""
        with self._lock:
            if self._shares is not None and self._shares[0] == self._version:
                return self._shares[1]
            total = self._db.execute("SELECT COUNT(*) FROM entities").fetchone()[0] or 1
            rows = self._db.execute(
                "SELECT j.key, COUNT(DISTINCT r.entity_id) FROM records r, json_each(CAST(r.data AS TEXT)) j "
                "WHERE j.type != 'null' AND j.value != '' GROUP BY j.key"
            ).fetchall()
            shares = {key: round(count / total, 4) for key, count in rows}
            self._shares = (self._version, shares)
            return shares

    def first_contacts(self, count: int) -> list[dict[str, Any]]:
        """The first Contact record of the first `count` entities."""
        with self._lock:
            rows = self._db.execute(
                "SELECT data FROM records WHERE source = 'Contact' AND position = ("
                "SELECT MIN(position) FROM records AS first WHERE first.entity_id = records.entity_id "
                "AND first.source = 'Contact') ORDER BY rowid LIMIT ?",
                (max(0, count),),
            ).fetchall()
        return [orjson.loads(data) for (data,) in rows]

    def count_entities(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT COUNT(*) FROM entities").fetchone()
            return int(count)

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
                "SELECT id, source, data FROM records WHERE entity_id = ? ORDER BY position", (entity_id,)
            ).fetchall()
            if not rows:
                return None
            edges = [e for (e,) in self._db.execute("SELECT edge FROM edges WHERE entity_id = ?", (entity_id,))]
        return EntityView(id=entity_id, edges=edges, raw_records=[(i, src or "", data) for i, src, data in rows])

    def get_entity_by_record(self, record_id: str) -> EntityView | None:
        with self._lock:
            row = self._db.execute("SELECT entity_id FROM records WHERE id = ?", (record_id,)).fetchone()
        return self.get_entity(row[0]) if row else None
