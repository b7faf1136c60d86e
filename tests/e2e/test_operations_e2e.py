"""What an SRE sees of the running mesh: Prometheus /metrics on every
process, GET /health/detailed, the mesh's own added time on every chat
response, one trace id per request in every service's log, and logs free of
secrets and of the customer's personal data."""

from __future__ import annotations

import json
import re
import time
import urllib.request
import uuid

import grpc
import pytest
from google.protobuf.struct_pb2 import Struct
from tilores_x.v1 import tilores_data_pb2, tilores_data_pb2_grpc

from tests.e2e.conftest import API_KEY, http, http_json

pytestmark = pytest.mark.e2e

QUENTIN = {
    "id": "003QMARLOWE0000001",
    "SOURCE": "Contact",
    "FIRST_NAME": "Quentin",
    "LAST_NAME": "Marlowe",
    "EMAIL": "quentin.marlowe@example.org",
    "PHONE_NUMBER": "(415) 555-0199",
    "CARD_NUMBER": "4111111111111111",
    "CARD_LAST_4": "1111",
    "CLIENT_ID": "7340021",
    "DATE_OF_BIRTH": "1979-03-14",
    "STATUS": "Active",
    # The bureau's copy carries the SSN.
    "CREDIT_RESPONSE": {
        "CREDIT_BUREAU": "Equifax",
        "BORROWER": {"FirstName": "QUENTIN", "LastName": "MARLOWE", "BirthDate": "1979-03-14", "SSN": "512-44-9081"},
        "CREDIT_SCORE": [{"Value": "701", "CreditRepositorySourceType": "Equifax", "Date": "2026-10-02"}],
    },
}
# Every form a value could take in a log line.
PII = [
    "quentin.marlowe@example.org",
    "(415) 555-0199",
    "415-555-0199",
    "4155550199",
    "+14155550199",
    "512-44-9081",
    "512449081",
    "4111111111111111",
    "4111 1111 1111 1111",
]


def chat(mesh, question: str, stream: bool = True, request_id: str | None = None) -> tuple[int, dict, bytes]:
    body = json.dumps({"model": "offline", "stream": stream, "messages": [{"role": "user", "content": question}]})
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    if request_id:
        headers["x-request-id"] = request_id
    return http("POST", f"{mesh.rest_url}/v1/chat/completions", body.encode(), headers)


def scrape(mesh, instance: str) -> str:
    """GET /metrics of an instance: the gateway serves it on its HTTPS port."""
    scheme, context = ("https", mesh.ssl_context()) if instance == "gateway" else ("http", None)
    url = f"{scheme}://127.0.0.1:{mesh.metrics_ports[instance]}/metrics"
    with urllib.request.urlopen(url, timeout=5, context=context) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain")
        return reply.read().decode()


def log_entries(mesh, instance: str) -> list[dict]:
    entries = []
    for line in mesh.log_path(instance).read_text(errors="replace").splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue
    return entries


def test_every_chat_response_carries_the_mesh_added_time(mesh):
    for stream in (True, False):
        started = time.perf_counter()
        status, headers, _ = chat(mesh, "What is the status of client id 2480135?", stream=stream)
        total_ms = (time.perf_counter() - started) * 1000
        assert status == 200
        added = float(headers["x-mesh-added-ms"])
        assert 0 <= added < total_ms


def test_every_service_serves_prometheus_metrics(mesh):
    chat(mesh, "What is the status of edwina.hawthorne@example.com?")
    expected = {
        "tilores_data": ['grpc_server_handled_total{grpc_code="OK",grpc_method="SearchEntities"'],
        "cache": ["cache_reads_total{", 'grpc_method="Get"'],
        "optimizer": ['grpc_method="GetPrompt"'],
        "llm_gateway": [
            "gen_ai_client_token_usage_bucket{",
            "gen_ai_client_operation_duration_seconds_bucket{",
            "gen_ai_client_operation_time_to_first_chunk_seconds_bucket{",
            'llm_circuit_breaker_state{provider="offline"} 0.0',
            "llm_retries_total{",
            "llm_fallbacks_total{",
            'grpc_server_streams_in_flight{grpc_method="Generate"',
        ],
        "router": ['grpc_server_handling_seconds_bucket{grpc_method="Chat"', "grpc_server_streams_in_flight{"],
        "gateway": [
            'http_requests_total{method="POST",route="/v1/chat/completions",status="200"}',
            'gen_ai_server_time_to_first_token_seconds_bucket{gen_ai_request_model="offline"',
            'gen_ai_server_time_per_output_token_seconds_bucket{gen_ai_request_model="offline"',
            'mesh_added_latency_seconds_bucket{gen_ai_request_model="offline"',
            "http_streams_in_flight ",
        ],
    }
    for instance, names in expected.items():
        text = scrape(mesh, instance)
        for name in names:
            assert name in text, (instance, name)
        # Bounded labels: no identifiers, e-mails or question text.
        assert "@" not in text and "2480135" not in text, instance


