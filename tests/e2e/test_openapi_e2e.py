"""The OpenAPI document through Envoy: valid OpenAPI 3.1, every route of the
gateway in it and nothing else, and a property-based fuzzer (schemathesis)
driven by it against a mesh of its own, with an admin key so every
operation is reached: no answer is a 5xx, every error is OpenAI's error
JSON, and every answer the document gives a schema matches it."""

from __future__ import annotations

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings, strategies
from openapi_spec_validator import validate
from schemathesis.checks import response_schema_conformance

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
    conforming: list[str] = []
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
            kind = (response.headers.get("content-type") or [""])[0]
            if response.status_code < 300 and kind.startswith("application/json"):
                conforming.append(case.operation.label)
                try:
                    case.validate_response(response, checks=[response_schema_conformance])
                except Exception as failure:  # schemathesis' FailureGroup, with the schema's complaint
                    failures.append(f"{case.method} {case.formatted_path}: {str(failure)[:600]}")

        check()
    assert operations >= len(document["paths"]) - len(SKIPPED)
    assert len(statuses) >= 3 * operations, len(statuses)
    # Both sides were reached: answers and refusals.
    assert any(s < 300 for s in statuses) and any(400 <= s < 500 for s in statuses)
    assert not failures, failures[:10]
    # The answers with a schema of their own were reached and checked.
    typed = {f"{m.upper()} {p}" for p, ops in document["paths"].items() for m, op in ops.items() if _typed(op)}
    assert len(typed & set(conforming)) >= len(typed) // 2, typed - set(conforming)


def _typed(operation: dict) -> bool:
    for answer in operation["responses"].values():
        schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
        if schema and schema != {"type": "object"} and "error" not in schema.get("properties", {}):
            return True
    return False


# Bodies a schema-driven fuzzer never writes: each puts one hostile JSON
# value (raw text) where a valid body has a value, or adds it as a field.
HOSTILE_JSON = [
    '"\\ud800"', '"a\\udfffb"', '{"\\ud800": 1}', '["\\udc00"]',
    "9223372036854775808", "18446744073709551616", "-9223372036854775809", "1" + "0" * 40, "1e999", "-1e999",
    "1e-400", "-0.0", "0.5", "-1", "0", "2147483648",
    "true", "false", "null", "[]", "{}", '""', '"\\u0000"', '"' + "a" * 100_000 + '"',
    "[" * 20_000 + "]" * 20_000, '{"a":' * 20_000 + "1" + "}" * 20_000, "[[[[[[[[[[]]]]]]]]]]",
    '{"role": "system", "content": 1}', '[{"type": "text"}]', '"offline"', '"user"',
]  # fmt: skip
_QUESTION = "What is the credit score of client id 2000038?"
_CHAT = {
    "model": "offline",
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": _QUESTION}],
    "max_tokens": 40, "temperature": 0.2, "top_p": 1, "n": 1, "seed": 7, "stop": ["zzz"], "stream": False,
    "user": "fuzz", "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    "tool_choice": "none", "parallel_tool_calls": True, "response_format": {"type": "text"},
}  # fmt: skip
VALID_BODIES = {
    "/v1/chat/completions": _CHAT,
    "/v1/chat/batch": {"requests": [{"custom_id": "a", "body": _CHAT}], "concurrency": 2},
    "/v1/completions": {"model": "offline", "prompt": ["Hi", _QUESTION], "max_tokens": 8, "echo": False},
    "/v1/embeddings": {"model": "offline", "input": ["a", "b"], "dimensions": 8, "encoding_format": "float"},
    "/v1/credit-comparison": {"customers": ["2000038", "edwina.hawthorne@example.com"]},
    "/v1/feedback": {"completion_id": "chatcmpl-0", "rating": 1, "comment": "fine"},
}
_SENTINEL = "\u0000hostile\u0000"


def _places(value, path=()):
    """Every place in a body a value stands: (path, key to add or replace)."""
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _places(item, (*path, key))
        yield (*path, "extra_field")
    elif isinstance(value, list):
        for n, item in enumerate(value):
            yield from _places(item, (*path, n))


def _with_hostile(body, path, raw: str) -> bytes:
    if not path:
        return raw.encode()
    copy = json.loads(json.dumps(body))
    target = copy
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = _SENTINEL
    return json.dumps(copy).replace(json.dumps(_SENTINEL), raw).encode()


@pytest.mark.parametrize("path", list(VALID_BODIES))
def test_hostile_json_values_get_openai_errors_and_never_a_5xx(fuzz_mesh, path):
    """Lone surrogates, integers beyond 64 bits, infinities, wrong types
    where booleans and numbers are expected, 20,000-deep nesting and 100 KB
    strings in every place of a valid body: a 400 (or an answer), never a
    5xx, always OpenAI's error JSON naming what it can."""
    body = VALID_BODIES[path]
    places = list(_places(body))
    seen: list[tuple[int, str]] = []

    @given(place=strategies.sampled_from(places), raw=strategies.sampled_from(HOSTILE_JSON))
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
              database=None)  # fmt: skip
    def check(place, raw):
        data = _with_hostile(body, place, raw)
        status, headers, reply = http(
            "POST",
            f"{fuzz_mesh.rest_url}{path}",
            data,
            {"Authorization": f"Bearer {fuzz_mesh.admin_key}", "Content-Type": "application/json"},
        )
        where = f"{path} {place} = {raw[:40]}"
        assert status < 500, (where, status, reply[:300])
        if status >= 400:
            assert headers.get("Content-Type", headers.get("content-type", "")).startswith("application/json"), where
            error = json.loads(reply)["error"]
            assert {"message", "type", "param", "code"} <= set(error) and error["message"], (where, error)
        seen.append((status, raw))

    check()
    assert len(seen) >= 40
    assert any(400 <= s < 500 for s, _ in seen)
    assert any("\\ud" in raw for _, raw in seen)  # a lone surrogate was sent
