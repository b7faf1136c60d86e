"""Prompt registry, sticky experiments, their statistics and the decision
rule, on a real SQLite store."""

import asyncio
import random
import threading

import pytest
from scipy import stats

from services.optimizer.arm_statistics import proportion_p_value, summarise, welch_p_value
from services.optimizer.experiments import (
    CONCLUDED,
    KILLED,
    PROMOTED,
    RUNNING,
    STOPPED_GUARDRAIL,
    Arm,
    Experiments,
    assign,
)
from services.optimizer.prompts import PromptRegistry, template_variables
from services.runtime.faults import InvalidArgument, NotFound

TEMPLATE = "Answer from the data only; cite record ids.\n\n{context}"


@pytest.fixture
def storage(open_store):
    return open_store()


@pytest.fixture
def registry(storage):
    return PromptRegistry(storage)


@pytest.fixture
def experiments(storage, registry):
    return Experiments(storage, registry)


def test_defaults_are_version_one_and_active(registry):
    assert registry.active("customer").version == 1
    assert "{context}" in registry.active("general").template


def test_versions_are_immutable_and_activation_is_audited(registry):
    v2 = registry.create("customer", "Be brief.\n\n{context}", note="shorter")
    assert (v2.version, v2.variables, v2.note) == (2, ("context",), "shorter")
    assert registry.active("customer").version == 1  # a new version is not active by itself
    registry.activate("customer", 2, "reviewed")
    assert registry.active("customer").version == 2
    assert registry.rollback("customer", "too terse").version == 1
    with pytest.raises(InvalidArgument, match="no earlier active version"):
        registry.rollback("customer")
    actions = [(e.action, e.version, e.previous_version) for e in registry.history("customer")]
    assert actions == [("activated", 1, None), ("created", 2, None), ("activated", 2, 1), ("rolled_back", 1, 2)]
    assert registry.get("customer", 2).template == "Be brief.\n\n{context}"


def test_templates_are_checked_on_creation(registry):
    with pytest.raises(InvalidArgument, match=r"unknown variable \{customer_email\}") as caught:
        registry.create("customer", "Hello {customer_email}\n{context}")
    assert caught.value.field == "template"
    with pytest.raises(InvalidArgument, match="brace"):
        template_variables("a lone { brace")
    assert template_variables('JSON looks like {{"a": 1}}; {context}') == ("context",)


def test_unknown_prompts_and_versions_are_not_found(registry):
    with pytest.raises(NotFound) as caught:
        registry.active("nonexistent")
    assert caught.value.field == "name"
    with pytest.raises(NotFound) as caught:
        registry.get("customer", 99)
    assert caught.value.field == "version"


def test_assignment_is_sticky_and_splits_by_weight():
    arms = (Arm(1, 70), Arm(2, 30))
    picks = [assign("salt-1", f"conversation-{n}", arms).version for n in range(10_000)]
    assert abs(picks.count(1) / 10_000 - 0.70) <= 0.01
    assert [assign("salt-1", f"conversation-{n}", arms).version for n in range(100)] == picks[:100]
    three = (Arm(1, 5), Arm(2, 3), Arm(3, 2))
    picks = [assign("salt-2", f"key-{n}", three).version for n in range(10_000)]
    for version, share in ((1, 0.5), (2, 0.3), (3, 0.2)):
        assert abs(picks.count(version) / 10_000 - share) <= 0.01
    # Another experiment (another salt) splits independently.
    other = [assign("salt-3", f"conversation-{n}", arms).version for n in range(10_000)]
    assert sum(a != b for a, b in zip(picks, other, strict=True)) > 1000


def test_statistics_agree_with_scipy_on_known_data():
    a = [0.91, 0.85, 0.88, 0.95, 0.90, 0.87, 0.93, 0.89]
    b = [0.80, 0.78, 0.85, 0.82, 0.79, 0.84, 0.81, 0.77, 0.83]
    summary = summarise(a)
    assert summary.count == 8 and summary.mean == pytest.approx(sum(a) / 8)
    assert summary.std == pytest.approx(stats.tstd(a))
    low, high = stats.t.interval(0.95, 7, loc=summary.mean, scale=stats.sem(a))
    assert (summary.ci_low, summary.ci_high) == (pytest.approx(low), pytest.approx(high))
    assert welch_p_value(a, b) == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert welch_p_value(a, b) < 1e-4
    # 45/100 against 30/100: z = 2.191, two-sided p = 0.0285 (textbook two-proportion z-test).
    assert proportion_p_value(45, 100, 30, 100) == pytest.approx(0.02846, abs=1e-4)
    assert proportion_p_value(0, 10, 0, 10) == 1.0 and welch_p_value([0.5], [0.6, 0.7]) == 1.0


def outcomes(experiments, experiment, rng, quality: dict[int, float], errors: dict[int, float], turns: int):
    arms = experiment.arms
    decision = None
    for n in range(turns):
        arm = assign(experiment.salt, f"c{n}", arms)
        failed = rng.random() < errors.get(arm.version, 0.0)
        score = None if failed else min(1.0, max(0.0, rng.gauss(quality[arm.version], 0.05)))
        decision = experiments.record(
            f"chatcmpl-{experiment.id}-{n}", experiment.prompt, arm.version, experiment.id, score=score, error=failed
        )
        if experiments.get(experiment.id).state != RUNNING:
            break
    return decision


def test_a_better_candidate_is_promoted_automatically(registry, experiments):
    registry.create("customer", TEMPLATE)
    experiment = experiments.start("customer", [(1, 50), (2, 50)], min_samples=30, auto_promote=True, salt="s1")
    decision = outcomes(experiments, experiment, random.Random(1), {1: 0.80, 2: 0.90}, {}, 400)
    assert decision.action == "promote" and decision.version == 2
    assert experiments.get(experiment.id).state == PROMOTED
    assert registry.active("customer").version == 2
    assert registry.history("customer")[-1].detail.startswith(f"experiment {experiment.id}")


