"""Evaluation runs: a question set (services/optimizer/question_set.py) asked
of one or more models, each answer graded against the values computed from
the records, and the results as a matrix per model × spectrum.

Per answer: recall (the expected values it states), precision (of the
customer values it states, the share that are true of that customer),
refusal accuracy (a customer that does not exist is said not to match and
no customer data is stated; one that exists is not refused), the quality
scorer's overall score, time to the first token, total time, tokens and
cost from the catalog's prices.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from services.optimizer.claims import claims_of
from services.optimizer.quality import SAYS_NO_MATCH
from services.optimizer.question_set import SPECTRUMS, TEXT, Question

RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"


@dataclass(frozen=True)
class Answer:
    """What a model answered, as the evaluation's answer source reports it."""

    text: str
    model: str  # the catalog model that answered
    ttft_ms: float
    total_ms: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    quality: float | None = None  # the scorer's overall score, when known
    error: str = ""


@dataclass(frozen=True)
class Grade:
    question_id: str
    spectrum: str
    model: str
    answered_by: str
    expected: int
    stated: int
    claims: int
    true_claims: int
    refusal_correct: bool
    quality: float | None
    ttft_ms: float
    total_ms: float
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    error: str = ""
    missing: tuple[str, ...] = ()
    wrong: tuple[str, ...] = ()


@dataclass(frozen=True)
class Price:
    input_per_million: float
    output_per_million: float


def _cost(answer: Answer, price: Price | None) -> float:
    if price is None:
        return 0.0
    return (answer.prompt_tokens * price.input_per_million + answer.completion_tokens * price.output_per_million) / 1e6


def grade(
    question: Question,
    answer: Answer,
    model: str,
    truth: set[tuple[str, str]] | None,
    price: Price | None,
) -> Grade:
    """One answer against its question's expected values; `truth` is every
    value true of the question's customer (None for one that does not exist)."""
    said = claims_of(answer.text)
    said_values = {(c.kind, c.value) for c in said}
    question_values = {(c.kind, c.value) for c in claims_of(question.text)}
    stated, missing = 0, []
    for item in question.expected:
        ok = item.value.lower() in answer.text.lower() if item.kind == TEXT else (item.kind, item.value) in said_values
        stated += ok
        if not ok:
            missing.append(f"{item.what} {item.value}")
    # Precision is over the customer values the answer states: not the
    # identifier the question gave.
    stated_claims = [c for c in said if (c.kind, c.value) not in question_values]
    known = truth or set()
    wrong = [c.text for c in stated_claims if (c.kind, c.value) not in known]
    refused = bool(SAYS_NO_MATCH.search(answer.text))
    # A customer that does not exist: say so and state nothing of anyone.
    refusal_correct = (not refused and not answer.error) if question.expects_customer else refused and not stated_claims
    return Grade(
        question_id=question.id,
        spectrum=question.spectrum,
        model=model,
        answered_by=answer.model,
        expected=len(question.expected),
        stated=stated,
        claims=len(stated_claims),
        true_claims=len(stated_claims) - len(wrong),
        refusal_correct=refusal_correct,
        quality=answer.quality,
        ttft_ms=answer.ttft_ms,
        total_ms=answer.total_ms,
        prompt_tokens=answer.prompt_tokens,
        completion_tokens=answer.completion_tokens,
        cost_usd=_cost(answer, price),
        error=answer.error,
        missing=tuple(missing),
        wrong=tuple(wrong),
    )


@dataclass(frozen=True)
class Cell:
    """One model × spectrum: the figures over its answers."""

    model: str
    spectrum: str
    questions: int
    precision: float | None
    recall: float | None
    refusal_accuracy: float
    quality: float | None
    ttft_p50_ms: float
    total_p50_ms: float
    tokens: int
    cost_usd: float
    errors: int


def _ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def cell(model: str, spectrum: str, grades: Sequence[Grade]) -> Cell:
    scored = [g.quality for g in grades if g.quality is not None]
    return Cell(
        model=model,
        spectrum=spectrum,
        questions=len(grades),
        precision=_ratio(sum(g.true_claims for g in grades), sum(g.claims for g in grades)),
        recall=_ratio(sum(g.stated for g in grades), sum(g.expected for g in grades)),
        refusal_accuracy=_ratio(sum(g.refusal_correct for g in grades), len(grades)) or 0.0,
        quality=round(statistics.fmean(scored), 4) if scored else None,
        ttft_p50_ms=round(statistics.median(g.ttft_ms for g in grades), 1) if grades else 0.0,
        total_p50_ms=round(statistics.median(g.total_ms for g in grades), 1) if grades else 0.0,
        tokens=sum(g.prompt_tokens + g.completion_tokens for g in grades),
        cost_usd=round(sum(g.cost_usd for g in grades), 6),
        errors=sum(bool(g.error) for g in grades),
    )


def matrix(grades: Sequence[Grade], models: Sequence[str]) -> list[Cell]:
    """Per model, one cell per spectrum and one "all" cell."""
    cells = []
    for model in models:
        mine = [g for g in grades if g.model == model]
        for spectrum in SPECTRUMS:
            cells.append(cell(model, spectrum, [g for g in mine if g.spectrum == spectrum]))
        cells.append(cell(model, "all", mine))
    return cells


# The evaluation's seams: where answers come from, and how a run is kept.
AnswerSource = Callable[[Question, str, str], Awaitable[Answer]]  # (question, model, run id)


@dataclass
class EvaluationRun:
    id: str
    models: list[str]
    questions: int
    started_at: float
    started_by: str
    state: str = RUNNING
    done: int = 0
    finished_at: float | None = None
    error: str = ""
    cells: list[Cell] = field(default_factory=list)
    grades: list[Grade] = field(default_factory=list)
    prompt: str = ""
    version: int = 0
    note: str = ""

    @property
    def total(self) -> int:
        return self.questions * len(self.models)

    def summary(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("grades")
        out["total"] = self.total
        return out


async def run_evaluation(
    run: EvaluationRun,
    questions: Sequence[Question],
    answers: AnswerSource,
    truths: dict[str, set[tuple[str, str]]],
    prices: dict[str, Price],
    concurrency: int = 4,
    on_progress: Callable[[EvaluationRun], None] | None = None,
) -> EvaluationRun:
    """Ask every question of every model, `concurrency` at a time; grade each
    answer; fill the run's matrix. An answer that fails is graded as a
    failure (recall 0), it does not stop the run."""
    gate = asyncio.Semaphore(concurrency)

    async def one(question: Question, model: str) -> Grade:
        async with gate:
            started = time.perf_counter()
            try:
                answer = await answers(question, model, run.id)
            except Exception as error:  # an answer that failed is a graded failure
                elapsed = (time.perf_counter() - started) * 1000
                answer = Answer("", "", elapsed, elapsed, error=str(error) or type(error).__name__)
            result = grade(question, answer, model, truths.get(question.entity_id), prices.get(answer.model or model))
            run.done += 1
            if on_progress is not None:
                on_progress(run)
            return result

    try:
        run.grades = list(await asyncio.gather(*(one(q, m) for m in run.models for q in questions)))
        run.cells = matrix(run.grades, run.models)
        run.state = SUCCEEDED
    except Exception as error:  # the run is reported failed with its reason, never left running
        run.state, run.error = FAILED, str(error) or type(error).__name__
    run.finished_at = time.time()
    if on_progress is not None:
        on_progress(run)
    return run


def new_run(models: Sequence[str], questions: int, started_by: str) -> EvaluationRun:
    return EvaluationRun(f"eval-{uuid.uuid4().hex[:12]}", list(models), questions, time.time(), started_by)
