import re
import subprocess
import sys
from datetime import date, timedelta

import pytest

from services.tilores_data.sample import SAMPLE_DAY, generate_customers
from services.tilores_data.seed import sample_day, seed
from services.tilores_data.store import EmbeddedEntityStore


def test_same_seed_gives_the_same_customers():
    first = list(generate_customers(50, seed=3))
    again = list(generate_customers(50, seed=3))
    other = list(generate_customers(50, seed=4))
    assert [c.records for c in first] == [c.records for c in again]
    assert [c.entity_id for c in first] == [c.entity_id for c in again]
    assert [c.records for c in first[1:]] != [c.records for c in other[1:]]


def test_demo_customer_is_edwina_hawthorne_with_three_bureaus():
    demo = next(iter(generate_customers(1)))
    contact = demo.records[0]
    assert (contact["FIRST_NAME"], contact["LAST_NAME"], contact["EMAIL"]) == (
        "Edwina",
        "Hawthorne",
        "edwina.hawthorne@example.com",
    )
    bureaus = {r["CREDIT_RESPONSE"]["CREDIT_BUREAU"] for r in demo.records if "CREDIT_RESPONSE" in r}
    assert bureaus == {"TransUnion", "Equifax", "Experian"}
    scores = {
        r["CREDIT_RESPONSE"]["CREDIT_BUREAU"]: r["CREDIT_RESPONSE"]["CREDIT_SCORE"][0]["Value"]
        for r in demo.records
        if "CREDIT_RESPONSE" in r
    }
    assert scores == {"TransUnion": "712", "Equifax": "705", "Experian": "698"}


def test_records_have_the_tilores_shape():
    customers = list(generate_customers(1000))
    sources = {r["SOURCE"] for c in customers for r in c.records}
    assert {"Contact", "Opportunity", "Transaction", "zoho_tickets", "calls"} <= sources
    for customer in customers:
        assert re.fullmatch(r"[0-9a-f-]{36}", customer.entity_id)
        assert 3 <= len(customer.records) <= 16
        contact = customer.records[0]
        assert contact["SOURCE"] == "Contact"
        assert re.fullmatch(r"003[A-Za-z0-9]{15}", contact["id"])
        assert contact["EMAIL"].rsplit("@", 1)[1] in ("example.com", "example.net", "example.org")
        for record in customer.records:
            assert len(record["id"]) == 18
            for name, value in record.items():
                # Scalars are strings or booleans, numbers included.
                assert value is None or isinstance(value, (str, bool, dict)), (name, value)
    with_credit = [c for c in customers if any("CREDIT_RESPONSE" in r for r in c.records)]
    assert 0.5 < len(with_credit) / len(customers) < 0.9
    report = next(r["CREDIT_RESPONSE"] for r in with_credit[5].records if "CREDIT_RESPONSE" in r)
    assert report["CREDIT_SUMMARY"]["DATA_SET"][0]["ID"] == "PT016"
    assert report["CREDIT_SCORE"][0]["Value"].isdigit()


def test_identifiers_are_unique_across_customers():
    customers = list(generate_customers(2000))
    emails = [c.records[0]["EMAIL"] for c in customers]
    client_ids = [c.records[0]["CLIENT_ID"] for c in customers]
    phones = [c.records[0]["PHONE_NUMBER"] for c in customers]
    record_ids = [r["id"] for c in customers for r in c.records]
    assert len(set(emails)) == len(emails)
    assert len(set(client_ids)) == len(client_ids)
    assert len(set(phones)) == len(phones)
    assert len(set(record_ids)) == len(record_ids)


DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})")


def _dates(records) -> list[date]:
    """Every date a customer's records hold, in order (the birth date aside)."""
    found = []

    def walk(value, key=""):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, k)
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif isinstance(value, str) and key not in ("DATE_OF_BIRTH", "BirthDate") and (m := DATE.match(value)):
            found.append(date.fromisoformat(m.group(1)))

    walk(records)
    return found


def test_another_day_moves_every_date_by_the_days_between_and_nothing_else():
    day = date(2027, 3, 15)
    shift = day - SAMPLE_DAY
    then, now = list(generate_customers(40)), list(generate_customers(40, today=day))
    assert [c.entity_id for c in then] == [c.entity_id for c in now]
    for a, b in zip(then, now, strict=True):
        assert [d + shift for d in _dates(a.records)] == _dates(b.records)
        assert [r["id"] for r in a.records] == [r["id"] for r in b.records]
        assert a.records[0]["DATE_OF_BIRTH"] == b.records[0]["DATE_OF_BIRTH"]


def test_the_next_payments_are_after_the_day_and_the_past_before_it():
    day = date(2027, 3, 15)
    edwina = next(iter(generate_customers(1, today=day)))
    contact = edwina.records[0]
    assert date.fromisoformat(contact["NEXT_SUBSCRIPTION_DATE"]) > day
    assert date.fromisoformat(contact["ENROLL_DATE"]) + timedelta(days=int(contact["DAYS_SINCE_ENROLL"])) == day
    charges = [r for r in edwina.records if r["SOURCE"] == "Transaction"]
    assert all(date.fromisoformat(r["TRANSACTION_CREATED_DATE"]) <= day for r in charges)
    assert date.fromisoformat(charges[-1]["NEXT_TRANSACTION_DATE"]) > day


def test_a_store_is_dated_as_of_the_day_it_is_made_and_the_same_on_a_given_day(tmp_path, monkeypatch):
    monkeypatch.delenv("SAMPLE_DAY", raising=False)
    assert sample_day("") == date.today()
    assert sample_day("2027-03-15") == date(2027, 3, 15)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        sample_day("next tuesday")
    one, two = tmp_path / "one.db", tmp_path / "two.db"
    seed(str(one), 5, today=date(2027, 3, 15))
    seed(str(two), 5, today=date(2027, 3, 15))
    stores = [EmbeddedEntityStore(str(path)) for path in (one, two)]
    try:
        assert stores[0].first_contacts(5) == stores[1].first_contacts(5)
        assert stores[0].first_contacts(1)[0]["NEXT_SUBSCRIPTION_DATE"] > "2027-03-15"
    finally:
        for store in stores:
            store.close()


def test_the_seed_command_names_a_bad_day():
    done = subprocess.run(
        [sys.executable, "-m", "services.tilores_data.seed", "--db", "/nonexistent/x.db", "--day", "soon"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and "--day: expected a day as YYYY-MM-DD, got 'soon'" in done.stderr
