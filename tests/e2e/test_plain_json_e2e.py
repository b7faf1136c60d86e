"""Plain JSON on every endpoint, read through Envoy as a REST client reads
it: a time is an ISO 8601 string, a value that is not there is null (never
0 or ""), no protobuf shapes leak ({"seconds", "nanos"}), and every answer
the OpenAPI document gives a schema matches it."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import pytest
from jsonschema import Draft202012Validator

from tests.e2e.conftest import http, http_json

pytestmark = pytest.mark.e2e

PROMPT = "plain-json-check"
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")
TEMPLATE = "Answer from the data below only.\n\n{context}"


def _admin(mesh, method: str, path: str, body: object = None) -> dict:
    status, answer = http_json(method, f"{mesh.rest_url}{path}", body, key=mesh.admin_key)
    assert status in (200, 202), (method, path, status, answer)
    return answer


def _times_and_shapes(value, path="$") -> list[str]:
    """What in an answer is not plain JSON: protobuf Timestamp objects, and
    times (`at`, `*_at`) that are not ISO 8601 strings in UTC or null."""
    wrong = []
    if isinstance(value, dict):
        if set(value) == {"seconds", "nanos"} or set(value) == {"seconds"}:
            wrong.append(f"{path}: a protobuf Timestamp")
        for key, item in value.items():
            if (key == "at" or key.endswith("_at")) and not (
                item is None or (isinstance(item, str) and ISO.match(item))
            ):
                wrong.append(f"{path}.{key} = {item!r}: not an ISO 8601 time")
            wrong += _times_and_shapes(item, f"{path}.{key}")
    elif isinstance(value, list):
        for n, item in enumerate(value):
            wrong += _times_and_shapes(item, f"{path}[{n}]")
    return wrong


@pytest.fixture(scope="module")
def document(mesh) -> dict:
    status, document = http_json("GET", f"{mesh.rest_url}/openapi.json", key=None)
    assert status == 200
    return document


def _conforms(document: dict, method: str, template: str, answer: dict, status: int = 200) -> None:
    content = document["paths"][template][method.lower()]["responses"][str(status)]["content"]
    schema = content["application/json"]["schema"]
    assert schema != {"type": "object"}, f"{method} {template}: the document gives its answer no schema"
    validator = Draft202012Validator({**schema, "components": document["components"]})
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"[:300] for e in validator.iter_errors(answer)]
    assert not errors, (method, template, errors[:5])


@pytest.fixture(scope="module")
def activity(mesh) -> dict:
    """A prompt with two versions, an experiment between them (stopped), a
    finished evaluation run and a chat turn on the access log."""
    first = _admin(mesh, "POST", f"/v1/prompts/{PROMPT}/versions", {"template": TEMPLATE})
    second = _admin(mesh, "POST", f"/v1/prompts/{PROMPT}/versions", {"template": TEMPLATE + "\nBe brief."})
    listed_before = _admin(mesh, "GET", "/v1/prompts")
    arms = [{"version": 1}, {"version": 2}]
    experiment = _admin(mesh, "POST", "/v1/experiments", {"prompt": PROMPT, "arms": arms, "min_samples": 50})
    listed_during = _admin(mesh, "GET", "/v1/prompts")
    experiment_id = experiment["experiment"]["id"]
    stopped = _admin(mesh, "POST", f"/v1/experiments/{experiment_id}/stop", {"reason": "checked"})
    body = {"models": ["offline"], "customers": ["edwina.hawthorne@example.com"], "questions": 3}
    started = _admin(mesh, "POST", "/v1/evaluations", body)
    run_id = started["run"]["id"]
    deadline = time.monotonic() + 120
    while (evaluation := _admin(mesh, "GET", f"/v1/evaluations/{run_id}"))["run"]["state"] == "running":
        assert time.monotonic() < deadline, evaluation["run"]
        time.sleep(0.2)
    chat = {"model": "offline", "messages": [{"role": "user", "content": "Status of client id 2480135?"}]}
    status, _ = http_json("POST", f"{mesh.rest_url}/v1/chat/completions", chat)
    assert status == 200
    return {
        "POST /v1/prompts/{name}/versions": [first, second],
        "GET /v1/prompts": [listed_before, listed_during],
        "POST /v1/experiments": [experiment],
        "POST /v1/experiments/{experiment_id}/stop": [stopped],
        "GET /v1/experiments/{experiment_id}": [_admin(mesh, "GET", f"/v1/experiments/{experiment_id}")],
        "GET /v1/prompts/{name}": [_admin(mesh, "GET", f"/v1/prompts/{PROMPT}")],
        "POST /v1/evaluations": [started],
        "GET /v1/evaluations/{run_id}": [evaluation],
        "GET /v1/quality": [_admin(mesh, "GET", "/v1/quality?check=now")],
        "GET /v1/quality/history": [_admin(mesh, "GET", "/v1/quality/history?hours=1")],
        "GET /v1/virtuous-cycle/status": [_admin(mesh, "GET", "/v1/virtuous-cycle/status")],
        "GET /v1/access-log": [_admin(mesh, "GET", "/v1/access-log?limit=20")],
        "GET /v1/experiments": [_admin(mesh, "GET", f"/v1/experiments?prompt={PROMPT}")],
        "GET /v1/evaluations": [_admin(mesh, "GET", "/v1/evaluations?limit=5")],
    }


def test_times_are_iso_8601_on_every_endpoint(mesh, activity):
    answers = {name: answers for name, answers in activity.items()}
    for path in ("/health", "/v1/models", "/v1/field-discovery/all", "/v1/credit-report/2480135"):
        status, answer = http_json("GET", f"{mesh.rest_url}{path}")
        assert status == 200, (path, answer)
        answers[f"GET {path}"] = [answer]
    status, answer = http_json("GET", f"{mesh.rest_url}/v1/console/mesh", key=mesh.admin_key)
    assert status == 200
    answers["GET /v1/console/mesh"] = [answer]
    wrong = [f"{name} {w}" for name, found in answers.items() for a in found for w in _times_and_shapes(a)]
    assert not wrong, wrong[:10]
    # The times are the moments they stand for.
    run = activity["GET /v1/evaluations/{run_id}"][0]["run"]
    started, finished = (datetime.fromisoformat(run[k].replace("Z", "+00:00")) for k in ("started_at", "finished_at"))
    assert started <= finished <= datetime.now(UTC) and (datetime.now(UTC) - started).total_seconds() < 300


def test_what_is_not_there_is_null_not_zero_or_empty(activity):
    before, during = activity["GET /v1/prompts"]
    assert next(p for p in before["prompts"] if p["name"] == PROMPT)["running_experiment_id"] is None
    experiment_id = activity["POST /v1/experiments"][0]["experiment"]["id"]
    assert next(p for p in during["prompts"] if p["name"] == PROMPT)["running_experiment_id"] == experiment_id
    history = activity["GET /v1/prompts/{name}"][0]["history"]
    created = [h for h in history if h["action"] == "created"]
    assert created and all(h["previous_version"] is None and h["detail"] is None for h in created)
    versions = activity["GET /v1/prompts/{name}"][0]["versions"]
    assert [v["note"] for v in versions] == [None, None]  # none was given
    answers = activity["GET /v1/evaluations/{run_id}"][0]["report"]["answers"]
    assert answers and all(a["error"] is None for a in answers)
    run = activity["GET /v1/evaluations/{run_id}"][0]["run"]
    assert run["state"] == "succeeded"
    assert (run["error"], run["prompt_version"], run["note"]) == (None, None, None)
    report_run = activity["GET /v1/evaluations/{run_id}"][0]["report"]["run"]
    assert (report_run["error"], report_run["version"], report_run["note"]) == (None, None, None)
    assert ISO.match(report_run["started_at"]) and ISO.match(report_run["finished_at"])
    started = activity["POST /v1/evaluations"][0]["run"]
    assert started["finished_at"] is None and started["error"] is None


def test_every_answer_matches_the_schema_the_document_gives_it(document, activity):
    for name, answers in activity.items():
        method, template = name.split(" ", 1)
        status = 202 if name == "POST /v1/evaluations" else 200
        for answer in answers:
            _conforms(document, method, template, answer, status)


def test_the_evaluation_report_page_shows_when_it_started(mesh, activity):
    run = activity["GET /v1/evaluations/{run_id}"][0]["run"]
    status, _, page = http(
        "GET",
        f"{mesh.rest_url}/v1/evaluations/{run['id']}/report.html",
        None,
        {"Authorization": f"Bearer {mesh.admin_key}"},
    )
    started = datetime.fromisoformat(run["started_at"].replace("Z", "+00:00"))
    assert status == 200 and started.strftime("%Y-%m-%d %H:%M:%S UTC").encode() in page


def test_the_lists_hold_what_was_started(activity):
    [listed] = activity["GET /v1/experiments"]
    experiment = activity["POST /v1/experiments/{experiment_id}/stop"][0]["experiment"]
    assert [x["id"] for x in listed["experiments"]] == [experiment["id"]]
    assert listed["experiments"][0]["state"] == "killed"
    [runs] = activity["GET /v1/evaluations"]
    run = activity["GET /v1/evaluations/{run_id}"][0]["run"]
    assert runs["runs"][0]["id"] == run["id"] and runs["runs"][0]["state"] == "succeeded"
    assert len(runs["runs"]) <= 5


@pytest.mark.parametrize("path", ["/v1/experiments", "/v1/evaluations"])
@pytest.mark.parametrize("limit", ["0", "101", "x", "-1", "9" * 30])
def test_a_list_limit_out_of_range_is_a_400_naming_it(mesh, path, limit):
    status, body = http_json("GET", f"{mesh.rest_url}{path}?limit={limit}", key=mesh.admin_key)
    assert status == 400 and body["error"]["param"] == "limit", body
