"""The access log of customer data, used the way an auditor and an
attacker would: every answer about a customer is on record with the key,
the customer, the kinds of data and the completion; gRPC reads are on
record with the caller's certificate; a key that harvests customers is
stopped at its limit and every attempt is on record; the log holds no
customer data and only keys with the audit scope may read it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime
from urllib.parse import quote

import grpc
import pytest
from tilores_x.v1 import audit_pb2, audit_pb2_grpc, tilores_data_pb2, tilores_data_pb2_grpc

from services.tilores_data.sample import Customer
from tests.docs import section as section_of
from tests.e2e.conftest import API_KEY, http_json

pytestmark = pytest.mark.e2e

EDWINA = "edwina.hawthorne@example.com"


def _log(mesh, query: str, want, timeout_s: float = 10.0) -> list[dict]:
    """The records of a query, once `want(records)` holds (records are
    written off the hot path, within moments)."""
    deadline = time.monotonic() + timeout_s
    while True:
        status, body = http_json("GET", f"{mesh.rest_url}/v1/access-log?{query}", key=mesh.admin_key)
        assert status == 200, body
        if want(body["data"]) or time.monotonic() > deadline:
            return body["data"]
        time.sleep(0.1)


def _edwina(customers):
    return next(c for c in customers if c.records[0]["EMAIL"] == EDWINA)


def test_every_answer_about_a_customer_is_on_record_without_its_data(client, mesh, customers):
    edwina = _edwina(customers)
    reply = client.chat.completions.create(
        model="offline", messages=[{"role": "user", "content": f"What is the credit score of {EDWINA}?"}]
    )
    assert "Edwina Hawthorne" in reply.choices[0].message.content
    records = _log(mesh, f"completion_id={reply.id}", lambda r: any(x["action"] == "chat.turn" for x in r))
    [turn] = [r for r in records if r["action"] == "chat.turn"]
    assert turn["who"] == "key/dev" and turn["entity_id"] == edwina.entity_id
    assert turn["recorded_by"] == "service/router" and turn["completion_id"] == reply.id
    assert {"identity", "credit", "date_of_birth"} <= set(turn["field_kinds"])
    # When, as ISO 8601 in UTC.
    at = datetime.fromisoformat(turn["at"].replace("Z", "+00:00"))
    assert turn["at"].endswith("Z") and at.timestamp() > time.time() - 60
    assert turn["request_id"]
    # The time it shows is a filter's bound as it is written.
    query = f"completion_id={reply.id}&since={turn['at']}"
    assert turn in _log(mesh, query, lambda r: turn in r)
    assert turn not in _log(mesh, f"completion_id={reply.id}&until={turn['at']}", lambda r: False, timeout_s=0)
    # Names, e-mails, dates of birth and scores are not in the log.
    text = json.dumps(records).lower()
    for value in ("edwina", "hawthorne", EDWINA, edwina.records[0].get("DATE_OF_BIRTH", "1984-06-12")):
        assert str(value).lower() not in text


def test_grpc_reads_are_on_record_with_the_callers_certificate(mesh, customers):
    edwina = _edwina(customers)
    reader = mesh.client_credentials("client", "holds-customers.read")
    with grpc.secure_channel(mesh.grpc_addr, reader) as channel:
        data = tilores_data_pb2_grpc.TiloresDataServiceStub(channel)
        ref = tilores_data_pb2.CustomerRef(entity_id=edwina.entity_id)
        data.GetCreditReport(tilores_data_pb2.GetCreditReportRequest(customer=ref), timeout=10)
    auditor = mesh.client_credentials("client", "holds-audit.read")
    query = audit_pb2.QueryAccessRequest(who="client/holds-customers.read", entity_id=edwina.entity_id)
    with grpc.secure_channel(mesh.grpc_addr, auditor) as channel:
        audit = audit_pb2_grpc.AuditServiceStub(channel)
        for _ in range(100):
            records = audit.QueryAccess(query, timeout=10).records
            if records:
                break
            time.sleep(0.1)
    [record] = records
    assert (record.action, record.recorded_by, list(record.field_kinds)) == (
        "TiloresDataService.GetCreditReport",
        "service/tilores_data",
        ["credit"],
    )


def test_nobody_writes_the_access_log_but_the_services_that_read_customers(mesh):
    forger = mesh.client_credentials("client", "holds-customers.read")
    forged = audit_pb2.RecordAccessRequest(records=[audit_pb2.AccessRecord(who="key/x", entity_id="e", action="a")])
    with grpc.secure_channel(mesh.grpc_addr, forger) as channel, pytest.raises(grpc.RpcError) as caught:
        audit_pb2_grpc.AuditServiceStub(channel).RecordAccess(forged, timeout=10)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_only_keys_with_the_audit_scope_read_the_log(mesh):
    status, body = http_json("GET", f"{mesh.rest_url}/v1/access-log", key=API_KEY)
    assert status == 403 and body["error"]["code"] == "insufficient_permissions"
    status, body = http_json("GET", f"{mesh.rest_url}/v1/access-log", key=None)
    assert status == 401
    bad = {
        "limit=0": "limit",
        "limit=x": "limit",
        "since=yesterday": "since",
        "since=2026-13-01T00:00:00Z": "since",
        "until=1e400": "until",
        "who=a&who=b": "who",
        "entity=1": "entity",
    }
    for query, param in bad.items():
        status, body = http_json("GET", f"{mesh.rest_url}/v1/access-log?{query}", key=mesh.admin_key)
        assert status == 400 and body["error"]["param"] == param, (query, body)


def test_a_harvesting_key_is_stopped_at_its_limit_and_every_attempt_is_on_record(mesh, customers):
    key_file = mesh.data_dir / "gateway-keys.yaml"
    add = [sys.executable, "-m", "gateway.api_keys", "add", "--file", str(key_file), "--id", "harvester"]
    limits = "requests_per_minute=100000,tokens_per_minute=100000000,customers_per_hour=20"
    key = subprocess.run([*add, "--scopes", "chat", "--limits", limits], capture_output=True, text=True, check=True)
    key = key.stdout.strip()
    targets = [c for c in customers if c.records[0].get("EMAIL")][10:40]

    def ask(customer) -> tuple[int, dict]:
        question = f"tell me about {customer.records[0]['EMAIL']}"
        body = {"model": "offline", "messages": [{"role": "user", "content": question}]}
        return http_json("POST", f"{mesh.rest_url}/v1/chat/completions", body, key=key)

    status, _ = ask(targets[0])
    for _ in range(60):  # the new key is read within a second
        if status != 401:
            break
        time.sleep(0.1)
        status, _ = ask(targets[0])
    statuses = [status] + [ask(c)[0] for c in targets[1:]]
    assert statuses == [200] * 20 + [429] * 10
    status, refused = ask(targets[25])
    assert status == 429 and refused["error"]["type"] == "rate_limit_error"
    assert "the limit is 20" in refused["error"]["message"]
    assert ask(targets[3])[0] == 200  # a customer already looked at stays available
    # Past the limit a stranger gets what a new customer gets, in a chat and
    # from the credit report: the limit tells nobody who is a customer.
    stranger = Customer("", [{"EMAIL": "nobody.here.at.all@example.org"}])
    status, nobody = ask(stranger)
    assert (status, nobody["error"]["type"]) == (429, "rate_limit_error") and "the limit is 20" in nobody["error"][
        "message"
    ]
    for identifier in (targets[26].records[0]["EMAIL"], "nobody.here.at.all@example.org", "9999999999"):
        status, reply = http_json("GET", f"{mesh.rest_url}/v1/credit-report/{identifier}", key=key)
        assert (status, reply["error"]["type"]) == (429, "rate_limit_error"), (identifier, reply)

    records = _log(mesh, "who=key/harvester&limit=1000", lambda r: len(r) >= 32)
    looked = {r["entity_id"] for r in records if r["action"] == "chat.turn"}
    attempts = {r["entity_id"] for r in records if r["action"] == "refused.lookup_limit"}
    assert looked == {c.entity_id for c in targets[:20]}
    assert attempts == {c.entity_id for c in targets[20:]}


def test_the_readmes_access_log_queries_run_as_written(client, mesh):
    client.chat.completions.create(
        model="offline", messages=[{"role": "user", "content": f"What is the status of {EDWINA}?"}]
    )
    section = section_of("docs/security.md", "## The access log")
    block = section[section.index("```sh\n") + 6 :]
    lines = block[: block.index("```")].strip().splitlines()
    assert len(lines) == 2
    host = mesh.rest_url.removeprefix("http://").replace("127.0.0.1", "localhost")
    first = lines[0].replace("localhost:8080", host).replace("<dev admin key printed by make run>", mesh.admin_key)
    records = _log(mesh, "who=key/dev", lambda r: any(x["action"] == "chat.turn" for x in r))
    body = json.loads(subprocess.run(["bash", "-c", first], capture_output=True, text=True, check=True).stdout)
    assert body["object"] == "list" and body["data"][0]["who"] == "key/dev" and len(body["data"]) <= 20
    entity = records[0]["entity_id"]
    second = (
        lines[1]
        .replace("localhost:8080", host)
        .replace("<dev admin key>", mesh.admin_key)
        .replace("<entity id>", entity)
    )
    body = json.loads(subprocess.run(["bash", "-c", second], capture_output=True, text=True, check=True).stdout)
    assert body["data"] and {r["entity_id"] for r in body["data"]} == {entity}


def _admin(mesh, method: str, path: str, body: object = None) -> tuple[int, dict]:
    return http_json(method, f"{mesh.rest_url}{path}", body, key=mesh.admin_key)


def test_the_log_pages_with_a_cursor_newest_first_each_record_once(client, mesh, customers):
    for customer in customers[40:46]:  # six looks on record, at least
        client.chat.completions.create(
            model="offline", messages=[{"role": "user", "content": f"Status of {customer.records[0]['EMAIL']}?"}]
        )
    status, whole = _admin(mesh, "GET", "/v1/access-log?who=key/dev&limit=1000")
    assert status == 200 and len(whole["data"]) >= 6
    walked, cursor, pages = [], "", 0
    while True:
        status, page = _admin(mesh, "GET", f"/v1/access-log?who=key/dev&limit=4{'&cursor=' + cursor if cursor else ''}")
        assert status == 200 and len(page["data"]) <= 4
        walked += page["data"]
        pages += 1
        if page["next_cursor"] is None:
            assert not page["truncated"]
            break
        assert page["truncated"]
        cursor = page["next_cursor"]
    # Newer records may have come since the first read: the walk holds the whole read, in order, once each.
    ids = [json.dumps(r, sort_keys=True) for r in walked]
    assert len(ids) == len(set(ids)) and pages >= 2
    assert [r for r in walked if r in whole["data"]] == whole["data"]


@pytest.mark.parametrize("identifier", [EDWINA, "2480135", "(312) 555-0142"], ids=["email", "client id", "phone"])
def test_a_customer_is_found_by_what_the_operator_knows_and_that_look_is_on_record(client, mesh, customers, identifier):
    edwina = _edwina(customers)
    client.chat.completions.create(
        model="offline", messages=[{"role": "user", "content": f"What is the credit score of {EDWINA}?"}]
    )
    started = time.time()
    status, page = _admin(mesh, "GET", f"/v1/access-log?customer={quote(identifier)}&limit=50")
    assert status == 200, page
    assert page["customers"] == [{"entity_id": edwina.entity_id, "name": "Edwina Hawthorne"}]
    assert page["data"] and all(r["entity_id"] == edwina.entity_id for r in page["data"])
    # The operator's own look goes on the log as a read of her identity.
    looks = _log(
        mesh,
        f"entity_id={edwina.entity_id}&since={started - 1}",
        lambda r: any(x["action"] == "access_log.lookup" for x in r),
    )
    [look] = [r for r in looks if r["action"] == "access_log.lookup"][:1]
    assert look["who"].startswith("key/") and look["field_kinds"] == ["identity"]
    assert look["recorded_by"] == "service/router"


def test_customer_names_for_entity_ids_are_given_and_on_record(mesh, customers):
    edwina, other = _edwina(customers), customers[7]
    ids = [edwina.entity_id, other.entity_id, "00000000-0000-4000-8000-000000000000"]
    started = time.time()
    status, names = _admin(mesh, "POST", "/v1/customer-names", {"entity_ids": ids})
    assert status == 200, names
    contact = other.records[0]
    assert names["data"] == [
        {"entity_id": edwina.entity_id, "name": "Edwina Hawthorne"},
        {"entity_id": other.entity_id, "name": f"{contact['FIRST_NAME']} {contact['LAST_NAME']}"},
    ]  # nobody has the third id: left out
    looked = _log(
        mesh,
        f"entity_id={other.entity_id}&since={started - 1}",
        lambda r: any(x["action"] == "access_log.lookup" for x in r),
    )
    assert any(r["action"] == "access_log.lookup" for r in looked)
    status, body = http_json("POST", f"{mesh.rest_url}/v1/customer-names", {"entity_ids": ids}, key=API_KEY)
    assert status == 403 and body["error"]["code"] == "insufficient_permissions"


@pytest.mark.parametrize(
    "method, path, body, param",
    [
        ("GET", "/v1/access-log?cursor=forged", None, "cursor"),
        ("GET", "/v1/access-log?customer=hello%20there", None, "customer"),
        ("GET", f"/v1/access-log?customer={EDWINA}&entity_id=x", None, "customer"),
        ("GET", "/v1/access-log?limit=99999999", None, "limit"),
        ("POST", "/v1/customer-names", {"entity_ids": ["x"] * 101}, "entity_ids"),
        ("POST", "/v1/customer-names", {"entity_ids": [7]}, "entity_ids[0]"),
        ("POST", "/v1/customer-names", {}, "entity_ids"),
    ],
)
def test_bad_paging_and_customer_filters_are_named(mesh, method, path, body, param):
    status, answer = _admin(mesh, method, path, body)
    assert status == 400 and answer["error"]["param"] == param, answer


def test_a_customer_nobody_is_is_an_empty_page(mesh):
    status, page = _admin(mesh, "GET", "/v1/access-log?customer=nobody.at.all%40example.org")
    assert status == 200 and page["data"] == [] and page["customers"] == [] and page["next_cursor"] is None
