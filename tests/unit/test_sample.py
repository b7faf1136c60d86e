import re

from services.tilores_data.sample import generate_customers


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
