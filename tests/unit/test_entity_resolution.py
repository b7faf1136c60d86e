"""Records submitted to the embedded store resolve into entities."""

import pytest

from services.runtime.faults import InvalidArgument
from services.tilores_data.entity_quality import consistency, link_score
from services.tilores_data.store import EmbeddedEntityStore


@pytest.fixture
def store(tmp_path):
    store = EmbeddedEntityStore(str(tmp_path / "resolution.db"))
    yield store
    store.close()


def test_records_sharing_an_identifier_form_one_entity(store):
    store.submit_records([{"id": "c1", "SOURCE": "Contact", "EMAIL": "Ann@Example.com", "CLIENT_ID": "1000001"}])
    store.submit_records([{"id": "t1", "SOURCE": "Transaction", "CLIENT_ID": "1000001"}])
    store.submit_records([{"id": "z1", "SOURCE": "zoho_tickets", "ZOHO_EMAIL": "ann@example.com"}])
    entity = store.get_entity_by_record("c1")
    assert [r["id"] for r in entity.records] == ["c1", "t1", "z1"]
    assert sorted(entity.edges) == ["c1:t1:R2EXACT", "c1:z1:R1EXACT"]


def test_a_record_joining_two_entities_merges_them_into_the_oldest(store):
    store.submit_records([{"id": "a", "EMAIL": "a@example.com"}])
    store.submit_records([{"id": "b", "CLIENT_ID": "2000002"}])
    older = store.get_entity_by_record("a").id
    younger = store.get_entity_by_record("b").id
    store.submit_records([{"id": "ab", "EMAIL": "a@example.com", "CLIENT_ID": "2000002"}])
    merged = store.get_entity_by_record("b")
    assert merged.id == older and store.get_entity(younger) is None
    assert {r["id"] for r in merged.records} == {"a", "b", "ab"}
    assert store.count_entities() == 1


def test_a_name_alone_does_not_link_but_a_name_with_a_birth_date_does(store):
    store.submit_records([{"id": "p1", "FIRST_NAME": "Ann", "LAST_NAME": "Lee", "DATE_OF_BIRTH": "1980-01-01"}])
    store.submit_records([{"id": "p2", "FIRST_NAME": "ann", "LAST_NAME": "LEE"}])
    assert store.get_entity_by_record("p1").id != store.get_entity_by_record("p2").id
    store.submit_records([{"id": "p3", "FIRST_NAME": "Ann", "LAST_NAME": "Lee", "DATE_OF_BIRTH": "1980-01-01"}])
    entity = store.get_entity_by_record("p3")
    assert entity.id == store.get_entity_by_record("p1").id and "p1:p3:R5NAME" in entity.edges
    # A name search finds both people, so the caller can ask which one.
    assert len(store.search({"FIRST_NAME": "Ann", "LAST_NAME": "Lee"})) == 2


def test_phone_numbers_match_in_any_format(store):
    store.submit_records(
        [{"id": "c", "PHONE_NUMBER": "(312) 555-0100"}, {"id": "k", "PHONE_EXTERNAL": "+1 312 555 0100"}]
    )
    assert store.get_entity_by_record("c").id == store.get_entity_by_record("k").id


def test_bad_submissions_lose_nothing(store):
    store.submit_records([{"id": "keep", "EMAIL": "k@example.com"}])
    with pytest.raises(InvalidArgument) as caught:
        store.submit_records([{"id": "new", "EMAIL": "n@example.com"}, {"id": "keep"}])
    assert caught.value.field == "records[1].id"
    assert store.get_entity_by_record("new") is None  # the whole call is rolled back
    with pytest.raises(InvalidArgument) as caught:
        store.submit_records([{"EMAIL": "x@example.com"}])
    assert caught.value.field == "records[0].id"


def test_quality_scores():
    same = [
        {"id": "a", "EMAIL": "A@x.com", "PHONE_NUMBER": "(312) 555-0100"},
        {"id": "b", "EMAIL": "a@x.com", "PHONE_EXTERNAL": "3125550100"},
    ]
    assert consistency(same) == 1.0
    assert consistency([*same, {"id": "c", "EMAIL": "other@x.com"}]) == 0.5
    assert link_score(same, ["a:b:R1EXACT"]) == 1.0
    assert link_score(same, ["a:b:R5NAME"]) == 0.5
    assert link_score(same[:1], []) == 1.0