def test_without_auto_promotion_the_winner_is_reported_not_activated(registry, experiments):
    registry.create("customer", TEMPLATE)
    experiment = experiments.start("customer", [(1, 1), (2, 1)], min_samples=30, salt="s2")
    outcomes(experiments, experiment, random.Random(2), {1: 0.80, 2: 0.90}, {}, 400)
    assert experiments.get(experiment.id).state == CONCLUDED and registry.active("customer").version == 1


def test_the_guardrail_stops_a_worse_candidate_early(registry, experiments):
    registry.create("customer", TEMPLATE)
    experiment = experiments.start("customer", [(1, 50), (2, 50)], min_samples=30, auto_promote=True, salt="s1")
    decision = outcomes(experiments, experiment, random.Random(3), {1: 0.90, 2: 0.80}, {}, 2000)
    assert decision.action == "stop_candidate" and decision.version == 2
    ended = experiments.get(experiment.id)
    assert ended.state == STOPPED_GUARDRAIL and "worse on quality" in ended.decision
    assert registry.active("customer").version == 1


def test_the_guardrail_watches_error_rates_too(registry, experiments):
    registry.create("customer", TEMPLATE)
    experiment = experiments.start("customer", [(1, 50), (2, 50)], min_samples=40, salt="s3")
    outcomes(experiments, experiment, random.Random(4), {1: 0.85, 2: 0.85}, {2: 0.3}, 2000)
    assert "worse on error rate" in experiments.get(experiment.id).decision


def test_equal_arms_are_rarely_called_different(registry, experiments):
    """Looking at checkpoints with the significance split between looks keeps
    false calls between equal arms near alpha (0.05), where a look after
    every turn would make several times as many."""
    false_calls = 0
    for k in range(60):
        registry.create(f"p{k}", TEMPLATE)
        registry.create(f"p{k}", "Shorter. {context}")
        experiment = experiments.start(f"p{k}", [(1, 1), (2, 1)], min_samples=30, salt=f"salt-{k}")
        outcomes(experiments, experiment, random.Random(k), {1: 0.85, 2: 0.85}, {}, 250)
        false_calls += experiments.get(experiment.id).state != RUNNING
    assert false_calls <= 6
    report = experiments.report(experiment.id)
    assert [a.quality.count for a in report.arms] == [a.turns for a in report.arms]


def test_bad_experiments_are_refused_by_name(registry, experiments):
    registry.create("customer", TEMPLATE)
    for arms, field in (
        ([(1, 1)], "arms"),
        ([(1, 1), (7, 1)], "arms[1].version"),
        ([(1, 0), (2, 0)], "arms"),
        ([(1, 1), (1, 1)], "arms"),
    ):
        with pytest.raises(InvalidArgument) as caught:
            experiments.start("customer", arms)
        assert caught.value.field == field
    with pytest.raises(NotFound):
        experiments.start("nonexistent", [(1, 1), (2, 1)])
    experiments.start("customer", [(1, 1), (2, 1)])
    with pytest.raises(InvalidArgument, match="already has a running experiment"):
        experiments.start("customer", [(1, 1), (2, 1)])


def test_kill_switch_and_feedback(registry, experiments):
    registry.create("customer", TEMPLATE)
    experiment = experiments.start("customer", [(1, 1), (2, 1)])
    version, experiment_id = experiments.choose("customer", "conversation-9")
    assert experiment_id == experiment.id
    assert experiments.choose("customer", "conversation-9")[0] == version  # sticky
    experiments.record("chatcmpl-x", "customer", version.version, experiment.id, score=0.9)
    experiments.feedback("chatcmpl-x", thumbs_up=False, comment="wrong balance")
    with pytest.raises(NotFound):
        experiments.feedback("chatcmpl-unknown", thumbs_up=True)
    killed = experiments.kill(experiment.id, "bad answers reported")
    assert killed.state == KILLED and experiments.choose("customer", "conversation-9") == (
        registry.active("customer"),
        0,
    )
    report = experiments.report(experiment.id)
    assert sum(a.thumbs_down for a in report.arms) == 1


async def test_feedback_before_its_outcome_waits_for_it(registry, experiments):
    """A quick user rates an answer whose outcome is still on its way."""
    registry.create("customer", TEMPLATE)

    async def outcome_arrives() -> None:
        await asyncio.sleep(0.25)
        experiments.record("chatcmpl-late", "customer", 1, 0, score=0.8)

    arriving = asyncio.create_task(outcome_arrives())
    await experiments.feedback_when_recorded("chatcmpl-late", True, "quick", wait_s=2.0)
    await arriving
    with pytest.raises(NotFound):
        await experiments.feedback_when_recorded("chatcmpl-never", True, "", wait_s=0.3)


def test_identical_constant_scores_are_no_difference():
    assert welch_p_value([0.8] * 7, [0.8] * 9) == 1.0
    assert welch_p_value([0.8] * 7, [0.9] * 9) == 0.0


def test_two_processes_worth_of_writers_lose_nothing(open_store):
    """Two stores on the same data (as two replicas would be) writing at once."""
    stores = [open_store(), open_store()]
    for store in stores:
        PromptRegistry(store)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        experiments = Experiments(stores[n], PromptRegistry(stores[n]))
        try:
            for i in range(200):
                experiments.record(f"w{n}-{i}", "customer", 1, score=0.9)
        except BaseException as error:  # collected, then asserted on
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert stores[0].query("SELECT COUNT(*) FROM outcomes") == [(400,)]
