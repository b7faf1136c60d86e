"""OptimizerService over gRPC: versions, rollback, experiments, outcomes,
feedback, and the statuses bad input gets."""

from __future__ import annotations

import asyncio
import random

import grpc
import orjson
import pytest
from tilores_x.v1 import common_pb2, llm_gateway_pb2_grpc, optimizer_pb2, optimizer_pb2_grpc

from services.optimizer.clients import TextGenerationOverGrpc
from services.optimizer.judge import LlmJudge
from services.optimizer.service import OptimizerComponent
from services.optimizer.storage import SqliteStore
from services.optimizer.variant_writer import LlmVariantWriter
from services.runtime.server import start_server
from tests.emulators.base import Script
from tests.integration.conftest import free_port_settings, running_mesh
from tests.integration.grpc_errors import field_violations

TEMPLATE = "Answer only from the data.\n\n{context}"


@pytest.fixture
async def optimizer(open_store):
    running = await start_server(OptimizerComponent(open_store()), free_port_settings("optimizer"))
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    yield optimizer_pb2_grpc.OptimizerServiceStub(channel)
    await channel.close()
    await running.stop(0)


async def rpc_error(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def test_versions_activation_rollback_and_history(optimizer):
    created = await optimizer.CreatePromptVersion(
        optimizer_pb2.CreatePromptVersionRequest(name="customer", template=TEMPLATE, note="stricter", activate=True)
    )
    assert (created.version.version, list(created.version.variables)) == (2, ["context"])
    assert (await optimizer.GetPrompt(optimizer_pb2.GetPromptRequest(name="customer"))).version == 2
    back = await optimizer.RollbackPrompt(optimizer_pb2.RollbackPromptRequest(name="customer", reason="complaints"))
    assert back.version.version == 1
    listing = await optimizer.ListPromptVersions(optimizer_pb2.ListPromptVersionsRequest(name="customer"))
    assert [v.version for v in listing.versions] == [1, 2] and listing.active_version == 1
    assert [(h.action, h.version) for h in listing.history][-1] == ("rolled_back", 1)
    assert listing.history[-1].detail == "complaints"


async def test_an_experiment_assigns_stickily_and_reports(optimizer):
    await optimizer.CreatePromptVersion(optimizer_pb2.CreatePromptVersionRequest(name="customer", template=TEMPLATE))
    started = await optimizer.StartExperiment(
        optimizer_pb2.StartExperimentRequest(
            prompt="customer",
            arms=[optimizer_pb2.ExperimentArm(version=1, weight=1), optimizer_pb2.ExperimentArm(version=2, weight=1)],
            min_samples=5,
        )
    )
    experiment = started.experiment
    assert experiment.state == optimizer_pb2.EXPERIMENT_STATE_RUNNING and experiment.control_version == 1
    seen = {}
    for n in range(40):
        reply = await optimizer.GetPrompt(optimizer_pb2.GetPromptRequest(name="customer", conversation_id=f"c{n}"))
        again = await optimizer.GetPrompt(optimizer_pb2.GetPromptRequest(name="customer", conversation_id=f"c{n}"))
        assert reply.version == again.version and reply.experiment_id == experiment.id
        seen[f"c{n}"] = reply.version
        await optimizer.RecordOutcome(
            optimizer_pb2.RecordOutcomeRequest(
                completion_id=f"chatcmpl-{n}", prompt="customer", version=reply.version,
                experiment_id=experiment.id, score=0.8, latency_ms=900, tokens=300, category="credit",
            )
        )  # fmt: skip
    assert set(seen.values()) == {1, 2}
    await optimizer.RecordFeedback(optimizer_pb2.RecordFeedbackRequest(completion_id="chatcmpl-3", thumbs_up=True))
    report = (await optimizer.GetExperiment(optimizer_pb2.GetExperimentRequest(experiment_id=experiment.id))).experiment
    assert sum(a.turns for a in report.arms) == 40 and sum(a.thumbs_up for a in report.arms) == 1
    assert report.arms[1].HasField("p_quality") and not report.arms[0].HasField("p_quality")
    stopped = await optimizer.StopExperiment(
        optimizer_pb2.StopExperimentRequest(experiment_id=experiment.id, reason="kill switch drill")
    )
    assert stopped.experiment.state == optimizer_pb2.EXPERIMENT_STATE_KILLED
    assert "kill switch drill" in stopped.experiment.decision
    reply = await optimizer.GetPrompt(optimizer_pb2.GetPromptRequest(name="customer", conversation_id="c1"))
    assert (reply.version, reply.experiment_id) == (1, 0)


async def test_bad_input_gets_the_right_status_naming_the_problem(optimizer):
    error = await rpc_error(optimizer.GetPrompt(optimizer_pb2.GetPromptRequest(name="nonexistent")))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    error = await rpc_error(
        optimizer.ActivatePromptVersion(optimizer_pb2.ActivatePromptVersionRequest(name="customer", version=9))
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND and field_violations(error) == ["version"]
    error = await rpc_error(
        optimizer.CreatePromptVersion(
            optimizer_pb2.CreatePromptVersionRequest(name="customer", template="{ssn} {context}")
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "{ssn}" in error.details()
    arms = [optimizer_pb2.ExperimentArm(version=1, weight=0), optimizer_pb2.ExperimentArm(version=1, weight=0)]
    error = await rpc_error(
        optimizer.StartExperiment(optimizer_pb2.StartExperimentRequest(prompt="customer", arms=arms))
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    arms = [optimizer_pb2.ExperimentArm(version=1, weight=1), optimizer_pb2.ExperimentArm(version=5, weight=1)]
    error = await rpc_error(
        optimizer.StartExperiment(optimizer_pb2.StartExperimentRequest(prompt="customer", arms=arms))
    )
    assert field_violations(error) == ["arms[1].version"]
    error = await rpc_error(
        optimizer.RecordFeedback(optimizer_pb2.RecordFeedbackRequest(completion_id="chatcmpl-nope", thumbs_up=False))
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND and field_violations(error) == ["completion_id"]


async def test_quality_report_and_alerts_over_grpc(optimizer):
    for n in range(20):
        await optimizer.RecordOutcome(
            optimizer_pb2.RecordOutcomeRequest(
                completion_id=f"chatcmpl-q{n}", prompt="customer", version=1, model="gpt-4o-mini",
                question="What is her credit score?", answer="Her TransUnion score is 745.",
                grounding=common_pb2.Grounding(
                    status=common_pb2.GROUNDING_STATUS_FOUND, text="- [credit] TransUnion credit score: 712",
                    facts=[common_pb2.Fact(topic="credit", label="TransUnion credit score", value="712")],
                ),
            )
        )  # fmt: skip
    report = await optimizer.GetQuality(optimizer_pb2.GetQualityRequest(check_now=True))
    groups = {(g.group, g.key): g for g in report.groups}
    credit = groups[("category", "credit")]
    # 745 is not in the context: groundedness 0, coverage 0 -> overall 0.3
    assert credit.turns == 20 and credit.mean == pytest.approx(0.3) and credit.level == "critical"
    assert {a.key for a in report.alerts} >= {"quality:category:credit", "quality:model:gpt-4o-mini"}
    assert all(a.severity == "CRITICAL" for a in report.alerts)


async def test_a_model_writes_the_cycles_variants(tmp_path):
    variants = "Quote every value exactly.\n\n{context}\n---\nBe complete; say what is missing.\n\n{context}"
    async with running_mesh(tmp_path, Script(text=variants)) as (mesh, emulator):
        storage = SqliteStore(str(tmp_path / "cycle.db"))
        writer = LlmVariantWriter(
            _text(mesh),
            "gpt-4o-mini",
        )
        component = OptimizerComponent(storage, variant_writer=writer)
        for n in range(15):
            component.experiments.record(f"w{n}", "customer", 1, category="credit", score=0.5, weakest="coverage")
        record = await component.cycle.trigger("customer", "credit")
        assert [p for _, p in record.variants] == ["model", "model"]
        assert component.registry.get("customer", 2).template == "Quote every value exactly.\n\n{context}"
        sent = emulator.requests[-1]["messages"]
        assert "left parts of the question unanswered" in sent[1]["content"]
        assert component.registry.active("customer").template in sent[1]["content"]
        # A variant that drops {context} or invents a placeholder is not used; patterns fill in.
        component.experiments.kill(record.experiment_id)
        emulator.script = Script(text="No placeholder here.\n---\nHello {name}\n\n{context}")
        second = await component.cycle.trigger("customer", "credit")
        assert [p for _, p in second.variants] == ["say_not_on_file", "answer_first"]
        storage.close()


async def test_a_judge_grades_a_sample_of_answers_beside_the_score(tmp_path):
    async with running_mesh(
        tmp_path, Script(text='{"score": 0.4, "reason": "states a score that is not in the data"}')
    ) as (mesh, emulator):
        storage = SqliteStore(str(tmp_path / "judged.db"))
        judge = LlmJudge(
            _text(mesh),
            "gpt-4o-mini",
            0.5,
            random.Random(3),
        )
        running = await start_server(OptimizerComponent(storage, judge=judge), free_port_settings("optimizer"))
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
        optimizer = optimizer_pb2_grpc.OptimizerServiceStub(channel)
        grounding = common_pb2.Grounding(text="- [credit] TransUnion credit score: 712")
        try:
            for n in range(40):
                await optimizer.RecordOutcome(
                    optimizer_pb2.RecordOutcomeRequest(
                        completion_id=f"chatcmpl-j{n}", prompt="customer", version=1, question="Her credit score?",
                        answer="Her score is 745.", grounding=grounding,
                    )
                )  # fmt: skip
            for _ in range(100):
                rows = storage.query(
                    "SELECT score, judge_score, judge_reason FROM outcomes WHERE judge_score IS NOT NULL"
                )
                if len(rows) == len(emulator.requests):
                    break
                await asyncio.sleep(0.05)
            assert 8 <= len(rows) <= 32  # about half of 40
            assert all(judge_score == 0.4 and "not in the data" in reason for _, judge_score, reason in rows)
            assert all(score is not None for score, _, _ in rows)  # beside the deterministic score, not instead
            assert "Grade from 0 to 1" in emulator.requests[0]["messages"][0]["content"]
            assert emulator.requests[0]["response_format"] == {"type": "json_object"}
            # Both see the invented score: the judge and the scorer agree on every turn.
            quality = await optimizer.GetQuality(optimizer_pb2.GetQualityRequest())
            assert quality.judge_agreement.turns == len(rows) and quality.judge_agreement.agreement == 1.0
            assert quality.judge_agreement.mean_difference == pytest.approx(abs(rows[0][0] - 0.4), abs=1e-3)
        finally:
            await channel.close()
            await running.stop(0)


async def test_the_judge_of_a_cloud_provider_never_sees_what_the_policy_withholds(tmp_path):
    async with running_mesh(tmp_path, Script(text='{"score": 1.0, "reason": "complete"}')) as (mesh, emulator):
        storage = SqliteStore(str(tmp_path / "judged.db"))
        judge = LlmJudge(
            _text(mesh),
            "gpt-4o-mini",
            1.0,
        )
        running = await start_server(OptimizerComponent(storage, judge=judge), free_port_settings("optimizer"))
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
        # A turn the offline model answered: it may see everything, the judge may not.
        grounding = common_pb2.Grounding(
            status=common_pb2.GROUNDING_STATUS_FOUND,
            text="- [identity] Date of birth: 1984-06-12 (record 003A)\n- [identity] Driving licence number: D1234567",
            facts=[
                common_pb2.Fact(topic="identity", label="Date of birth", value="1984-06-12", record_id="003A",
                                pii_kind="date_of_birth"),
                common_pb2.Fact(topic="identity", label="Driving licence number", value="D1234567", record_id="003A",
                                pii_kind="driving_licence"),
            ],
        )  # fmt: skip
        try:
            await optimizer_pb2_grpc.OptimizerServiceStub(channel).RecordOutcome(
                optimizer_pb2.RecordOutcomeRequest(
                    completion_id="chatcmpl-pii", prompt="customer", version=1, model="offline",
                    question="When was she born, and her licence? SSN 123-45-6789",
                    answer="Born 1984-06-12; driving licence D1234567; card 4111 1111 1111 1111.", grounding=grounding,
                )
            )  # fmt: skip
            for _ in range(100):
                if emulator.requests:
                    break
                await asyncio.sleep(0.05)
            sent = orjson.dumps(emulator.requests[0]["messages"]).decode()
            for secret in ("1984-06-12", "D1234567", "123-45-6789", "4111 1111 1111 1111"):
                assert secret not in sent, secret
            assert "[withheld: date of birth]" in sent and "[withheld: driving licence number]" in sent
        finally:
            await channel.close()
            await running.stop(0)


async def test_the_variant_writer_is_shown_no_customer_data(tmp_path):
    variants = "Be exact.\n\n{context}\n---\nCite records.\n\n{context}"
    async with running_mesh(tmp_path, Script(text=variants)) as (mesh, emulator):
        storage = SqliteStore(str(tmp_path / "cycle.db"))
        writer = LlmVariantWriter(
            _text(mesh),
            "gpt-4o-mini",
        )
        component = OptimizerComponent(storage, variant_writer=writer)
        for n in range(15):
            component.experiments.record(f"v{n}", "customer", 1, category="credit", score=0.5, weakest="coverage")
        await component.cycle.trigger("customer", "credit")
        sent = orjson.dumps(emulator.requests[-1]["messages"]).decode()
        # The template and the names of weaknesses; no customer, no record.
        assert "{context}" in sent and "@" not in sent and "record 0" not in sent
        storage.close()


async def test_many_outcomes_in_one_call_each_scored_and_a_bad_one_refused_by_name(optimizer):
    grounding = common_pb2.Grounding(
        status=common_pb2.GROUNDING_STATUS_FOUND,
        text="- [credit] TransUnion credit score: 712",
        facts=[common_pb2.Fact(topic="credit", label="TransUnion credit score", value="712", record_id="r1")],
    )
    outcomes = [
        optimizer_pb2.RecordOutcomeRequest(
            completion_id=f"chatcmpl-b{n}", prompt="customer", version=1, question="Her credit score?",
            answer=f"Her TransUnion credit score is {712 if n % 2 == 0 else 745}.", grounding=grounding,
            mode="agent/credit",
        )
        for n in range(4)
    ]  # fmt: skip
    outcomes.insert(2, optimizer_pb2.RecordOutcomeRequest(completion_id="chatcmpl-bad", prompt="customer", score=7.0))
    reply = await optimizer.RecordOutcomes(optimizer_pb2.RecordOutcomesRequest(outcomes=outcomes))
    assert [(r.index, r.field) for r in reply.refused] == [(2, "outcomes[2].score")]
    assert round(reply.results[0].score, 2) == 1.0
    assert [r.score < 0.85 for r in reply.results] == [False, True, False, True]  # 745 is not on file
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await optimizer.RecordOutcomes(optimizer_pb2.RecordOutcomesRequest(outcomes=[outcomes[0]] * 501))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "500" in caught.value.details()


async def test_what_the_callers_own_tools_returned_is_a_source_the_answer_may_state(optimizer):
    grounding = common_pb2.Grounding(
        status=common_pb2.GROUNDING_STATUS_FOUND,
        text="- [credit] TransUnion credit score: 712",
        facts=[common_pb2.Fact(topic="credit", label="TransUnion credit score", value="712", record_id="r1")],
    )
    answer = "Your tool get_balance returned: balance: 1,250.40. Her TransUnion credit score is 712."
    outcome = optimizer_pb2.RecordOutcomeRequest(
        completion_id="chatcmpl-tool", prompt="customer", version=1,
        question="Her credit score, and what does my tool say?", answer=answer, grounding=grounding,
        tool_results=['{"balance": "1,250.40"}'],
    )  # fmt: skip
    reply = await optimizer.RecordOutcome(outcome)
    assert reply.score == 1.0, reply.evaluators
    outcome.completion_id, outcome.tool_results[:] = "chatcmpl-no-tool", []
    reply = await optimizer.RecordOutcome(outcome)
    grounded = next(e for e in reply.evaluators if e.name == "groundedness")
    assert grounded.score < 1 and "1,250.40" in grounded.reason
    outcome.tool_results[:] = ["{}"] * 17
    error = await rpc_error(optimizer.RecordOutcome(outcome))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "tool_results" in error.details()


def _text(mesh) -> TextGenerationOverGrpc:
    return TextGenerationOverGrpc(llm_gateway_pb2_grpc.LlmGatewayServiceStub(mesh.channel("llm_gateway")))
