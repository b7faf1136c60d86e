"""OutcomeRecorder: what happens to one turn's outcome. It is scored (when
the caller sent no score) by the deterministic evaluators, against the
facts the model was given, the question and the caller's own tool results;
an evaluation run's turn goes to its run and nowhere else; any other turn
feeds live quality and its prompt's experiment, and some are graded by
the LLM judge in the background."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from services.optimizer import quality
from services.optimizer.evaluation_runner import EvaluationRunner
from services.optimizer.experiments import Experiments
from services.optimizer.judge import LlmJudge
from services.runtime.conversation import Fact
from services.runtime.faults import InvalidArgument
from services.runtime.limits import MAX_TOOL_RESULTS_SCORED

log = logging.getLogger("optimizer")


@dataclass(frozen=True)
class TurnOutcome:
    """How one turn went, as the router reports it."""

    completion_id: str
    prompt: str
    version: int = 0
    experiment_id: int = 0
    model: str = ""
    category: str = ""
    score: float | None = None  # given by the caller; None: scored here
    latency_ms: float = 0.0
    tokens: int = 0
    error: bool = False
    question: str = ""
    answer: str = ""
    status: str = ""  # the grounding's status
    context: str = ""  # the context text the model was given
    facts: Sequence[Fact] = ()
    evaluation_run_id: str = ""
    mode: str = ""
    tool_results: Sequence[str] = ()


@dataclass(frozen=True)
class Recorded:
    score: float | None
    category: str
    evaluators: list[quality.Score] = field(default_factory=list)
    decision: str = ""  # an experiment's decision this outcome brought about


class OutcomeRecorder:
    def __init__(self, experiments: Experiments, evaluations: EvaluationRunner | None, judge: LlmJudge | None):
        self._experiments = experiments
        self._evaluations = evaluations
        self._judge = judge
        self._background: set[asyncio.Task[None]] = set()

    def record(self, outcome: TurnOutcome) -> Recorded:
        if len(outcome.tool_results) > MAX_TOOL_RESULTS_SCORED:
            raise InvalidArgument(f"tool_results: at most {MAX_TOOL_RESULTS_SCORED} per outcome", field="tool_results")
        category = outcome.category or quality.category_of(outcome.question, outcome.status)
        score, evaluators = outcome.score, list[quality.Score]()
        if score is None and not outcome.error and outcome.answer:
            score, evaluators = quality.evaluate(
                outcome.question, outcome.answer, outcome.status, outcome.context, list(outcome.facts),
                outcome.tool_results,
            )  # fmt: skip
        if outcome.evaluation_run_id:
            # An answer of an evaluation run: scored for the run, kept out
            # of live quality and experiments.
            if self._evaluations is not None:
                self._evaluations.deliver_score(outcome.completion_id, score)
            return Recorded(score, category, evaluators)
        repeat = bool(outcome.completion_id) and self._experiments.has_outcome(outcome.completion_id)
        weakest = min(evaluators, key=lambda e: e.value) if evaluators else None
        decision = self._experiments.record(
            outcome.completion_id,
            outcome.prompt,
            outcome.version,
            outcome.experiment_id,
            model=outcome.model,
            category=category,
            score=score,
            latency_ms=outcome.latency_ms or None,
            tokens=outcome.tokens or None,
            error=outcome.error,
            weakest=weakest.name if weakest is not None and weakest.value < 1 else "",
            mode=outcome.mode,
        )
        judge = self._judge
        if judge is not None and outcome.answer and not outcome.error and not repeat and judge.wants():
            task = asyncio.ensure_future(self._judged(judge, outcome))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return Recorded(score, category, evaluators, decision.reason if decision else "")

    async def _judged(self, judge: LlmJudge, outcome: TurnOutcome) -> None:
        verdict = await judge.grade(outcome.question, outcome.answer, outcome.context, list(outcome.facts))
        if verdict is None:
            log.warning("judge.no_verdict", extra={"fields": {"completion_id": outcome.completion_id}})
            return
        self._experiments.judged(outcome.completion_id, verdict[0], verdict[1])
