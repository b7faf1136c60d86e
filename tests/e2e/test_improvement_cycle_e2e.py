"""The self-improving loop end to end with the offline provider: answers of
one category score low, the optimizer notices, writes variants, runs an
experiment, and the decision shows in the cycle status."""

from __future__ import annotations

import time

import grpc
import pytest
from tilores_x.v1 import optimizer_pb2, optimizer_pb2_grpc

from tests.e2e.conftest import http_json, record_weak_credit_answers, start_local_mesh

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    mesh = start_local_mesh(tmp_path_factory.mktemp("cycle"), QUALITY_CHECK_INTERVAL_S="0.3")
    yield mesh
    mesh.stop()


def wait_for(predicate, timeout_s: float = 30.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_a_weak_category_is_improved_and_the_decision_shows(mesh):
    admin = mesh.admin_key
    status_url = f"{mesh.rest_url}/v1/virtuous-cycle/status"
    with grpc.secure_channel(mesh.grpc_addr, mesh.client_credentials()) as channel:
        optimizer = optimizer_pb2_grpc.OptimizerServiceStub(channel)
        metadata = (("x-mesh-service", "optimizer"),)
        record_weak_credit_answers(optimizer, metadata)
        # The optimizer's own watch notices and starts a cycle.
        status = wait_for(lambda: (s := http_json("GET", status_url, key=admin)[1]).get("cycles") and s)
        [cycle] = status["cycles"]
        assert cycle["category"] == "credit" and "below warning" in cycle["reason"]
        # The turns' weakest evaluator is coverage (712 is never given), so
        # the coverage patterns come first.
        assert [v["pattern"] for v in cycle["variants"]] == ["say_not_on_file", "answer_first"]
        experiment = cycle["experiment"]
        assert experiment["state"] == "running" and len(experiment["arms"]) == 3
        credit = next(q for q in status["quality_by_category"] if q["key"] == "credit")
        assert credit["level"] == "critical"
        # Conversations get their arm; the say_not_on_file variant answers well.
        winner = cycle["variants"][0]["version"]
        for n in range(800):
            chosen = optimizer.GetPrompt(
                optimizer_pb2.GetPromptRequest(name="customer", conversation_id=f"conv-{n}"), metadata=metadata
            )
            score = 0.97 if chosen.version == winner else 0.62
            optimizer.RecordOutcome(
                optimizer_pb2.RecordOutcomeRequest(
                    completion_id=f"chatcmpl-exp-{n}", prompt="customer", version=chosen.version,
                    experiment_id=chosen.experiment_id, category="credit", score=score + (n % 5) * 0.004,
                ),
                metadata=metadata,
            )  # fmt: skip
            if chosen.experiment_id != experiment["id"]:
                break  # the experiment has ended
    status = wait_for(lambda: (s := http_json("GET", status_url, key=admin)[1])["cycles"][0].get("outcome") and s)
    cycle = status["cycles"][0]
    assert cycle["outcome"].startswith("promoted") and cycle["experiment"]["state"] == "promoted"
    learning = {entry["pattern"]: entry for entry in status["learning"]}
    assert learning["say_not_on_file"]["wins"] == 1 and learning["answer_first"]["losses"] == 1
    # The winner is live: a new chat gets it.
    _, versions = http_json("GET", f"{mesh.rest_url}/v1/prompts/customer", key=admin)
    assert versions["active_version"] == winner
