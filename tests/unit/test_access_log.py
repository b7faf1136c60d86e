"""AccessLog: append-only, queried by customer, who, completion and time,
newest first; records name kinds of data, never values."""

from __future__ import annotations

import sqlite3

import pytest

from services.audit.access_log import COLUMNS, GENESIS, AccessLog, AccessQuery, link, page_cursor, page_token
from services.audit.verify import main as verify
from services.runtime.customer_access import CustomerAccess
from services.runtime.faults import InvalidArgument


def _entry(n: int, who: str = "key/desk-7", entity: str = "e-1") -> CustomerAccess:
    return CustomerAccess(who, entity, "chat.turn", ("credit", "identity"), "acme", f"chatcmpl-{n}", f"r{n}")


KEY = bytes(range(32))


@pytest.fixture
def log(tmp_path):
    log = AccessLog(str(tmp_path / "audit.db"), KEY)
    yield log
    log.close()


def test_records_come_back_newest_first_with_who_recorded_them(log):
    assert log.append([_entry(1), _entry(2, entity="e-2")], "service/router") == 2
    records, truncated, _ = log.query(AccessQuery())
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
    records, truncated, _ = log.query(AccessQuery(limit=2))
    assert len(records) == 2 and truncated


def test_the_log_cannot_be_changed_or_emptied(log, tmp_path):
    log.append([_entry(1)], "service/router")
    db = sqlite3.connect(tmp_path / "audit.db")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE access SET who = 'nobody'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM access")
    db.close()


def _tampered(tmp_path, log, statements: list[str]) -> str:
    """A copy of the log changed by someone holding the file (triggers
    dropped first), then verified as docs/security.md says; what verify printed."""
    log.append([_entry(n) for n in range(1, 1002)], "service/router")
    copy = tmp_path / "copy.db"
    db = sqlite3.connect(tmp_path / "audit.db")
    db.execute("VACUUM INTO ?", (str(copy),))
    db.close()
    db = sqlite3.connect(copy)
    db.executescript("DROP TRIGGER access_no_update; DROP TRIGGER access_no_delete;")
    for statement in statements:
        db.execute(statement)
    db.commit()
    db.close()
    return str(copy)


@pytest.mark.parametrize(
    ("statements", "first_broken"),
    [
        (["UPDATE access SET who = 'key/nobody' WHERE id = 997"], 997),
        (["DELETE FROM access WHERE id BETWEEN 997 AND 1001"], None),  # cut off the end: the head says so
        (["DELETE FROM access WHERE id = 500"], 501),
        (["UPDATE access SET field_kinds = 'identity' WHERE id = 3"], 3),
        (["UPDATE access SET id = id + 1000 WHERE id = 10"], 11),
        (["DELETE FROM access WHERE id = 1"], 2),
    ],
)
def test_a_changed_copy_of_the_log_names_its_first_broken_record(log, tmp_path, capsys, statements, first_broken):
    key_file = tmp_path / "chain.key"
    key_file.write_text(KEY.hex())
    copy = _tampered(tmp_path, log, statements)
    original = verify(["--db", str(tmp_path / "audit.db"), "--key-file", str(key_file)])
    head = capsys.readouterr().out
    assert original == 0 and head.startswith("intact: 1001 records, head ")
    code = verify(["--db", copy, "--key-file", str(key_file)])
    said = capsys.readouterr().out
    if first_broken is None:
        assert code == 0 and said.startswith("intact: 996 records") and said.split()[-1] != head.split()[-1]
    else:
        assert code == 1 and said.startswith(f"BROKEN at record {first_broken}:"), said


def test_the_chain_cannot_be_rebuilt_without_its_key(log, tmp_path, capsys):
    """Rewriting a row and every link after it with a key of one's own
    still fails against the service's key."""
    copy = _tampered(tmp_path, log, ["UPDATE access SET who = 'key/nobody' WHERE id = 5"])
    db = sqlite3.connect(copy)
    previous = GENESIS
    for row_id, *columns in db.execute(f"SELECT id, {COLUMNS} FROM access ORDER BY id").fetchall():
        previous = link(b"a guess of 32 bytes, not the key", previous, row_id, tuple(columns))
        db.execute("UPDATE access SET chain = ? WHERE id = ?", (previous, row_id))
    db.commit()
    db.close()
    key_file = tmp_path / "chain.key"
    key_file.write_text(KEY.hex())
    assert verify(["--db", copy, "--key-file", str(key_file)]) == 1
    assert capsys.readouterr().out.startswith("BROKEN at record 1:")


