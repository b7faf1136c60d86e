"""EvaluationRunner: checks and starts evaluation runs in the background, keeps their
progress and results in the optimizer's store, and hands each evaluated
answer the quality score the router's outcome brings back.

A run: read the customers (each identifier must name exactly one), build
the question set from their records, ask every question of every model
through the router, grade each answer (services/optimizer/evaluation.py),
write the matrix and the report. The answers' outcomes come back through
RecordOutcome marked with the run's id: they are scored like any answer
but kept out of live quality and experiments.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Protocol

from services.optimizer import evaluation_report
from services.optimizer.evaluation import (
    FAILED,
    RUNNING,
    Answer,
    EvaluationRun,
    Price,
    new_run,
    run_evaluation,
)
from services.optimizer.prompts import PromptRegistry
from services.optimizer.question_set import CustomerRecords, Question, Truth, build_question_set, truth_values
from services.optimizer.storage import OptimizerStore
from services.runtime.faults import InvalidArgument, NotFound
from services.runtime.limits import list_limit

log = logging.getLogger("optimizer.evaluation")

DEFAULT_QUESTIONS = 320
MAX_QUESTIONS = 2000
MAX_CUSTOMERS = 500
MAX_MODELS = 16
SCORE_WAIT_S = 10.0  # how long an answer waits for its outcome's score


class EvaluationPeers(Protocol):
    async def customer(self, identifier: str) -> CustomerRecords | None: ...
    async def models(self) -> dict[str, Price]: ...
    async def ask(self, question: Question, model: str, run_id: str, prompt_version: int) -> Answer: ...


class EvaluationRunner:
    def __init__(
        self,
        storage: OptimizerStore,
        peers: EvaluationPeers | None,
        prompts: PromptRegistry | None = None,
        concurrency: int = 4,
    ):
        self._storage = storage
        self._peers = peers
        self._prompts = prompts
        self._concurrency = concurrency
        self._runs: dict[str, EvaluationRun] = {}
        self._scores: dict[str, asyncio.Future[float | None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._by_run: dict[str, asyncio.Task[None]] = {}

    async def start(
        self,
        models: Sequence[str],
        customers: Sequence[str],
        started_by: str,
        questions: int = 0,
        seed: int = 0,
        prompt_version: int = 0,
        note: str = "",
    ) -> EvaluationRun:
        self._check_prompt_version(prompt_version)
        peers = self._peers
        if peers is None:
            raise InvalidArgument("evaluation runs are not configured on this optimizer", field="models")
        models = list(dict.fromkeys(m.strip() for m in models if m.strip()))
        if not models:
            raise InvalidArgument("models: name at least one catalog model", field="models")
        if len(models) > MAX_MODELS:
            raise InvalidArgument(f"models: at most {MAX_MODELS}", field="models")
        customers = list(dict.fromkeys(c.strip() for c in customers if c.strip()))
        if not customers:
            raise InvalidArgument(
                "customers: name at least one customer by e-mail, client id or phone", field="customers"
            )
        if len(customers) > MAX_CUSTOMERS:
            raise InvalidArgument(f"customers: at most {MAX_CUSTOMERS}", field="customers")
        size = questions or DEFAULT_QUESTIONS
        if not 1 <= size <= MAX_QUESTIONS:
            raise InvalidArgument(f"questions must be 1..{MAX_QUESTIONS}, got {questions}", field="questions")
        if prompt_version < 0:
            raise InvalidArgument("prompt_version must not be negative", field="prompt_version")
        catalog = await peers.models()
        unknown = [m for m in models if m not in catalog]
        if unknown:
            raise InvalidArgument(f"models: not in the catalog: {', '.join(unknown)}", field="models")
        run = new_run(models, size, started_by)
        run.version, run.prompt, run.note = prompt_version, "customer", note
        self._runs[run.id] = run
        self._save(run)
        task = asyncio.create_task(self._run(peers, run, customers, seed, catalog))
        self._tasks.add(task)
        self._by_run[run.id] = task
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _t: self._by_run.pop(run.id, None))
        return run

    def _check_prompt_version(self, prompt_version: int) -> None:
        """A pinned version (0: the active one) must be one the customer prompt has."""
        if prompt_version > 0 and self._prompts is not None:
            try:
                self._prompts.get("customer", prompt_version)
            except NotFound:
                raise InvalidArgument(
                    f"prompt_version: the customer prompt has no version {prompt_version}", field="prompt_version"
                ) from None

    async def finished(self, run: EvaluationRun) -> EvaluationRun:
        """The run once it has ended (for the improvement cycle's gate)."""
        task = self._by_run.get(run.id)
        if task is not None:
            await asyncio.shield(task)
        return self.get(run.id)[0]

    def get(self, run_id: str) -> tuple[EvaluationRun, str]:
        """A run and its report JSON ("" while it runs)."""
        if run_id in self._runs and self._runs[run_id].state == RUNNING:
            return self._runs[run_id], ""
        kept = self._storage.evaluation(run_id)
        if kept is None:
            raise NotFound(f"no evaluation run {run_id!r}")
        summary, report = kept
        return evaluation_report.run_from_summary(summary), report

    def recent(self, limit: int = 0) -> list[EvaluationRun]:
        """The newest runs (at most `limit`, 0: 20), newest first; one that
        runs here as it is now."""
        runs = []
        for summary in self._storage.recent_evaluations(list_limit(limit)):
            here = self._runs.get(summary["id"])
            runs.append(
                here if here is not None and here.state == RUNNING else evaluation_report.run_from_summary(summary)
            )
        return runs

    def deliver_score(self, completion_id: str, score: float | None) -> None:
        """An evaluated answer's outcome was scored."""
        waiting = self._scores.get(completion_id)
        if waiting is not None and not waiting.done():
            waiting.set_result(score)

    async def _run(
        self, peers: EvaluationPeers, run: EvaluationRun, identifiers: list[str], seed: int, catalog: dict[str, Price]
    ) -> None:
        try:
            customers = await self._customers(peers, identifiers)
            if not customers:
                raise ValueError("none of the customers given names exactly one customer")
            shared = await self._shared_names(peers, customers)
            questions = build_question_set(customers, run.questions, seed or 11, ambiguous_names=shared)
            truths = {c.entity_id: truth_values(c) for c in customers}
            await run_evaluation(
                run,
                questions,
                self._answer(peers, run),
                truths,
                catalog,
                self._concurrency,
                on_progress=self._progress,
            )
            report = evaluation_report.to_json(run, questions)
        except Exception as error:  # reported on the run, never lost in a task
            log.exception("evaluation.failed", extra={"fields": {"run": run.id}})
            run.state, run.error, report = FAILED, str(error) or type(error).__name__, ""
        self._save(run, report)
        self._runs.pop(run.id, None)
        log.info(
            "evaluation.finished",
            extra={"fields": {"run": run.id, "state": run.state, "answers": run.done}},
        )

    def _answer(self, peers: EvaluationPeers, run: EvaluationRun) -> Callable[[Question, str, str], Awaitable[Answer]]:
        async def answer(question: Question, model: str, run_id: str) -> Answer:
            completion_id = f"{run_id}-{question.id}-{model}"
            waiting = asyncio.get_running_loop().create_future()
            self._scores[completion_id] = waiting
            try:
                result = await peers.ask(question, model, run_id, run.version)
                if result.error:
                    return result
                try:
                    score = await asyncio.wait_for(waiting, SCORE_WAIT_S)
                except TimeoutError:
                    score = None
                return replace(result, quality=score)
            finally:
                self._scores.pop(completion_id, None)

        return answer

    async def _customers(self, peers: EvaluationPeers, identifiers: list[str]) -> list[CustomerRecords]:
        found = await asyncio.gather(*(peers.customer(i) for i in identifiers))
        unique = {c.entity_id: c for c in found if c is not None}
        return list(unique.values())

    async def _shared_names(self, peers: EvaluationPeers, customers: list[CustomerRecords]) -> frozenset[str]:
        """Names that do not name one customer in the store: not used as
        identifiers (the right answer to them is a question back)."""
        names = {name for c in customers if (name := Truth(c).name)}
        named = await asyncio.gather(*(peers.customer(n) for n in names))
        return frozenset(n.lower() for n, c in zip(names, named, strict=True) if c is None)

    def _progress(self, run: EvaluationRun) -> None:
        if run.done % 25 == 0 and run.state == RUNNING:
            self._save(run)

    def _save(self, run: EvaluationRun, report: str = "") -> None:
        self._storage.save_evaluation(run.id, run.started_at, run.state, run.summary(), report)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class OfflineGate:
    """The improvement cycle's gate: each prompt version evaluated on the
    same question set with the same model before any enters an online
    experiment; a version's figure is its mean quality score."""

    def __init__(self, runs: EvaluationRunner, model: str, customers: Sequence[str], questions: int = 70):
        self._runs = runs
        self.model = model
        self._customers = list(customers)
        self._questions = questions

    async def __call__(self, versions: Sequence[int]) -> dict[int, float]:
        scores: dict[int, float] = {}
        for version in versions:
            run = await self._runs.start(
                [self.model], self._customers, "optimizer/improvement-cycle", self._questions,
                seed=11, prompt_version=version, note=f"offline gate of prompt version {version}",
            )  # fmt: skip
            run = await self._runs.finished(run)
            overall = next((c for c in run.cells if c.spectrum == "all"), None)
            if run.state != "succeeded" or overall is None or overall.quality is None:
                raise RuntimeError(f"the offline evaluation of version {version} failed: {run.error or 'no score'}")
            scores[version] = overall.quality
        return scores
