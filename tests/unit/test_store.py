import sqlite3

import orjson
import pytest

from services.runtime.faults import InvalidArgument
from services.tilores_data.sample import generate_customers
from services.tilores_data.store import EmbeddedEntityStore


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = EmbeddedEntityStore(str(tmp_path_factory.mktemp("store") / "tilores.db"))
    customers = list(generate_customers(200))
    store.add_entities((c.entity_id, c.records) for c in customers)
    store.customers = customers
    yield store
    store.close()


def test_email_search_ignores_case_and_returns_all_records(store):
    demo = store.customers[0]
    [entity] = store.search({"EMAIL": "EDWINA.Hawthorne@example.com"})
    assert entity.id == demo.entity_id
    assert [r["id"] for r in entity.records] == [r["id"] for r in demo.records]
    assert entity.hits and all(rules == ["R1EXACT"] for rules in entity.hits.values())
    assert entity.hit_score == 1.0


@pytest.mark.parametrize(
    "params",
    [
        {"CLIENT_ID": "2480135"},
        {"PHONE_NUMBER": "+1 (312) 555-0142"},
        {"PHONE_EXTERNAL": "3125550142"},
        {"FIRST_NAME": "edwina", "LAST_NAME": "HAWTHORNE"},
        {"EMAIL": "", "CLIENT_ID": "2480135", "LAST_NAME": "  "},
    ],
)
def test_each_rule_finds_the_demo_customer(store, params):
    if params.get("LAST_NAME") == "  ":
        params = {k: v for k, v in params.items() if k != "LAST_NAME"}
    assert [e.id for e in store.search(params)] == [store.customers[0].entity_id]


def test_record_id_search_and_lookups(store):
    demo = store.customers[0]
    contact_id = demo.records[0]["id"]
    assert [e.id for e in store.search({"id": contact_id})] == [demo.entity_id]
    assert store.get_entity_by_record(contact_id).id == demo.entity_id
    assert store.get_entity(demo.entity_id).records == demo.records
    assert store.get_entity("00000000-0000-4000-8000-000000000000") is None
    assert store.get_entity_by_record("003000000000000000") is None


def test_no_match_and_all_empty_parameters_give_no_entities(store):
    assert store.search({"EMAIL": "nobody@example.com"}) == []
    assert store.search({"EMAIL": "", "CLIENT_ID": ""}) == []


def test_edges_link_records_with_rule_ids(store):
    entity = store.get_entity(store.customers[0].entity_id)
    ids = {r["id"] for r in entity.records}
    assert entity.edges
    for edge in entity.edges:
        a, b, rule = edge.split(":")
        assert a in ids and b in ids and rule.startswith("R")


def test_paging(store):
    everyone = store.search({"EMAIL": store.customers[1].records[0]["EMAIL"], "CLIENT_ID": "2480135"})
    assert len(everyone) == 2
    assert store.search(
        {"EMAIL": store.customers[1].records[0]["EMAIL"], "CLIENT_ID": "2480135"}, page=2, page_size=1
    ) == [everyone[1]]


def test_parameters_no_rule_covers_match_nothing(store):
    # As in Tilores: only the search rules' fields find entities.
    assert store.search({"STATUS": "Active"}) == []
    assert store.search({"FIRST_NAME": "Edwina"}) == []


def test_bad_paging_names_the_field(store):
    with pytest.raises(InvalidArgument) as caught:
        store.search({"CLIENT_ID": "2480135"}, page=-1)
    assert caught.value.field == "page"


def test_a_store_written_before_sources_were_kept_apart_is_migrated(tmp_path):
    path = str(tmp_path / "old.db")
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE entities (id TEXT PRIMARY KEY);"
        "CREATE TABLE records (id TEXT PRIMARY KEY, entity_id TEXT NOT NULL, position INTEGER NOT NULL,"
        " data BLOB NOT NULL);"
    )
    db.execute("INSERT INTO entities VALUES ('e1')")
    db.execute("INSERT INTO records VALUES ('r1', 'e1', 0, ?)", (orjson.dumps({"id": "r1", "SOURCE": "Contact"}),))
    db.commit()
    db.close()
    store = EmbeddedEntityStore(path)
    try:
        assert store.get_entity("e1").raw_records[0][:2] == ("r1", "Contact")
        assert store.get_entity("e1").records == [{"id": "r1", "SOURCE": "Contact"}]
    finally:
        store.close()
