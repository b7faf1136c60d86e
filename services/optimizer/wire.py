"""The optimizer's one translation between its domain and its protos: a
request into a plain outcome, and prompts, experiments, cycles, quality
and evaluation runs into their messages."""

from __future__ import annotations

import math

from tilores_x.v1 import optimizer_pb2

from services.optimizer import experiments as states
from services.optimizer.evaluation import EvaluationRun
from services.optimizer.experiments import ExperimentReport
from services.optimizer.improvement import CycleRecord
from services.optimizer.monitoring import Alert, GroupQuality
from services.optimizer.outcome_recorder import Recorded, TurnOutcome
from services.optimizer.prompts import AuditEntry, PromptVersion
from services.runtime.conversation_wire import GROUNDING_OF, fact_of
from services.runtime.moment_wire import timestamp_of

STATES = {
    states.RUNNING: optimizer_pb2.EXPERIMENT_STATE_RUNNING,
    states.PROMOTED: optimizer_pb2.EXPERIMENT_STATE_PROMOTED,
    states.CONCLUDED: optimizer_pb2.EXPERIMENT_STATE_CONCLUDED,
    states.STOPPED_GUARDRAIL: optimizer_pb2.EXPERIMENT_STATE_STOPPED_BY_GUARDRAIL,
    states.KILLED: optimizer_pb2.EXPERIMENT_STATE_KILLED,
}

EVALUATION_STATES = {
    "running": optimizer_pb2.EVALUATION_STATE_RUNNING,
    "succeeded": optimizer_pb2.EVALUATION_STATE_SUCCEEDED,
    "failed": optimizer_pb2.EVALUATION_STATE_FAILED,
}


def outcome_of(request: optimizer_pb2.RecordOutcomeRequest) -> TurnOutcome:
    return TurnOutcome(
        completion_id=request.completion_id,
        prompt=request.prompt,
        version=request.version,
        experiment_id=request.experiment_id,
        model=request.model,
        category=request.category,
        score=request.score if request.HasField("score") else None,
        latency_ms=request.latency_ms,
        tokens=request.tokens,
        error=request.error,
        question=request.question,
        answer=request.answer,
        status=GROUNDING_OF.get(request.grounding.status, ""),
        context=request.grounding.text,
        facts=[fact_of(f) for f in request.grounding.facts],
        evaluation_run_id=request.evaluation_run_id,
        mode=request.mode,
        tool_results=tuple(request.tool_results),
    )


def recorded_message(recorded: Recorded) -> optimizer_pb2.RecordOutcomeResponse:
    return optimizer_pb2.RecordOutcomeResponse(
        decision=recorded.decision,
        score=recorded.score or 0.0,
        evaluators=[
            optimizer_pb2.EvaluatorScore(name=e.name, score=e.value, reason=e.reason) for e in recorded.evaluators
        ],
        category=recorded.category,
    )


def version_message(v: PromptVersion) -> optimizer_pb2.PromptVersion:
    return optimizer_pb2.PromptVersion(
        name=v.name,
        version=v.version,
        template=v.template,
        variables=v.variables,
        note=v.note or None,
        created_at=timestamp_of(v.created_at or None),
    )


def prompt_summary_message(
    name: str, active: int, versions: int, updated_at: float, running_experiment_id: int | None
) -> optimizer_pb2.PromptSummary:
    return optimizer_pb2.PromptSummary(
        name=name,
        active_version=active,
        versions=versions,
        running_experiment_id=running_experiment_id,
        updated_at=timestamp_of(updated_at),
    )


def audit_message(entry: AuditEntry) -> optimizer_pb2.PromptAuditEntry:
    return optimizer_pb2.PromptAuditEntry(
        at=timestamp_of(entry.at),
        action=entry.action,
        version=entry.version,
        previous_version=entry.previous_version or None,
        detail=entry.detail or None,
        actor=entry.actor,
    )


def _finite(value: float) -> float:
    return 0.0 if math.isnan(value) else value


def experiment_message(report: ExperimentReport) -> optimizer_pb2.Experiment:
    e = report.experiment
    message = optimizer_pb2.Experiment(
        id=e.id,
        prompt=e.prompt,
        state=STATES[e.state],
        control_version=e.control_version,
        min_samples=e.min_samples,
        alpha=e.alpha,
        auto_promote=e.auto_promote,
        decision=e.decision if e.state != states.RUNNING else report.decision.reason,
        created_at=timestamp_of(e.created_at),
        started_by=e.started_by,
    )
    for arm in report.arms:
        stats = message.arms.add(
            version=arm.version,
            weight=arm.weight,
            turns=arm.turns,
            scored=arm.quality.count,
            mean=_finite(arm.quality.mean),
            std=_finite(arm.quality.std),
            ci_low=_finite(arm.quality.ci_low),
            ci_high=_finite(arm.quality.ci_high),
            errors=arm.errors,
            thumbs_up=arm.thumbs_up,
            thumbs_down=arm.thumbs_down,
        )
        for name in ("p_quality", "p_errors", "p_feedback"):
            if getattr(arm, name) is not None:
                setattr(stats, name, getattr(arm, name))
    return message


def cycle_message(record: CycleRecord, experiment: ExperimentReport | None) -> optimizer_pb2.ImprovementCycleRecord:
    message = optimizer_pb2.ImprovementCycleRecord(
        id=record.id,
        prompt=record.prompt,
        category=record.category,
        reason=record.reason,
        started_at=timestamp_of(record.started_at),
        outcome=record.outcome or None,
        variants=[optimizer_pb2.CycleVariant(version=v, pattern=p) for v, p in record.variants],
    )
    if experiment is not None:
        message.experiment.CopyFrom(experiment_message(experiment))
    return message


def alert_message(alert: Alert, delivered: bool) -> optimizer_pb2.QualityAlert:
    return optimizer_pb2.QualityAlert(
        key=alert.key,
        severity=alert.severity,
        message=alert.message,
        value=alert.value,
        at=timestamp_of(alert.at),
        delivered=delivered,
    )


def series_message(key: str, points: list[tuple[float, float, int]]) -> optimizer_pb2.QualitySeries:
    return optimizer_pb2.QualitySeries(
        key=key,
        points=[optimizer_pb2.QualityPoint(at=timestamp_of(at), mean=mean, turns=turns) for at, mean, turns in points],
    )


def quality_message(q: GroupQuality) -> optimizer_pb2.GroupQuality:
    return optimizer_pb2.GroupQuality(
        group=q.group, key=q.key, turns=q.turns, mean=q.mean, slope=q.slope, level=q.level
    )


def evaluation_message(run: EvaluationRun) -> optimizer_pb2.EvaluationRun:
    message = optimizer_pb2.EvaluationRun(
        id=run.id,
        state=EVALUATION_STATES[run.state],
        models=run.models,
        questions=run.questions,
        done=run.done,
        total=run.total,
        started_by=run.started_by,
        error=run.error or None,
        prompt_version=run.version or None,  # unset: the active version
        note=run.note or None,
        started_at=timestamp_of(run.started_at),
        finished_at=timestamp_of(run.finished_at),
    )
    for c in run.cells:
        cell = message.cells.add(
            model=c.model,
            spectrum=c.spectrum,
            questions=c.questions,
            refusal_accuracy=c.refusal_accuracy,
            ttft_p50_ms=c.ttft_p50_ms,
            total_p50_ms=c.total_p50_ms,
            tokens=c.tokens,
            cost_usd=c.cost_usd,
            errors=c.errors,
        )
        for name in ("precision", "recall", "quality"):
            if getattr(c, name) is not None:
                setattr(cell, name, getattr(c, name))
    return message
