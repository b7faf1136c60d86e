"""AccessLog: append-only, queried by customer, who, completion and time,
newest first; records name kinds of data, never values."""

from __future__ import annotations

import sqlite3

import pytest

from services.audit.access_log import AccessLog, AccessQuery
from services.runtime.customer_access import CustomerAccess


def _entry(n: int, who: str = "key/desk-7", entity: str = "e-1") -> CustomerAccess:
    return CustomerAccess(who, entity, "chat.turn", ("credit", "identity"), "acme", f"chatcmpl-{n}", f"r{n}")


@pytest.fixture
def log(tmp_path):
    log = AccessLog(str(tmp_path / "audit.db"))
    yield log
    log.close()


def test_records_come_back_newest_first_with_who_recorded_them(log):
    assert log.append([_entry(1), _entry(2, entity="e-2")], "service/router") == 2
    records, truncated = log.query(AccessQuery())
    assert [r.completion_id for r in records] == ["chatcmpl-2", "chatcmpl-1"] and not truncated
    assert records[0].recorded_by == "service/router" and records[0].field_kinds == ("credit", "identity")
    assert records[0].at > 0


def test_queries_filter_by_customer_who_completion_and_time(log):
    log.append([_entry(1), _entry(2, who="client/ops"), _entry(3, entity="e-9")], "service/router")
    assert [r.completion_id for r in log.query(AccessQuery(entity_id="e-9"))[0]] == ["chatcmpl-3"]
    assert [r.completion_id for r in log.query(AccessQuery(who="client/ops"))[0]] == ["chatcmpl-2"]
    assert [r.entity_id for r in log.query(AccessQuery(completion_id="chatcmpl-1"))[0]] == ["e-1"]
    [first, *_] = log.query(AccessQuery())[0]
    assert log.query(AccessQuery(since=first.at + 1))[0] == []
    assert len(log.query(AccessQuery(until=first.at + 1))[0]) == 3
    records, truncated = log.query(AccessQuery(limit=2))
    assert len(records) == 2 and truncated


def test_the_log_cannot_be_changed_or_emptied(log, tmp_path):
    log.append([_entry(1)], "service/router")
    db = sqlite3.connect(tmp_path / "audit.db")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE access SET who = 'nobody'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM access")
    db.close()


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (CustomerAccess("", "e-1", "chat.turn"), "who is required"),
        (CustomerAccess("key/a", "", "chat.turn"), "entity_id is required"),
        (CustomerAccess("key/a", "e-1", "x" * 201), "action is longer than 200 characters"),
        (CustomerAccess("key/a", "e-1", "chat.turn", ("k",) * 33), "field_kinds: at most 32 kinds"),
    ],
)
def test_an_unfit_record_says_what_is_wrong(entry, problem):
    assert entry.problem().startswith(problem)
