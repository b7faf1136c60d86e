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
