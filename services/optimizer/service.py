"""tilores_x.v1.OptimizerService, served by two servicers: `PromptServicer`
on the hot path (which prompt version a conversation gets, prompts,
experiments, outcomes, feedback) and `QualityServicer` for the offline
work (quality and its history, improvement cycles, evaluation runs).
Each translates a request once (services/optimizer/wire.py) and leaves
the work to the domain: the registry, the experiments, the
`OutcomeRecorder`, the monitor, the improvement cycle and the
`EvaluationRunner`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from types import SimpleNamespace
from typing import Any

import grpc
from tilores_x.v1 import optimizer_pb2, optimizer_pb2_grpc

from services.optimizer import evaluation_report
from services.optimizer.evaluation_runner import EvaluationPeers, EvaluationRunner, OfflineGate
from services.optimizer.experiments import Experiments
from services.optimizer.improvement import CycleRecord, ImprovementCycle, VariantWriter
from services.optimizer.judge import LlmJudge
from services.optimizer.monitoring import QualityMonitor
from services.optimizer.outcome_recorder import OutcomeRecorder
from services.optimizer.prompts import PromptRegistry
from services.optimizer.quality_metrics import quality_metrics
from services.optimizer.storage import OptimizerStore
from services.optimizer.wire import (
    alert_message,
    audit_message,
    cycle_message,
    evaluation_message,
    experiment_message,
    outcome_of,
    prompt_summary_message,
    quality_message,
    recorded_message,
    series_message,
    version_message,
)
from services.runtime.faults import Fault, InvalidArgument, Unavailable
from services.runtime.metrics import SNAPSHOTS
from services.runtime.moment_wire import timestamp_of
from services.runtime.principal import PRINCIPAL

# What one RecordOutcomes call may carry.
MAX_OUTCOMES_PER_CALL = 500
# Feedback may come before its answer's outcome (sent in batches, off the
# answer's path); it waits this long for it before the answer is unknown.
FEEDBACK_WAIT_S = 3.0

SERVICE = optimizer_pb2.DESCRIPTOR.services_by_name["OptimizerService"]

log = logging.getLogger("optimizer")


def _actor() -> str:
    """Who asked for a change: the API key or caller the call is made for."""
    principal = PRINCIPAL.get()
    return principal.who if principal is not None else "unknown"


class PromptServicer:
    """The hot path: every chat turn asks for its prompt and reports its
    outcome; operators change prompts and run experiments."""

    def __init__(self, registry: PromptRegistry, experiments: Experiments, outcomes: OutcomeRecorder):
        self._registry = registry
        self._experiments = experiments
        self._outcomes = outcomes

    async def GetPrompt(self, request: Any, context: Any) -> optimizer_pb2.GetPromptResponse:
        if request.version:  # pinned: an evaluation of a version that need not be active
            pinned = self._registry.get(request.name, request.version)
            return optimizer_pb2.GetPromptResponse(name=pinned.name, version=pinned.version, template=pinned.template)
        prompt, experiment_id = self._experiments.choose(request.name, request.conversation_id)
        return optimizer_pb2.GetPromptResponse(
            name=prompt.name, version=prompt.version, template=prompt.template, experiment_id=experiment_id
        )

    async def CreatePromptVersion(self, request: Any, context: Any) -> optimizer_pb2.CreatePromptVersionResponse:
        created = self._registry.create(request.name, request.template, request.note, request.activate, _actor())
        return optimizer_pb2.CreatePromptVersionResponse(version=version_message(created))

    async def ActivatePromptVersion(self, request: Any, context: Any) -> optimizer_pb2.ActivatePromptVersionResponse:
        active = self._registry.activate(request.name, request.version, "activated by request", _actor())
        return optimizer_pb2.ActivatePromptVersionResponse(version=version_message(active))

    async def RollbackPrompt(self, request: Any, context: Any) -> optimizer_pb2.RollbackPromptResponse:
        active = self._registry.rollback(request.name, request.reason, _actor())
        return optimizer_pb2.RollbackPromptResponse(version=version_message(active))

    async def ListPrompts(self, request: Any, context: Any) -> optimizer_pb2.ListPromptsResponse:
        prompts = []
        for name, active, versions, updated_at in self._registry.names():
            running = self._experiments.running(name)
            prompts.append(prompt_summary_message(name, active, versions, updated_at, running.id if running else None))
        return optimizer_pb2.ListPromptsResponse(prompts=prompts)

    async def ListPromptVersions(self, request: Any, context: Any) -> optimizer_pb2.ListPromptVersionsResponse:
        versions = self._registry.versions(request.name)
        return optimizer_pb2.ListPromptVersionsResponse(
            versions=[version_message(v) for v in versions],
            active_version=self._registry.active(request.name).version,
            history=[audit_message(entry) for entry in self._registry.history(request.name)],
            rollback_version=self._registry.rollback_version(request.name),
        )

    async def StartExperiment(self, request: Any, context: Any) -> optimizer_pb2.StartExperimentResponse:
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
        report = self._experiments.report(experiment.id)
        return optimizer_pb2.StartExperimentResponse(experiment=experiment_message(report))

    async def GetExperiment(self, request: Any, context: Any) -> optimizer_pb2.GetExperimentResponse:
        report = self._experiments.report(request.experiment_id)
        return optimizer_pb2.GetExperimentResponse(experiment=experiment_message(report))

    async def ListExperiments(self, request: Any, context: Any) -> optimizer_pb2.ListExperimentsResponse:
        listed = self._experiments.listed(request.prompt, request.limit)
        reports = [self._experiments.report(e.id) for e in listed]
        return optimizer_pb2.ListExperimentsResponse(experiments=[experiment_message(r) for r in reports])

    async def StopExperiment(self, request: Any, context: Any) -> optimizer_pb2.StopExperimentResponse:
        self._experiments.kill(request.experiment_id, request.reason, _actor())
        report = self._experiments.report(request.experiment_id)
        return optimizer_pb2.StopExperimentResponse(experiment=experiment_message(report))

    async def RecordOutcome(self, request: Any, context: Any) -> optimizer_pb2.RecordOutcomeResponse:
        return recorded_message(self._outcomes.record(outcome_of(request)))

    async def RecordOutcomes(self, request: Any, context: Any) -> optimizer_pb2.RecordOutcomesResponse:
        if len(request.outcomes) > MAX_OUTCOMES_PER_CALL:
            raise InvalidArgument(f"at most {MAX_OUTCOMES_PER_CALL} outcomes per call", field="outcomes")
        reply = optimizer_pb2.RecordOutcomesResponse()
        for n, outcome in enumerate(request.outcomes):
            try:
                reply.results.append(recorded_message(self._outcomes.record(outcome_of(outcome))))
            except Unavailable:
                # Not this outcome's fault: the whole call fails and is sent
                # again; what was recorded already is recorded once.
                raise
            except Fault as fault:  # this one is refused for good; the others are recorded
                field = f"outcomes[{n}].{fault.field}" if fault.field else f"outcomes[{n}]"
                reply.refused.add(index=n, field=field, message=fault.message)
        return reply

    async def RecordFeedback(self, request: Any, context: Any) -> optimizer_pb2.RecordFeedbackResponse:
        remaining = context.time_remaining()
        wait_s = FEEDBACK_WAIT_S if remaining is None else min(FEEDBACK_WAIT_S, remaining - 0.5)
        await self._experiments.feedback_when_recorded(
            request.completion_id, request.thumbs_up, request.comment, wait_s
        )
        return optimizer_pb2.RecordFeedbackResponse()


class QualityServicer:
    """The offline work: how answers have been doing, the improvement cycles
    that act on it, and evaluation runs over a question set."""

    def __init__(
        self,
        experiments: Experiments,
        monitor: QualityMonitor,
        cycle: ImprovementCycle,
        evaluations: EvaluationRunner,
    ):
        self._experiments = experiments
        self._monitor = monitor
        self._cycle = cycle
        self._evaluations = evaluations

    async def GetQuality(self, request: Any, context: Any) -> optimizer_pb2.GetQualityResponse:
        if request.check_now:
            await self._monitor.check()
        turns, agreement, difference = self._monitor.judge_agreement()
        return optimizer_pb2.GetQualityResponse(
            groups=[quality_message(q) for q in self._monitor.quality()],
            alerts=[alert_message(alert, delivered) for alert, delivered in self._monitor.alerts()],
            judge_agreement=optimizer_pb2.JudgeAgreement(turns=turns, agreement=agreement, mean_difference=difference),
        )

    async def GetQualityHistory(self, request: Any, context: Any) -> optimizer_pb2.GetQualityHistoryResponse:
        since = self._monitor.fitted_since() if request.fit else (request.since or time.time() - 86_400)
        series = self._monitor.history(request.group, since, request.points or 120)
        until = time.time()
        levels = self._monitor.thresholds
        return optimizer_pb2.GetQualityHistoryResponse(
            series=[series_message(key, points) for key, points in series.items()],
            levels=optimizer_pb2.QualityLevels(
                critical=levels.critical, warning=levels.warning, target=levels.target, excellent=levels.excellent
            ),
            window=self._monitor.window,
            since=timestamp_of(since),
            until=timestamp_of(until),
        )

    def _cycle_message(self, record: CycleRecord) -> optimizer_pb2.ImprovementCycleRecord:
        experiment = self._experiments.report(record.experiment_id) if record.experiment_id else None
        return cycle_message(record, experiment)

    async def TriggerCycle(self, request: Any, context: Any) -> optimizer_pb2.TriggerCycleResponse:
        reason = f"asked by {_actor()}" + (f": {request.reason}" if request.reason else "")
        record = await self._cycle.trigger(request.prompt or "customer", request.category, reason)
        return optimizer_pb2.TriggerCycleResponse(cycle=self._cycle_message(record))

    async def GetCycleStatus(self, request: Any, context: Any) -> optimizer_pb2.GetCycleStatusResponse:
        self._cycle.sync()
        return optimizer_pb2.GetCycleStatusResponse(
            cycles=[self._cycle_message(r) for r in self._cycle.recent()],
            quality_by_category=[quality_message(q) for q in self._monitor.quality() if q.group == "category"],
            learning=[
                optimizer_pb2.PatternLearning(pattern=p, wins=w, losses=lo)
                for p, (w, lo) in sorted(self._cycle.learning().items())
            ],
        )

    async def StartEvaluation(self, request: Any, context: Any) -> optimizer_pb2.StartEvaluationResponse:
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

    async def ListEvaluations(self, request: Any, context: Any) -> optimizer_pb2.ListEvaluationsResponse:
        runs = self._evaluations.recent(request.limit)
        return optimizer_pb2.ListEvaluationsResponse(runs=[evaluation_message(run) for run in runs])

    async def GetEvaluation(self, request: Any, context: Any) -> optimizer_pb2.GetEvaluationResponse:
        if not request.run_id:
            raise InvalidArgument("run_id is required", field="run_id")
        run, report = self._evaluations.get(request.run_id)
        return optimizer_pb2.GetEvaluationResponse(
            run=evaluation_message(run),
            report_json=report,
            report_html=evaluation_report.to_html(report) if report else "",
        )


def add_to_server(server: grpc.aio.Server, *servicers: object) -> None:
    """Serve OptimizerService's RPCs from `servicers`, each RPC from exactly
    one of them; an RPC served twice or by none stops the start."""
    methods: dict[str, Callable[..., Any]] = {}
    for servicer in servicers:
        for name in SERVICE.methods_by_name:
            method = getattr(type(servicer), name, None)
            if method is None:
                continue
            if name in methods:
                raise RuntimeError(f"OptimizerService.{name} is served twice")
            methods[name] = getattr(servicer, name)
    missing = sorted(set(SERVICE.methods_by_name) - set(methods))
    if missing:
        raise RuntimeError(f"OptimizerService has no servicer for {', '.join(missing)}")
    optimizer_pb2_grpc.add_OptimizerServiceServicer_to_server(SimpleNamespace(**methods), server)


class OptimizerComponent:
    def __init__(
        self,
        storage: OptimizerStore,
        monitor: QualityMonitor | None = None,
        check_every_s: float = 0.0,
        variant_writer: VariantWriter | None = None,
        on_close: Callable[[], Awaitable[None]] | None = None,
        judge: LlmJudge | None = None,
        evaluation_peers: EvaluationPeers | None = None,
        gate_model: str = "",
        gate_customers: Sequence[str] = (),
    ):
        self.storage = storage
        self.registry = PromptRegistry(storage)
        self.evaluations = EvaluationRunner(storage, evaluation_peers, self.registry)
        gate = OfflineGate(self.evaluations, gate_model, gate_customers) if gate_model and gate_customers else None
        self.experiments = Experiments(storage, self.registry)
        self.monitor = monitor or QualityMonitor(storage)
        self.cycle = ImprovementCycle(
            storage, self.registry, self.experiments, self.monitor, variant_writer, offline_gate=gate
        )
        self._on_close = on_close
        self.judge = judge
        self._check_every_s = check_every_s
        self._task: asyncio.Task[None] | None = None
        self._metrics = quality_metrics(self.monitor)

    def register(self, server: grpc.aio.Server) -> Sequence[str]:
        outcomes = OutcomeRecorder(self.experiments, self.evaluations, self.judge)
        add_to_server(
            server,
            PromptServicer(self.registry, self.experiments, outcomes),
            QualityServicer(self.experiments, self.monitor, self.cycle, self.evaluations),
        )
        SNAPSHOTS.add(self._metrics)
        if self._check_every_s > 0:
            self._task = asyncio.ensure_future(self._watch())
        return [SERVICE.full_name]

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
