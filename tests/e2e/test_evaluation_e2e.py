"""Evaluation runs through the whole mesh: started on the admin REST
endpoint and over gRPC, answered by the offline model and by two provider
emulators that answer from the context like a model (one of them gets a
figure wrong in 40 % of its answers), graded against values computed from
the records; and rolling quality that falls when answers are wrong."""

from __future__ import annotations

import json
import random
import subprocess
import time

import grpc
import pytest
from tilores_x.v1 import optimizer_pb2, optimizer_pb2_grpc

from services.tilores_data.sample import generate_customers
from tests.docs import section as section_of
from tests.e2e.conftest import API_KEY, SAMPLE_CUSTOMERS, http, start_local_mesh
from tests.emulators.grounded_answers import GroundedResponder

CAREFUL, SLOPPY = "gpt-4o-mini", "claude-3-haiku"
SPECTRUMS = {"identity", "financial/credit", "contact", "transactions", "relationships", "risk",
             "behaviour/interactions", "all"}  # fmt: skip
NOTE = "gpt-4o-mini and claude-3-haiku answered through provider emulators, not the real models."


@pytest.fixture(scope="module")
def mesh(tmp_path_factory, emulators):
    emulators.openai.responder = GroundedResponder(error_rate=0.0, seed=1)
    emulators.anthropic.responder = GroundedResponder(error_rate=0.4, seed=2)
    mesh = start_local_mesh(
        tmp_path_factory.mktemp("evaluation"), LLM_BREAKER_FAILURES="100000", QUALITY_CHECK_INTERVAL_S="0",
        **emulators.env(),
    )  # fmt: skip
    yield mesh
    mesh.stop()


def _admin(mesh, method: str, path: str, body: dict | None = None) -> tuple[int, dict | bytes]:
    status, headers, raw = http(
        method,
        f"{mesh.rest_url}{path}",
        json.dumps(body).encode() if body is not None else None,
        {"Authorization": f"Bearer {mesh.admin_key}", "Content-Type": "application/json"},
    )
    kind = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
    return status, json.loads(raw) if kind.startswith("application/json") else raw


def _customers(count: int) -> list[str]:
    emails = [c.records[0]["EMAIL"] for c in generate_customers(SAMPLE_CUSTOMERS)]
    return random.Random(3).sample(emails, count)


def _finished(mesh, run_id: str, timeout_s: float = 180.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status, answer = _admin(mesh, "GET", f"/v1/evaluations/{run_id}")
        assert status == 200, answer
        if answer["run"]["state"] != "running":
            return answer
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} did not finish in {timeout_s} s")


@pytest.fixture(scope="module")
def evaluation(mesh):
    status, started = _admin(
        mesh,
        "POST",
        "/v1/evaluations",
        {"models": ["offline", CAREFUL, SLOPPY], "customers": _customers(12), "questions": 70, "note": NOTE},
    )
    assert status == 202, started
    assert started["run"]["state"] == "running" and started["run"]["total"] == 210
    return _finished(mesh, started["run"]["id"])


def _cell(answer: dict, model: str, spectrum: str = "all") -> dict:
    return next(c for c in answer["run"]["cells"] if c["model"] == model and c["spectrum"] == spectrum)


def test_the_matrix_has_every_model_and_spectrum(evaluation):
    run = evaluation["run"]
    assert run["state"] == "succeeded" and run["done"] == 210 and run["models"] == ["offline", CAREFUL, SLOPPY]
    for model in run["models"]:
        assert {c["spectrum"] for c in run["cells"] if c["model"] == model} == SPECTRUMS
        assert _cell(evaluation, model)["questions"] == 70
    assert len(evaluation["report"]["answers"]) == 210


def test_the_offline_model_states_only_true_values_and_what_was_asked(evaluation):
    offline = _cell(evaluation, "offline")
    assert offline["precision"] == 1.0 and offline["recall"] >= 0.98, offline
    assert offline["refusal_accuracy"] == 1.0 and offline["errors"] == 0
    assert offline["quality"] >= 0.95 and offline["cost_usd"] == 0
    # Follow-ups: the earlier turns asked first, the last graded and right.
    follow_ups = [a for a in evaluation["report"]["answers"] if a["model"] == "offline" and a["earlier"]]
    assert len(follow_ups) == 7, [a["question"] for a in follow_ups]
    assert all(not a["missing"] and not a["wrong"] for a in follow_ups), follow_ups


