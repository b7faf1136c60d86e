"""OptimizerService servicer: maps the RPCs onto the prompt registry and
the experiments."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Sequence

import grpc
from tilores_x.v1 import optimizer_pb2, optimizer_pb2_grpc

from services.optimizer import evaluation_report
from services.optimizer import experiments as states
from services.optimizer.evaluation import EvaluationRun
from services.optimizer.evaluation_runs import EvaluationRuns, OfflineGate
from services.optimizer.experiments import Experiments
from services.optimizer.improvement import ImprovementCycle
from services.optimizer.judge import LlmJudge
from services.optimizer.monitoring import QualityMonitor
from services.optimizer.outcome_recorder import OutcomeRecorder, TurnOutcome
from services.optimizer.prompts import PromptRegistry, PromptVersion
from services.optimizer.quality_metrics import quality_metrics
from services.optimizer.storage import OptimizerStore
from services.runtime.conversation_wire import GROUNDING_OF, fact_of
from services.runtime.faults import FailedPrecondition, Fault, InvalidArgument, NotFound
from services.runtime.metrics import SNAPSHOTS
from services.runtime.principal import PRINCIPAL

STATES = {
    states.RUNNING: optimizer_pb2.EXPERIMENT_STATE_RUNNING,
    states.PROMOTED: optimizer_pb2.EXPERIMENT_STATE_PROMOTED,
    states.CONCLUDED: optimizer_pb2.EXPERIMENT_STATE_CONCLUDED,
    states.STOPPED_GUARDRAIL: optimizer_pb2.EXPERIMENT_STATE_STOPPED_BY_GUARDRAIL,
    states.KILLED: optimizer_pb2.EXPERIMENT_STATE_KILLED,
}

# What one RecordOutcomes call may carry.
MAX_OUTCOMES_PER_CALL = 500


log = logging.getLogger("optimizer")


def version_message(v: PromptVersion) -> optimizer_pb2.PromptVersion:
    return optimizer_pb2.PromptVersion(
        name=v.name, version=v.version, template=v.template, variables=v.variables, note=v.note, created_at=v.created_at
    )


EVALUATION_STATES = {
    "running": optimizer_pb2.EVALUATION_STATE_RUNNING,
    "succeeded": optimizer_pb2.EVALUATION_STATE_SUCCEEDED,
    "failed": optimizer_pb2.EVALUATION_STATE_FAILED,
}


def evaluation_message(run: EvaluationRun) -> optimizer_pb2.EvaluationRun:
    message = optimizer_pb2.EvaluationRun(
        id=run.id,
        state=EVALUATION_STATES[run.state],
        models=run.models,
        questions=run.questions,
        done=run.done,
        total=run.total,
        started_by=run.started_by,
        error=run.error,
        prompt_version=run.version,
        note=run.note,
    )
    message.started_at.FromNanoseconds(int(run.started_at * 1e9))
    if run.finished_at is not None:
        message.finished_at.FromNanoseconds(int(run.finished_at * 1e9))
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


def _finite(value: float) -> float:
    return 0.0 if math.isnan(value) else value


def _actor() -> str:
    """Who asked for a change: the API key or caller the call is made for."""
    principal = PRINCIPAL.get()
    return principal.who if principal is not None else "unknown"


class OptimizerService(optimizer_pb2_grpc.OptimizerServiceServicer):
    def __init__(
        self,
        registry: PromptRegistry,
        experiments: Experiments,
        monitor: QualityMonitor | None = None,
        cycle: ImprovementCycle | None = None,
        judge: LlmJudge | None = None,
        evaluations: EvaluationRuns | None = None,
    ):
        self._registry = registry
        self._experiments = experiments
        self._monitor = monitor
        self._cycle_runner = cycle
        self._evaluations = evaluations
        self._outcomes = OutcomeRecorder(experiments, evaluations, judge)

    def _experiment(self, experiment_id: int) -> optimizer_pb2.Experiment:
        report = self._experiments.report(experiment_id)
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
            created_at=e.created_at,
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

    async def GetPrompt(self, request, context):
        if request.version:  # pinned: an evaluation of a version that need not be active
            pinned = self._registry.get(request.name, request.version)
            return optimizer_pb2.GetPromptResponse(name=pinned.name, version=pinned.version, template=pinned.template)
        prompt, experiment_id = self._experiments.choose(request.name, request.conversation_id)
        return optimizer_pb2.GetPromptResponse(
            name=prompt.name, version=prompt.version, template=prompt.template, experiment_id=experiment_id
        )

    async def CreatePromptVersion(self, request, context):
        created = self._registry.create(request.name, request.template, request.note, request.activate, _actor())
        return optimizer_pb2.CreatePromptVersionResponse(version=version_message(created))

    async def ActivatePromptVersion(self, request, context):
        active = self._registry.activate(request.name, request.version, "activated by request", _actor())
        return optimizer_pb2.ActivatePromptVersionResponse(version=version_message(active))

    async def RollbackPrompt(self, request, context):
        active = self._registry.rollback(request.name, request.reason, _actor())
        return optimizer_pb2.RollbackPromptResponse(version=version_message(active))

    async def ListPrompts(self, request, context):
        prompts = []
        for name, active, versions, updated_at in self._registry.names():
            running = self._experiments.running(name)
            prompts.append(
                optimizer_pb2.PromptSummary(
                    name=name,
                    active_version=active,
                    versions=versions,
                    running_experiment_id=running.id if running else 0,
                    updated_at=updated_at,
                )
            )
        return optimizer_pb2.ListPromptsResponse(prompts=prompts)

    async def ListPromptVersions(self, request, context):
        versions = self._registry.versions(request.name)
        return optimizer_pb2.ListPromptVersionsResponse(
            versions=[version_message(v) for v in versions],
            active_version=self._registry.active(request.name).version,
            history=[
                optimizer_pb2.PromptAuditEntry(
                    at=h.at,
                    action=h.action,
                    version=h.version,
                    previous_version=h.previous_version or 0,
                    detail=h.detail,
                    actor=h.actor,
                )
                for h in self._registry.history(request.name)
            ],
        )

    async def StartExperiment(self, request, context):
        if not request.prompt:
            raise InvalidArgument("prompt is required", field="prompt")
        experiment = self._experiments.start(
            request.prompt,
            [(a.version, a.weight) for a in request.arms],
            min_samples=request.min_samples or 100,
            alpha=request.alpha or 0.05,
            auto_promote=request.auto_promote,
            started_by=_actor(),
        )
        return optimizer_pb2.StartExperimentResponse(experiment=self._experiment(experiment.id))

    async def GetExperiment(self, request, context):
        return optimizer_pb2.GetExperimentResponse(experiment=self._experiment(request.experiment_id))

    async def StopExperiment(self, request, context):
        self._experiments.kill(request.experiment_id, request.reason, _actor())
        return optimizer_pb2.StopExperimentResponse(experiment=self._experiment(request.experiment_id))

    async def RecordOutcome(self, request, context):
        return self._record_outcome(request)

    async def RecordOutcomes(self, request, context):
        if len(request.outcomes) > MAX_OUTCOMES_PER_CALL:
            raise InvalidArgument(f"at most {MAX_OUTCOMES_PER_CALL} outcomes per call", field="outcomes")
        reply = optimizer_pb2.RecordOutcomesResponse()
        for n, outcome in enumerate(request.outcomes):
            try:
                reply.results.append(self._record_outcome(outcome))
            except Fault as fault:  # this one is refused; the others are recorded
                field = f"outcomes[{n}].{fault.field}" if fault.field else f"outcomes[{n}]"
                reply.refused.add(index=n, field=field, message=fault.message)
        return reply

    def _record_outcome(self, request: optimizer_pb2.RecordOutcomeRequest) -> optimizer_pb2.RecordOutcomeResponse:
        recorded = self._outcomes.record(outcome_of(request))
        return optimizer_pb2.RecordOutcomeResponse(
            decision=recorded.decision,
            score=recorded.score or 0.0,
            evaluators=[
                optimizer_pb2.EvaluatorScore(name=e.name, score=e.value, reason=e.reason) for e in recorded.evaluators
            ],
            category=recorded.category,
        )

    async def StartEvaluation(self, request, context):
        if self._evaluations is None:
            raise FailedPrecondition("evaluation runs are not configured on this optimizer")
        if request.prompt_version > 0:
            try:
                self._registry.get("customer", request.prompt_version)
            except NotFound:
                raise InvalidArgument(
                    f"prompt_version: the customer prompt has no version {request.prompt_version}",
                    field="prompt_version",
                ) from None
        run = await self._evaluations.start(
            request.models,
            request.customers,
            _actor(),
            questions=request.questions,
            seed=request.seed,
            prompt_version=request.prompt_version,
            note=request.note,
        )
        return optimizer_pb2.StartEvaluationResponse(run=evaluation_message(run))

    async def GetEvaluation(self, request, context):
        if self._evaluations is None:
            raise FailedPrecondition("evaluation runs are not configured on this optimizer")
        if not request.run_id:
            raise InvalidArgument("run_id is required", field="run_id")
        run, report = self._evaluations.get(request.run_id)
        return optimizer_pb2.GetEvaluationResponse(
            run=evaluation_message(run),
            report_json=report,
            report_html=evaluation_report.to_html(report) if report else "",
        )

    async def GetQuality(self, request, context):
        if self._monitor is None:
            return optimizer_pb2.GetQualityResponse()
        if request.check_now:
            await self._monitor.check()
        turns, agreement, difference = self._monitor.judge_agreement()
        return optimizer_pb2.GetQualityResponse(
            groups=[
                optimizer_pb2.GroupQuality(
                    group=q.group, key=q.key, turns=q.turns, mean=q.mean, slope=q.slope, level=q.level
                )
                for q in self._monitor.quality()
            ],
            alerts=[
                optimizer_pb2.QualityAlert(
                    key=a.key, severity=a.severity, message=a.message, value=a.value, at=a.at, delivered=delivered
                )
                for a, delivered in self._monitor.alerts()
            ],
            judge_agreement=optimizer_pb2.JudgeAgreement(turns=turns, agreement=agreement, mean_difference=difference),
        )

    async def GetQualityHistory(self, request, context):
        monitor = self._monitor
        if monitor is None:
            return optimizer_pb2.GetQualityHistoryResponse()
        since = request.since or time.time() - 86_400
        series = monitor.history(request.group, since, request.points or 120)
        levels = monitor.thresholds
        return optimizer_pb2.GetQualityHistoryResponse(
            series=[
                optimizer_pb2.QualitySeries(
                    key=key,
                    points=[optimizer_pb2.QualityPoint(at=at, mean=mean, turns=turns) for at, mean, turns in points],
                )
                for key, points in series.items()
            ],
            levels=optimizer_pb2.QualityLevels(
                critical=levels.critical, warning=levels.warning, target=levels.target, excellent=levels.excellent
            ),
            window=monitor.window,
        )

    def _cycle(self, record) -> optimizer_pb2.ImprovementCycleRecord:
        message = optimizer_pb2.ImprovementCycleRecord(
            id=record.id,
            prompt=record.prompt,
            category=record.category,
            reason=record.reason,
            started_at=record.started_at,
            outcome=record.outcome,
            variants=[optimizer_pb2.CycleVariant(version=v, pattern=p) for v, p in record.variants],
        )
        if record.experiment_id:
            message.experiment.CopyFrom(self._experiment(record.experiment_id))
        return message

    async def TriggerCycle(self, request, context):
        if self._cycle_runner is None:
            raise FailedPrecondition("the improvement cycle is not configured", field="prompt")
        reason = f"asked by {_actor()}" + (f": {request.reason}" if request.reason else "")
        record = await self._cycle_runner.trigger(request.prompt or "customer", request.category, reason)
        return optimizer_pb2.TriggerCycleResponse(cycle=self._cycle(record))

    async def GetCycleStatus(self, request, context):
        if self._cycle_runner is None:
            return optimizer_pb2.GetCycleStatusResponse()
        self._cycle_runner.sync()
        return optimizer_pb2.GetCycleStatusResponse(
            cycles=[self._cycle(r) for r in self._cycle_runner.recent()],
            quality_by_category=[
                optimizer_pb2.GroupQuality(
                    group=q.group, key=q.key, turns=q.turns, mean=q.mean, slope=q.slope, level=q.level
                )
                for q in self._monitor.quality()
                if q.group == "category"
            ],
            learning=[
                optimizer_pb2.PatternLearning(pattern=p, wins=w, losses=lo)
                for p, (w, lo) in sorted(self._cycle_runner.learning().items())
            ],
        )

    async def RecordFeedback(self, request, context):
        self._experiments.feedback(request.completion_id, request.thumbs_up, request.comment)
        return optimizer_pb2.RecordFeedbackResponse()


class OptimizerComponent:
    def __init__(
        self,
        storage: OptimizerStore,
        monitor: QualityMonitor | None = None,
        check_every_s: float = 0.0,
        variant_writer=None,
        on_close=None,
        judge: LlmJudge | None = None,
        evaluation_peers=None,
        gate_model: str = "",
        gate_customers: Sequence[str] = (),
    ):
        self.storage = storage
        self.evaluations = EvaluationRuns(storage, evaluation_peers)
        gate = OfflineGate(self.evaluations, gate_model, gate_customers) if gate_model and gate_customers else None
        self.registry = PromptRegistry(storage)
        self.experiments = Experiments(storage, self.registry)
        self.monitor = monitor or QualityMonitor(storage)
        self.cycle = ImprovementCycle(
            storage, self.registry, self.experiments, self.monitor, variant_writer, offline_gate=gate
        )
        self._on_close = on_close
        self.judge = judge
        self._check_every_s = check_every_s
        self._task: asyncio.Task | None = None
        self._metrics = quality_metrics(self.monitor)

    def register(self, server: grpc.aio.Server) -> Sequence[str]:
        optimizer_pb2_grpc.add_OptimizerServiceServicer_to_server(
            OptimizerService(self.registry, self.experiments, self.monitor, self.cycle, self.judge, self.evaluations),
            server,
        )
        SNAPSHOTS.add(self._metrics)
        if self._check_every_s > 0:
            self._task = asyncio.ensure_future(self._watch())
        return [optimizer_pb2.DESCRIPTOR.services_by_name["OptimizerService"].full_name]

    async def _watch(self) -> None:
        """Check quality on a schedule; alerts keep their cooldown."""
        while True:
            await asyncio.sleep(self._check_every_s)
            try:
                # Replicas sharing a store: one runs the checks and cycles.
                if not self.storage.leadership():
                    continue
                await self.monitor.check()
                await self.cycle.watch()
            except Exception:  # a bad check must not end the watch
                log.exception("quality.check_failed")

    async def close(self) -> None:
        SNAPSHOTS.remove(self._metrics)
        await self.evaluations.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._on_close is not None:
            await self._on_close()
        self.storage.close()
