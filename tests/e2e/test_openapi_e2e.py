"""The OpenAPI document through Envoy: valid OpenAPI 3.1, every route of the
gateway in it and nothing else, and a property-based fuzzer (schemathesis)
driven by it against a mesh of its own, with an admin key so every
operation is reached: no answer is a 5xx, and every error is OpenAI's
error JSON."""

from __future__ import annotations

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate

from gateway.openapi import OPERATIONS
from tests.e2e.conftest import http, start_local_mesh

# Operations the fuzzer leaves alone: streams that run for minutes, and the
# switch that drops the whole cache (exercised by tests of its own).
SKIPPED = {"POST /v1/clear-cache"}


@pytest.fixture(scope="module")
def fuzz_mesh(tmp_path_factory):
    mesh = start_local_mesh(tmp_path_factory.mktemp("openapi"), QUALITY_CHECK_INTERVAL_S="0")
    yield mesh
    mesh.stop()


@pytest.fixture(scope="module")
def document(fuzz_mesh) -> dict:
    status, _headers, raw = http("GET", f"{fuzz_mesh.rest_url}/openapi.json")
    assert status == 200
    return json.loads(raw)


def test_the_document_is_valid_openapi_3_1(document):
    validate(document)
    assert document["openapi"] == "3.1.0"
    assert document["components"]["securitySchemes"]["apiKey"] == {"type": "http", "scheme": "bearer"}


def test_every_route_is_described_and_nothing_else(document):
    # The document is made from the gateway's route table, one operation
    # per route: its operations are what the gateway serves.
    described = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
    assert described == set(OPERATIONS)
    chat = document["paths"]["/v1/chat/completions"]["post"]
    assert chat["x-key-scope"] == "chat" and chat["security"] == [{"apiKey": []}]
    assert chat["responses"]["400"]["content"]["application/json"]["schema"]["required"] == ["error"]
    assert document["paths"]["/health"]["get"]["security"] == []


def _openai_error_shape(response):
    """Every error is OpenAI's error JSON."""
    if response.status_code >= 400:
        kind = (response.headers.get("content-type") or [""])[0]
        assert kind.startswith("application/json"), (response.status_code, kind, response.text[:300])
        body = response.json()
        assert set(body) == {"error"} and {"message", "type", "param", "code"} <= set(body["error"]), body


def _operation_id(document: dict, operation: str) -> str:
    method, path = operation.split(" ", 1)
    return document["paths"][path][method.lower()]["operationId"]


def test_the_fuzzer_finds_no_server_error_and_only_openai_errors(fuzz_mesh, document):
    """Every operation, 8 generated requests each (valid and invalid bodies,
    parameters and paths), with an admin key so every one is reached."""
    loaded = schemathesis.openapi.from_dict(document)
    loaded.config.update(base_url=fuzz_mesh.rest_url, headers={"Authorization": f"Bearer {fuzz_mesh.admin_key}"})
    loaded = loaded.exclude(operation_id=[_operation_id(document, s) for s in SKIPPED])
    failures: list[str] = []
    statuses: list[int] = []
    operations = 0
    for result in loaded.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)  # fmt: skip
        def check(case):
            response = case.call(timeout=30)
            statuses.append(response.status_code)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} {case.body!r}: {response.status_code}")
            _openai_error_shape(response)

        check()
    assert operations >= len(document["paths"]) - len(SKIPPED)
    assert len(statuses) >= 3 * operations, len(statuses)
    # Both sides were reached: answers and refusals.
    assert any(s < 300 for s in statuses) and any(400 <= s < 500 for s in statuses)
    assert not failures, failures[:10]