def test_the_log_file_is_for_its_owner_only(log, tmp_path):
    log.append([_entry(1)], "service/router")
    for path in tmp_path.glob("audit.db*"):
        assert path.stat().st_mode & 0o077 == 0, path


def test_a_log_from_before_the_chain_keeps_its_rows_and_chains_the_new_ones(tmp_path, capsys):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(SCHEMA_BEFORE_CHAIN)
    db.execute("INSERT INTO access(at, who, tenant, recorded_by, entity_id, action, field_kinds, completion_id, "
               "request_id) VALUES (1, 'key/a', 't', 'service/router', 'e-1', 'chat.turn', '', '', '')")  # fmt: skip
    db.commit()
    db.close()
    log = AccessLog(str(path), KEY)
    log.append([_entry(2)], "service/router")
    assert len(log.query(AccessQuery())[0]) == 2
    assert log.verify().intact and log.verify().unchained == 1 and log.verify().rows == 1
    log.close()


SCHEMA_BEFORE_CHAIN = """
CREATE TABLE access (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, who TEXT NOT NULL, tenant TEXT NOT NULL,
    recorded_by TEXT NOT NULL, entity_id TEXT NOT NULL, action TEXT NOT NULL, field_kinds TEXT NOT NULL,
    completion_id TEXT NOT NULL, request_id TEXT NOT NULL
);
"""


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


def test_pages_walk_every_match_once_newest_first(log):
    log.append([_entry(n, entity="e-1" if n % 3 else "e-2") for n in range(1, 26)], "service/router")
    walked, cursor, pages = [], 0, 0
    while True:
        page = log.query(AccessQuery(entity_id="e-1", limit=4, older_than=cursor))
        walked += [r.completion_id for r in page.records]
        pages += 1
        if not page.truncated:
            assert page.older_than == 0
            break
        cursor = page.older_than
    expected = [f"chatcmpl-{n}" for n in range(25, 0, -1) if n % 3]
    assert walked == expected and pages == 5  # 17 records, 4 a page


def test_a_page_token_round_trips_and_a_forged_one_is_refused_by_name():
    assert page_cursor(page_token(1234)) == 1234 and page_cursor("") == 0
    for forged in ("1234", "not-a-token", page_token(1234)[:-2] + "zz", "A" * 65, "b2xkZXItdGhhbjow"):
        with pytest.raises(InvalidArgument) as refused:
            page_cursor(forged)
        assert refused.value.field == "page_token", forged


def test_a_resent_record_of_a_request_is_written_once_and_the_chain_holds(log):
    """A sender that timed out resends its batch; a call retried elsewhere
    records the same look again: the log holds each once."""
    batch = [_entry(1), _entry(2, entity="e-2")]
    assert log.append(batch, "service/router") == 2
    assert log.append([*batch, _entry(3)], "service/router") == 1
    assert log.append([_entry(4), _entry(4)], "service/router") == 1
    # The same look by another service, or another action, is its own record.
    assert log.append([_entry(1)], "service/tilores_data") == 1
    other_action = CustomerAccess("key/desk-7", "e-1", "chat.candidates", (), "acme", "chatcmpl-1", "r1")
    assert log.append([other_action], "service/router") == 1
    # The request asked again whole (Envoy retried it elsewhere): another answer, another look.
    asked_again = CustomerAccess("key/desk-7", "e-1", "chat.turn", ("credit", "identity"), "acme", "chatcmpl-9", "r1")
    assert log.append([asked_again], "service/router") == 1
    # Records without a request id are all kept.
    anonymous = CustomerAccess("service/cache", "e-1", "prewarm", (), "", "", "")
    assert log.append([anonymous, anonymous], "service/cache") == 2
    records, _, _ = log.query(AccessQuery(limit=100))
    assert len(records) == 9
    assert log.verify().intact