def test_a_model_that_gets_figures_wrong_scores_lower_on_precision_and_quality(evaluation, emulators):
    careful, sloppy = _cell(evaluation, CAREFUL), _cell(evaluation, SLOPPY)
    assert emulators.anthropic.responder.wrong > 5
    assert careful["precision"] == 1.0, careful
    assert sloppy["precision"] < careful["precision"] and sloppy["quality"] < careful["quality"]
    # The report names the wrong values. A changed figure that happens to be
    # another true value of the same customer is not wrong by precision
    # (the scorer's sentence-level check still sees most of those).
    wrong = [a for a in evaluation["report"]["answers"] if a["model"] == SLOPPY and a["wrong"]]
    assert len(wrong) >= emulators.anthropic.responder.wrong * 0.5
    # Priced from the catalog: the cloud models cost something, tokens counted.
    assert careful["cost_usd"] > 0 and careful["tokens"] > 0 and careful["ttft_p50_ms"] > 0


def test_the_html_report_is_one_self_contained_page_with_heatmaps(mesh, evaluation):
    status, page = _admin(mesh, "GET", f"/v1/evaluations/{evaluation['run']['id']}/report.html")
    assert status == 200
    text = page.decode()
    assert text.startswith("<!doctype html>") and NOTE in text
    assert "Precision" in text and "Recall" in text and "background:#" in text
    assert "<script" not in text and "http://" not in text and "https://" not in text


def test_the_run_is_readable_over_grpc_by_a_caller_with_the_scope(mesh, evaluation):
    run_id = evaluation["run"]["id"]
    with grpc.secure_channel(mesh.grpc_addr, mesh.client_credentials()) as channel:
        stub = optimizer_pb2_grpc.OptimizerServiceStub(channel)
        reply = stub.GetEvaluation(optimizer_pb2.GetEvaluationRequest(run_id=run_id), timeout=10)
        assert reply.run.state == optimizer_pb2.EVALUATION_STATE_SUCCEEDED
        assert json.loads(reply.report_json)["run"]["id"] == run_id
    with grpc.secure_channel(mesh.grpc_addr, mesh.client_credentials("client", "holds-chat")) as channel:
        stub = optimizer_pb2_grpc.OptimizerServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.StartEvaluation(
                optimizer_pb2.StartEvaluationRequest(models=["offline"], customers=["x@example.com"]), timeout=10
            )
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_a_run_started_over_grpc_reports_progress_and_finishes(mesh):
    with grpc.secure_channel(mesh.grpc_addr, mesh.client_credentials()) as channel:
        stub = optimizer_pb2_grpc.OptimizerServiceStub(channel)
        started = stub.StartEvaluation(
            optimizer_pb2.StartEvaluationRequest(models=["offline"], customers=_customers(3), questions=14, seed=5),
            timeout=30,
        )
        assert started.run.started_by == "client/operator"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            reply = stub.GetEvaluation(optimizer_pb2.GetEvaluationRequest(run_id=started.run.id), timeout=10)
            if reply.run.state != optimizer_pb2.EVALUATION_STATE_RUNNING:
                break
            time.sleep(0.3)
        assert reply.run.state == optimizer_pb2.EVALUATION_STATE_SUCCEEDED and reply.run.done == 14
        assert {c.spectrum for c in reply.run.cells} == SPECTRUMS


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"customers": ["a@example.com"]}, "models"),
        ({"models": [], "customers": ["a@example.com"]}, "models"),
        ({"models": ["offline"]}, "customers"),
        ({"models": ["offline"], "customers": [7]}, "customers[0]"),
        ({"models": ["no-such-model"], "customers": ["a@example.com"]}, "models"),
        ({"models": ["offline"], "customers": ["a@example.com"], "questions": 5000}, "questions"),
        ({"models": ["offline"], "customers": ["a@example.com"], "prompt_version": 99}, "prompt_version"),
    ],
)
def test_bad_input_is_refused_naming_the_field(mesh, body, param):
    status, answer = _admin(mesh, "POST", "/v1/evaluations", body)
    assert status == 400 and answer["error"]["param"] == param, answer