def test_detailed_health_shows_every_service_and_dependency(mesh):
    status, body = http_json("GET", f"{mesh.gateway_url}/health/detailed", key=None, context=mesh.ssl_context())
    assert status == 200, body
    assert body["status"] == "ok", body
    for name in ("router", "llm_gateway", "optimizer", "cache", "tilores_data"):
        service = body["services"][name]
        replicas = service.pop("replicas")
        assert service == {"status": "SERVING", "replicas_total": 1, "replicas_serving": 1}, (name, service)
        (replica,) = replicas
        assert replica["serving"] is True and replica["stats"]["service"] == name, replica
        assert replica["address"].startswith("127.0.0.1:") and replica["stats"]["uptime_s"] > 0
    assert body["breakers"]["offline"] == {"configured": True, "state": "closed", "retry_after_ms": 0, "changes": []}
    assert body["cache"]["redis"] == "connected"
    assert set(body["cache"]["tiers"]) <= {"l1", "l2"}
    assert body["tilores"]["backend"] == "embedded" and body["tilores"]["reachable"] is True
    assert "improvement_cycle" in body["optimizer"]


def test_one_trace_id_follows_a_request_through_every_service(mesh, customers):
    request_id = uuid.uuid4().hex
    # A customer no earlier test asked about, so the lookup reaches tilores_data.
    email = next(r["EMAIL"] for r in customers[211].records if r.get("EMAIL"))
    status, _, _ = chat(mesh, f"What is the status of {email}?", request_id=request_id)
    assert status == 200
    time.sleep(0.5)  # the optimizer's outcome call runs just after the answer
    trace_ids: dict[str, set[str]] = {}
    for instance in ("gateway", "router", "cache", "tilores_data", "optimizer", "llm_gateway"):
        entries = [e for e in log_entries(mesh, instance) if e.get("request_id") == request_id]
        assert entries, f"{instance} logged nothing for the request"
        trace_ids[instance] = {e.get("trace_id") for e in entries}
    every = set().union(*trace_ids.values())
    assert len(every) == 1 and re.fullmatch(r"[0-9a-f]{32}", next(iter(every))), trace_ids


def test_logs_hold_no_secrets_and_no_customer_pii(mesh):
    record = Struct()
    record.update(QUENTIN)
    with grpc.secure_channel(mesh.grpc_addr, mesh.client_credentials()) as channel:
        tilores_data_pb2_grpc.TiloresDataServiceStub(channel).SubmitRecords(
            tilores_data_pb2.SubmitRecordsRequest(records=[record]), metadata=(("x-mesh-service", "tilores_data"),)
        )
    answers = []
    for question in (
        "What is the SSN and the card number of quentin.marlowe@example.org?",
        "Is (415) 555-0199 the phone number on file for Quentin Marlowe, and what is his status?",
        "Card 4111111111111111 and SSN 512-44-9081: whose are they?",
    ):
        status, _, body = chat(mesh, question)
        assert status == 200
        answers.append(body.decode())
    assert "Quentin" in answers[0]  # the customer was found and talked about
    status, _, _ = chat(mesh, "What is the status of client id 7340021?", stream=False)
    assert status == 200
    # A wrong key is refused without being written down.
    wrong_key = "sk-wrong-" + uuid.uuid4().hex
    refused, _, _ = http(
        "POST",
        f"{mesh.rest_url}/v1/chat/completions",
        b'{"model":"offline","messages":[{"role":"user","content":"hi"}]}',
        {"Authorization": f"Bearer {wrong_key}", "Content-Type": "application/json"},
    )
    assert refused == 401
    time.sleep(0.5)
    logs = sorted(mesh.log_dir.glob("*.log"))
    assert {p.stem for p in logs} >= {"gateway", "router", "cache", "tilores_data", "llm_gateway", "optimizer", "envoy"}
    for path in logs:
        text = path.read_text(errors="replace")
        for value in [*PII, API_KEY, wrong_key]:
            assert value not in text, f"{value!r} appears in {path.name}"
