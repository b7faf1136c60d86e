"""The improvement cycle on a real store: a weak category starts a cycle,
variants come from the patterns the evidence calls for, the experiment's end
is learnt from."""

import pytest

from services.optimizer.experiments import PROMOTED, Experiments, assign
from services.optimizer.improvement import PATTERNS, ImprovementCycle
from services.optimizer.monitoring import QualityMonitor
from services.optimizer.prompts import PromptRegistry
from services.optimizer.storage import SqliteStore
from services.runtime.faults import FailedPrecondition


@pytest.fixture
def parts(open_store):
    storage = open_store()
    registry = PromptRegistry(storage)
    experiments = Experiments(storage, registry)
    monitor = QualityMonitor(storage)
    cycle = ImprovementCycle(storage, registry, experiments, monitor, min_samples=20)
    return storage, registry, experiments, cycle


async def test_a_weak_category_starts_a_cycle_and_its_result_is_learnt(parts):
    _, registry, experiments, cycle = parts
    for n in range(30):
        experiments.record(f"old-{n}", "customer", 1, category="credit", score=0.6, weakest="groundedness")
    for n in range(30):
        experiments.record(f"fine-{n}", "customer", 1, category="customer profile", score=0.99)
    record = await cycle.watch()
    assert record.category == "credit" and "below warning" in record.reason
    # The evidence (groundedness) picks the groundedness patterns first.
    assert [p for _, p in record.variants] == ["numbers_verbatim", "cite_records"]
    experiment = experiments.get(record.experiment_id)
    assert [a.version for a in experiment.arms] == [1, 2, 3] and experiment.auto_promote
    assert PATTERNS["numbers_verbatim"][1] in registry.get("customer", 2).template
    assert "{context}" in registry.get("customer", 2).template
    with pytest.raises(FailedPrecondition):
        await cycle.trigger("customer")  # one experiment per prompt
    # Answers with version 2 score better; the decision rule promotes it.
    quality = {1: 0.6, 2: 0.95, 3: 0.62}
    for n in range(400):
        arm = assign(experiment.salt, f"c{n}", experiment.arms)
        experiments.record(
            f"new-{n}",
            "customer",
            arm.version,
            experiment.id,
            category="credit",
            score=quality[arm.version] + (n % 7) * 0.005,
        )
        if experiments.get(experiment.id).state != "running":
            break
    assert experiments.get(experiment.id).state == PROMOTED and registry.active("customer").version == 2
    cycle.sync()
    assert cycle.learning() == {"numbers_verbatim": (1, 0), "cite_records": (0, 1)}
    ended = cycle.get(record.id)
    assert ended.outcome.startswith("promoted")
    # The next cycle ranks by what was learnt: cite_records lost, so other patterns come first.
    second = await cycle.trigger("customer", "credit")
    assert "cite_records" not in [p for _, p in second.variants]
    assert all(PATTERNS["numbers_verbatim"][1] in registry.get("customer", v).template for v, _ in second.variants)


async def test_no_weak_category_no_cycle(parts):
    _, _, experiments, cycle = parts
    for n in range(30):
        experiments.record(f"fine-{n}", "customer", 1, category="credit", score=0.97)
    assert await cycle.watch() is None


async def test_no_new_cycle_right_after_one_ended(parts):
    _, _, experiments, cycle = parts
    for n in range(30):
        experiments.record(f"old-{n}", "customer", 1, category="credit", score=0.6, weakest="coverage")
    record = await cycle.watch()
    experiments.kill(record.experiment_id, "drill")
    cycle.sync()
    # The window still holds the weak turns, but the cooldown holds back a new cycle.
    assert await cycle.watch() is None
    cycle.cooldown_s = 0
    assert (await cycle.watch()) is not None


async def test_candidates_scoring_worse_offline_than_the_active_version_never_start(tmp_path):
    storage = SqliteStore(str(tmp_path / "optimizer.db"))
    registry = PromptRegistry(storage)
    experiments = Experiments(storage, registry)
    asked: list[list[int]] = []

    async def gate(versions):
        asked.append(list(versions))
        return {1: 0.93, 2: 0.90, 3: 0.88}  # both candidates below the active version

    cycle = ImprovementCycle(storage, registry, experiments, QualityMonitor(storage), offline_gate=gate)
    record = await cycle.trigger("customer", reason="requested")
    assert asked == [[1, 2, 3]]
    assert record.experiment_id is None and experiments.running("customer") is None
    assert record.outcome == "no candidate scored as well as the active version offline (v1 0.930, v2 0.900, v3 0.880)"
    assert registry.active("customer").version == 1
    storage.close()


async def test_only_candidates_at_least_as_good_offline_enter_the_experiment(tmp_path):
    storage = SqliteStore(str(tmp_path / "optimizer.db"))
    registry = PromptRegistry(storage)
    experiments = Experiments(storage, registry)

    async def gate(versions):
        return {1: 0.93, 2: 0.95, 3: 0.80}

    cycle = ImprovementCycle(storage, registry, experiments, QualityMonitor(storage), offline_gate=gate)
    record = await cycle.trigger("customer")
    experiment = experiments.get(record.experiment_id)
    assert [a.version for a in experiment.arms] == [1, 2]
    assert [v for v, _ in record.variants] == [2]
    storage.close()
