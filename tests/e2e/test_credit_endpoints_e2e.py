"""The original assistant's credit endpoints through Envoy: a customer's
credit report by any identifier, several side by side, the errors by field,
and every look at a customer in the access log."""

from __future__ import annotations

import hashlib
import json
import time
from urllib.parse import quote

import redis

from tests.e2e.conftest import API_KEY, http

EDWINA = "edwina.hawthorne@example.com"


def _get(mesh, path: str, key: str = API_KEY) -> tuple[int, dict]:
    status, _headers, raw = http("GET", f"{mesh.rest_url}{path}", headers={"Authorization": f"Bearer {key}"})
    return status, json.loads(raw)


def _post(mesh, path: str, body: dict, key: str = API_KEY) -> tuple[int, dict]:
    status, _headers, raw = http(
        "POST",
        f"{mesh.rest_url}{path}",
        json.dumps(body).encode(),
        {"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    return status, json.loads(raw)


def test_the_credit_report_of_a_customer_by_every_identifier_kind(mesh):
    reports = [
        _get(mesh, f"/v1/credit-report/{quote(identifier)}")
        for identifier in (EDWINA, "2480135", "(312) 555-0142", "003OeHwdFcAefAZhnM")
    ]
    assert all(status == 200 for status, _ in reports), reports
    assert len({r["entity_id"] for _, r in reports}) == 1
    report = reports[0][1]
    assert report["object"] == "credit_report" and report["customer_name"] == "Edwina Hawthorne"
    latest = {b["bureau"]: b["scores"][-1]["value"] for b in report["bureaus"]}
    assert latest == {"Equifax": 705, "Experian": 698, "TransUnion": 712}
    assert report["assessment"]["band"] == "Good" and report["assessment"]["score"] == 698
    assert all(b["scores"][-1]["record"] for b in report["bureaus"])


def test_the_report_says_how_the_customer_was_found(mesh):
    # A bare ten-digit number is searched as a client id and as a phone:
    # the report names the one that matched.
    lookups = {
        identifier: _get(mesh, f"/v1/credit-report/{quote(identifier)}")[1]["lookup"]
        for identifier in ("3125550142", "(312) 555-0142", "2480135", EDWINA)
    }
    assert lookups == {
        "3125550142": "phone +13125550142",
        "(312) 555-0142": "phone +13125550142",
        "2480135": "client id 2480135",
        EDWINA: f"email {EDWINA}",
    }


def test_unknown_and_unusable_identifiers_are_clear_errors(mesh):
    status, body = _get(mesh, "/v1/credit-report/nobody%40example.invalid")
    assert status == 404 and body["error"]["param"] == "identifier"
    assert "no customer matches email nobody@example.invalid" in body["error"]["message"]
    status, body = _get(mesh, "/v1/credit-report/Edwina")
    assert status == 400 and body["error"]["param"] == "identifier"
    status, body = _get(mesh, f"/v1/credit-report/{'9' * 300}")
    assert status == 400 and body["error"]["param"] == "identifier"


def test_customers_side_by_side_with_an_error_in_its_place(mesh, customers):
    others = [c.records[0]["EMAIL"] for c in customers[1:3]]
    status, body = _post(mesh, "/v1/credit-comparison", {"customers": [EDWINA, *others, "nobody@example.invalid"]})
    assert status == 200 and body["object"] == "credit_comparison"
    rows = body["customers"]
    assert [r["identifier"] for r in rows] == [EDWINA, *others, "nobody@example.invalid"]
    assert rows[0]["bureaus"]["TransUnion"]["score"] == 712 and rows[0]["band"] == "Good"
    assert rows[0]["bureaus"]["Experian"]["late_payments_30_60_90"] == [3, 1, 1]
    assert rows[3]["error"]["param"] == "customers[3]" and "no customer matches" in rows[3]["error"]["message"]


def test_comparison_bodies_are_checked_by_field(mesh):
    status, body = _post(mesh, "/v1/credit-comparison", {"customers": [EDWINA]})
    assert status == 400 and body["error"]["param"] == "customers"
    status, body = _post(mesh, "/v1/credit-comparison", {"customers": [EDWINA, 7]})
    assert status == 400 and body["error"]["param"] == "customers[1]"
    status, body = _post(mesh, "/v1/credit-comparison", {})
    assert status == 400 and body["error"]["param"] == "customers"


def test_no_key_no_report_and_each_look_is_on_record(mesh):
    status, _headers, _raw = http("GET", f"{mesh.rest_url}/v1/credit-report/{EDWINA}")
    assert status == 401
    _status, report = _get(mesh, f"/v1/credit-report/{EDWINA}")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status, log = _get(mesh, f"/v1/access-log?entity_id={report['entity_id']}", key=mesh.admin_key)
        looks = [r for r in log.get("data", []) if r["action"] == "credit.report"]
        if looks:
            break
        time.sleep(0.2)
    assert looks and looks[0]["who"].startswith("key/"), log


def test_fields_by_category_with_the_share_of_customers_that_carry_them(mesh):
    status, body = _get(mesh, "/v1/field-discovery/identity")
    assert status == 200 and body["object"] == "list" and body["data"]
    by_name = {f["name"]: f for f in body["data"]}
    assert {f["category"] for f in body["data"]} == {"identity"}
    assert by_name["DATE_OF_BIRTH"]["pii_kind"] == "date_of_birth" and 0 < by_name["DATE_OF_BIRTH"]["share"] <= 1
    status, everything = _get(mesh, "/v1/field-discovery/all")
    assert status == 200 and len(everything["data"]) > len(body["data"])
    assert next(f for f in everything["data"] if f["name"] == "EMAIL")["category"] == "contact"
    assert {"credit", "billing", "contact"} <= {f["category"] for f in everything["data"]}
    status, body = _get(mesh, "/v1/field-discovery/horoscope")
    assert status == 400 and body["error"]["param"] == "category" and "horoscope" in body["error"]["message"]
    # The error names every category the endpoint takes, `all` too.
    assert "one of all, identity, contact" in body["error"]["message"] and body["error"]["message"].endswith("other")


def _cached_keys(mesh, pattern: str) -> int:
    client = redis.Redis.from_url(mesh.redis_url_for("cache"))
    try:
        return sum(1 for _ in client.scan_iter(match=pattern, count=1000))
    finally:
        client.close()


def test_an_admin_clears_a_tenants_cached_customers(mesh, client):
    tenant = "k" + hashlib.sha256(API_KEY.encode()).hexdigest()[:16]  # the tenant of a key from the environment
    client.chat.completions.create(
        model="offline", messages=[{"role": "user", "content": f"What is the status of {EDWINA}?"}]
    )
    assert _cached_keys(mesh, f"tx:v1:{tenant}:customer:*") > 0
    status, body = _post(mesh, "/v1/clear-cache", {"tenant": tenant, "namespace": "customer"}, key=mesh.admin_key)
    assert status == 200 and body["redis_removed"] > 0 and body["namespace"] == "customer"
    assert _cached_keys(mesh, f"tx:v1:{tenant}:customer:*") == 0
    # Cleared, not broken: the next question reads the customer afresh.
    answer = client.chat.completions.create(
        model="offline", messages=[{"role": "user", "content": f"What is the status of {EDWINA}?"}]
    )
    assert "Active" in answer.choices[0].message.content


def test_clearing_needs_an_admin_key_and_a_valid_tenant(mesh):
    status, body = _post(mesh, "/v1/clear-cache", {"tenant": "acme"})
    assert status == 403 and body["error"]["message"] == "This endpoint needs an admin key."
    status, body = _post(mesh, "/v1/clear-cache", {"tenant": "acme*"}, key=mesh.admin_key)
    assert status == 400 and body["error"]["param"] == "tenant"
    status, body = _post(mesh, "/v1/clear-cache", {"tenant": "acme", "namespace": "x y"}, key=mesh.admin_key)
    assert status == 400 and body["error"]["param"] == "namespace"
    status, body = _post(mesh, "/v1/clear-cache", {}, key=mesh.admin_key)
    assert status == 400 and body["error"]["param"] == "tenant"