def test_an_ordinary_key_cannot_start_a_run_and_an_unknown_run_is_404(mesh):
    status, _headers, raw = http(
        "POST",
        f"{mesh.rest_url}/v1/evaluations",
        json.dumps({"models": ["offline"], "customers": ["a@example.com"]}).encode(),
        {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
    )
    assert status == 403 and json.loads(raw)["error"]["message"] == "This endpoint needs an admin key."
    status, answer = _admin(mesh, "GET", "/v1/evaluations/eval-000000000000")
    assert status == 404 and "eval-000000000000" in answer["error"]["message"]


def test_wrong_answers_move_rolling_quality_below_the_warning_level(mesh, emulators):
    """Live turns, not an evaluation: a model that gets a figure wrong in
    every answer drags its rolling quality under 0.90 and raises an alert."""
    wrong_every_time = GroundedResponder(error_rate=1.0, seed=9)
    emulators.gemini.responder = wrong_every_time
    for email in _customers(12):
        status, _headers, raw = http(
            "POST",
            f"{mesh.rest_url}/v1/chat/completions",
            json.dumps(
                {
                    "model": "gemini-2.5-flash",
                    "messages": [{"role": "user", "content": f"What is the credit score of {email}?"}],
                }
            ).encode(),
            {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
        )
        assert status == 200, raw
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status, quality = _admin(mesh, "GET", "/v1/quality?check=now")
        groups = quality.get("groups", [])
        model = next((g for g in groups if g["group"] == "model" and g["key"] == "gemini-2.5-flash"), None)
        if model and model["turns"] >= 10:
            break
        time.sleep(0.5)
    assert model is not None and model["mean"] < 0.90 and model["level"] in ("critical", "warning"), quality
    assert any("gemini-2.5-flash" in a["key"] for a in quality["alerts"]), quality["alerts"]


def test_the_readmes_evaluation_commands_run_as_written(mesh, tmp_path):
    section = section_of("docs/optimizer.md", "## Evaluation runs")
    section = section[section.index("```sh\n", section.index("```sh\n") + 1) + 6 :]
    commands = [c for c in section[: section.index("```")].replace("\\\n", " ").splitlines() if c.startswith("curl")]
    assert len(commands) == 3
    host = mesh.rest_url.removeprefix("http://").replace("127.0.0.1", "localhost")

    def run(command: str, run_id: str = "") -> str:
        command = command.split("  #", maxsplit=1)[0].replace("localhost:8080", host)
        command = command.replace("<admin key>", mesh.admin_key).replace("eval-…", run_id)
        return subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=True, cwd=tmp_path).stdout

    started = json.loads(run(commands[0]))["run"]
    assert started["state"] == "running" and started["total"] == 70
    answer = _finished(mesh, started["id"])
    assert json.loads(run(commands[1], started["id"]))["run"]["state"] == answer["run"]["state"] == "succeeded"
    run(commands[2], started["id"])
    assert (tmp_path / "report.html").read_text().startswith("<!doctype html>")


def test_a_version_that_is_not_active_is_evaluated_with_its_own_template(mesh, emulators):
    template = "PINNED-CANDIDATE: answer from the data below only.\n\n{context}"
    status, created = _admin(mesh, "POST", "/v1/prompts/customer/versions", {"template": template})
    assert status == 200, created
    version = created["version"]["version"]
    seen = len(emulators.openai.requests)
    status, started = _admin(
        mesh,
        "POST",
        "/v1/evaluations",
        {"models": [CAREFUL], "customers": _customers(2), "questions": 7, "prompt_version": version},
    )
    assert status == 202, started
    answer = _finished(mesh, started["run"]["id"])
    assert answer["run"]["state"] == "succeeded" and answer["run"]["prompt_version"] == version
    systems = [r["messages"][0]["content"] for r in emulators.openai.requests[seen:]]
    customer_turns = [text for text in systems if "Customer data from Tilores" in text]
    assert customer_turns and all(text.startswith("PINNED-CANDIDATE") for text in customer_turns)
    # The live prompt is unchanged, as the list of prompts shows.
    status, prompts = _admin(mesh, "GET", "/v1/prompts/customer")
    assert prompts["active_version"] != version, prompts
    status, listed = _admin(mesh, "GET", "/v1/prompts")
    by_name = {p["name"]: p for p in listed["prompts"]}
    assert status == 200 and set(by_name) >= {"customer", "general"}
    assert by_name["customer"]["active_version"] == prompts["active_version"]
    assert by_name["customer"]["versions"] >= version and by_name["customer"]["running_experiment_id"] is None
