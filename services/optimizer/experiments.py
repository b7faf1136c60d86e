"""Experiments: A/B (or A/B/n) tests of prompt versions.

Assignment is sticky and deterministic: the blake2b digest of the
experiment's salt and the subject (a conversation or an API key) picks an
arm by weight, so a conversation keeps its arm across turns and replicas.

Outcomes are recorded per turn (quality score, latency, tokens, error) and
feedback per completion. The decision rule compares every candidate arm with
the control (the version that was active when the experiment started) at
checkpoints: when every arm has `min_samples` scored turns, then twice,
four times as many, and so on. Looking after every turn would find
"significant" differences between equal arms far more often than `alpha`
says, so each look spends half of the significance still unspent (alpha/2,
then alpha/4, ...), keeping the chance of any false call below `alpha`:
  - guardrail: a candidate significantly worse on quality (Welch's t-test) or
    on error rate (two-proportion test) at `alpha` is stopped at once;
  - promotion: a candidate significantly better on quality, and not worse on
    errors, wins; with `auto_promote` its version is activated;
  - otherwise "not yet significant".
A kill switch ends an experiment at once; the control stays active.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from dataclasses import dataclass, field

from services.optimizer.arm_statistics import ArmSummary, proportion_p_value, summarise, welch_p_value
from services.optimizer.prompts import SELF, PromptRegistry, PromptVersion
from services.optimizer.storage import OptimizerStore, statements
from services.runtime.faults import InvalidArgument, NotFound
from services.runtime.limits import list_limit

RUNNING = "running"
PROMOTED = "promoted"
STOPPED_GUARDRAIL = "stopped_by_guardrail"
KILLED = "killed"
CONCLUDED = "concluded"  # a winner was found but not promoted automatically
# How often feedback that came before its answer's outcome looks again.
FEEDBACK_POLL_S = 0.1


@dataclass(frozen=True)
class Arm:
    version: int
    weight: float


@dataclass(frozen=True)
class Experiment:
    id: int
    prompt: str
    salt: str
    state: str
    control_version: int
    arms: tuple[Arm, ...]
    min_samples: int
    alpha: float
    auto_promote: bool
    created_at: float
    ended_at: float | None
    decision: str
    started_by: str = ""


@dataclass
class ArmReport:
    version: int
    weight: float
    quality: ArmSummary
    errors: int
    turns: int
    thumbs_up: int
    thumbs_down: int
    p_quality: float | None = None  # against the control
    p_errors: float | None = None
    p_feedback: float | None = None


@dataclass
class Decision:
    action: str  # continue, promote, stop_candidate
    version: int | None
    reason: str


@dataclass
class ExperimentReport:
    experiment: Experiment
    arms: list[ArmReport] = field(default_factory=list)
    decision: Decision = field(default_factory=lambda: Decision("continue", None, "not yet decided"))


def _significant(p: float | None, alpha: float) -> bool:
    """An arm compared with the control at `p` differs at `alpha`; the
    control itself (no p) never does."""
    return p is not None and p < alpha


def assign(salt: str, subject: str, arms: tuple[Arm, ...]) -> Arm:
    digest = hashlib.blake2b(f"{salt}:{subject}".encode(), digest_size=8).digest()
    point = int.from_bytes(digest, "big") / 2**64 * sum(a.weight for a in arms)
    for arm in arms:
        if point < arm.weight:
            return arm
        point -= arm.weight
    return arms[-1]


class Experiments:
    def __init__(self, storage: OptimizerStore, registry: PromptRegistry):
        self.storage = storage
        self.registry = registry

    # Lifecycle.

    def start(
        self,
        prompt: str,
        arms: list[tuple[int, float]],
        min_samples: int = 100,
        alpha: float = 0.05,
        auto_promote: bool = False,
        salt: str | None = None,
        started_by: str = SELF,
    ) -> Experiment:
        control = self.registry.active(prompt)
        self._check_arms(prompt, arms)
        versions = [v for v, _ in arms]
        if min_samples < 2:
            raise InvalidArgument("min_samples must be at least 2", field="min_samples")
        if not 0 < alpha < 0.5:
            raise InvalidArgument("alpha must be between 0 and 0.5", field="alpha")
        control_version = control.version if control.version in versions else versions[0]
        with self.storage.transaction() as db:
            if db.execute(statements.RUNNING_EXPERIMENT, prompt=prompt, state=RUNNING).fetchone():
                raise InvalidArgument(f"prompt {prompt!r} already has a running experiment", field="prompt")
            (experiment_id,) = db.execute(
                statements.START_EXPERIMENT,
                prompt=prompt,
                salt=salt or secrets.token_hex(8),
                state=RUNNING,
                control_version=control_version,
                min_samples=min_samples,
                alpha=alpha,
                auto_promote=int(auto_promote),
                created_at=time.time(),
                started_by=started_by,
            ).fetchone()
            db.executemany(
                statements.ADD_ARM, [{"experiment_id": experiment_id, "version": v, "weight": w} for v, w in arms]
            )
        return self.get(experiment_id)

    def _check_arms(self, prompt: str, arms: list[tuple[int, float]]) -> None:
        """Two arms or more, each a version of `prompt` named once, with
        weights not negative and not all zero."""
        if len(arms) < 2:
            raise InvalidArgument("an experiment needs at least two arms", field="arms")
        versions = [v for v, _ in arms]
        if len(set(versions)) != len(versions):
            raise InvalidArgument("each arm must name a different version", field="arms")
        for n, (version, weight) in enumerate(arms):
            if weight < 0:
                raise InvalidArgument(f"arms[{n}].weight must not be negative", field=f"arms[{n}].weight")
            try:
                self.registry.get(prompt, version)
            except NotFound:
                raise InvalidArgument(
                    f"arms[{n}] names version {version}, which prompt {prompt!r} does not have",
                    field=f"arms[{n}].version",
                ) from None
        if sum(w for _, w in arms) <= 0:
            raise InvalidArgument("the arms' weights must sum to a positive number", field="arms")

    def get(self, experiment_id: int) -> Experiment:
        rows = self.storage.query(statements.EXPERIMENT, id=experiment_id)
        if not rows:
            raise NotFound(f"no experiment {experiment_id}", field="experiment_id")
        (eid, prompt, salt, state, control, min_samples, alpha, auto, created, ended, decision, started_by) = rows[0]
        arms = tuple(Arm(v, w) for v, w in self.storage.query(statements.ARMS, experiment_id=eid))
        return Experiment(
            eid,
            prompt,
            salt,
            state,
            control,
            arms,
            min_samples,
            alpha,
            bool(auto),
            created,
            ended,
            decision,
            started_by,
        )

    def listed(self, prompt: str = "", limit: int = 0) -> list[Experiment]:
        """Running experiments first, then the newest; at most `limit` (0: 20)."""
        limit = list_limit(limit)
        rows = self.storage.query(statements.LISTED_EXPERIMENTS, prompt=prompt, running=RUNNING, limit=limit)
        return [self.get(eid) for (eid,) in rows]

    def running(self, prompt: str) -> Experiment | None:
        rows = self.storage.query(statements.RUNNING_EXPERIMENT, prompt=prompt, state=RUNNING)
        return self.get(rows[0][0]) if rows else None

    def end(self, experiment_id: int, state: str, decision: str) -> Experiment:
        with self.storage.transaction() as db:
            updated = db.execute(
                statements.END_EXPERIMENT,
                state=state,
                ended_at=time.time(),
                decision=decision,
                id=experiment_id,
                running=RUNNING,
            ).rowcount
        experiment = self.get(experiment_id)
        if not updated:
            raise InvalidArgument(
                f"experiment {experiment_id} is not running ({experiment.state})", field="experiment_id"
            )
        return experiment

    def kill(self, experiment_id: int, reason: str = "", actor: str = SELF) -> Experiment:
        """The kill switch: the experiment ends now and the control stays."""
        return self.end(experiment_id, KILLED, f"killed by {actor}: {reason or 'no reason given'}")

    # Serving.

    def choose(self, prompt: str, subject: str) -> tuple[PromptVersion, int]:
        """The version a conversation gets, and the experiment (0: none)."""
        experiment = self.running(prompt)
        if experiment is None or not subject:
            return self.registry.active(prompt), 0
        arm = assign(experiment.salt, subject, experiment.arms)
        return self.registry.get(prompt, arm.version), experiment.id

    # Outcomes.

    def record(
        self,
        completion_id: str,
        prompt: str,
        version: int,
        experiment_id: int = 0,
        *,
        model: str = "",
        category: str = "",
        score: float | None = None,
        latency_ms: float | None = None,
        tokens: int | None = None,
        error: bool = False,
        weakest: str = "",
        mode: str = "",
    ) -> Decision | None:
        """One turn's outcome; returns the decision it led to, if any. A
        completion id is recorded once: a repeat (a retried delivery)
        changes nothing, its feedback included."""
        if not completion_id:
            raise InvalidArgument("completion_id is required", field="completion_id")
        if score is not None and not 0.0 <= score <= 1.0:
            raise InvalidArgument("score must be between 0 and 1", field="score")
        with self.storage.transaction() as db:
            db.execute(
                statements.RECORD_OUTCOME,
                completion_id=completion_id,
                experiment_id=experiment_id or None,
                prompt=prompt,
                version=version,
                model=model,
                category=category,
                score=score,
                latency_ms=latency_ms,
                tokens=tokens,
                error=int(error),
                at=time.time(),
                weakest=weakest,
                mode=mode,
            )
        if not experiment_id:
            return None
        return self.evaluate(experiment_id)

    def has_outcome(self, completion_id: str) -> bool:
        return bool(self.storage.query(statements.HAS_OUTCOME, completion_id=completion_id))

    def judged(self, completion_id: str, score: float, reason: str) -> None:
        """The LLM judge's grade of a recorded turn."""
        with self.storage.transaction() as db:
            db.execute(statements.JUDGED, score=score, reason=reason, completion_id=completion_id)

    def feedback(self, completion_id: str, thumbs_up: bool, comment: str = "") -> None:
        with self.storage.transaction() as db:
            updated = db.execute(
                statements.FEEDBACK, thumbs_up=int(thumbs_up), comment=comment[:2000], completion_id=completion_id
            ).rowcount
        if not updated:
            raise NotFound(f"no answer with completion id {completion_id!r}", field="completion_id")

    async def feedback_when_recorded(self, completion_id: str, thumbs_up: bool, comment: str, wait_s: float) -> None:
        """`feedback`, waiting up to `wait_s` for the answer's outcome: the
        router sends outcomes in batches off the answer's path, so a user
        quick to rate an answer may get here first."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                return self.feedback(completion_id, thumbs_up, comment)
            except NotFound:
                if time.monotonic() + FEEDBACK_POLL_S > deadline:
                    raise
            await asyncio.sleep(FEEDBACK_POLL_S)

    # Statistics and the decision rule.

    def report(self, experiment_id: int, alpha: float | None = None) -> ExperimentReport:
        """Per-arm statistics and the decision rule's reading at `alpha`
        (default: the significance the next look may spend)."""
        experiment = self.get(experiment_id)
        if alpha is None:
            (looks,) = self.storage.query(statements.EXPERIMENT_LOOKS, id=experiment_id)[0]
            alpha = experiment.alpha / 2 ** (looks + 1)
        report = ExperimentReport(experiment)
        raw: dict[int, tuple[list[float], int, int, int, int]] = {}
        for arm in experiment.arms:
            rows = self.storage.query(statements.ARM_OUTCOMES, experiment_id=experiment_id, version=arm.version)
            scores = [s for s, _, _ in rows if s is not None]
            errors = sum(e for _, e, _ in rows)
            up = sum(1 for _, _, f in rows if f == 1)
            down = sum(1 for _, _, f in rows if f == 0)
            raw[arm.version] = (scores, errors, len(rows), up, down)
            report.arms.append(ArmReport(arm.version, arm.weight, summarise(scores), errors, len(rows), up, down))
        control = raw[experiment.control_version]
        for reported in report.arms:
            if reported.version == experiment.control_version:
                continue
            scores, errors, turns, up, down = raw[reported.version]
            reported.p_quality = welch_p_value(scores, control[0])
            reported.p_errors = proportion_p_value(errors, turns, control[1], control[2])
            reported.p_feedback = proportion_p_value(up, up + down, control[3], control[3] + control[4])
        report.decision = self._decide(experiment, report, alpha)
        return report

    def _decide(self, experiment: Experiment, report: ExperimentReport, alpha: float) -> Decision:
        by_version = {a.version: a for a in report.arms}
        control = by_version[experiment.control_version]
        short = [a.version for a in report.arms if a.weight > 0 and a.quality.count < experiment.min_samples]
        if short:
            return Decision(
                "continue",
                None,
                f"not yet significant: versions {short} have fewer than {experiment.min_samples} scored turns",
            )
        for arm in report.arms:
            if arm.version == control.version or arm.weight == 0:
                continue
            worse_quality = _significant(arm.p_quality, alpha) and arm.quality.mean < control.quality.mean
            worse_errors = _significant(arm.p_errors, alpha) and arm.errors / arm.turns > control.errors / max(
                1, control.turns
            )
            if worse_quality or worse_errors:
                what = "quality" if worse_quality else "error rate"
                p = arm.p_quality if worse_quality else arm.p_errors
                return Decision("stop_candidate", arm.version, f"version {arm.version} is worse on {what} (p={p:.4g})")
        winners = [
            a
            for a in report.arms
            if a.version != control.version
            and a.weight > 0
            and _significant(a.p_quality, alpha)
            and a.quality.mean > control.quality.mean
            and not (_significant(a.p_errors, alpha) and a.errors / a.turns > control.errors / max(1, control.turns))
        ]
        if winners:
            best = max(winners, key=lambda a: a.quality.mean)
            return Decision(
                "promote",
                best.version,
                f"version {best.version} beats version {control.version} on quality "
                f"({best.quality.mean:.3f} vs {control.quality.mean:.3f}, p={best.p_quality:.4g})",
            )
        return Decision("continue", None, f"not yet significant at alpha {alpha:.3g}")

    def evaluate(self, experiment_id: int) -> Decision | None:
        """Apply the decision rule to a running experiment."""
        experiment = self.get(experiment_id)
        if experiment.state != RUNNING:
            return None
        active = [a.version for a in experiment.arms if a.weight > 0]
        counts = dict(self.storage.query(statements.SCORED_PER_VERSION, experiment_id=experiment_id))
        fewest = min(counts.get(v, 0) for v in active)
        (looks,) = self.storage.query(statements.EXPERIMENT_LOOKS, id=experiment_id)[0]
        checkpoint = experiment.min_samples * 2**looks
        if fewest < checkpoint:
            return Decision("continue", None, f"not yet significant: next look at {checkpoint} scored turns per arm")
        with self.storage.transaction() as db:
            # A look is taken once: of replicas recording outcomes at the same
            # time, the one that moves the count from `looks` decides.
            taken = db.execute(statements.TAKE_LOOK, id=experiment_id, looks=looks, running=RUNNING).rowcount
        if not taken:
            return None
        decision = self.report(experiment_id, alpha=experiment.alpha / 2 ** (looks + 1)).decision
        if decision.action == "stop_candidate":
            # Two arms: the experiment ends and the control stays. More arms:
            # the loser's weight drops to 0 and the others go on.
            if len([a for a in experiment.arms if a.weight > 0]) <= 2:
                self.end(experiment_id, STOPPED_GUARDRAIL, decision.reason)
            else:
                with self.storage.transaction() as db:
                    db.execute(statements.SILENCE_ARM, experiment_id=experiment_id, version=decision.version)
        elif decision.action == "promote" and decision.version is not None:  # a promotion names its version
            if experiment.auto_promote:
                self.registry.activate(
                    experiment.prompt, decision.version, f"experiment {experiment_id}: {decision.reason}"
                )
                self.end(experiment_id, PROMOTED, decision.reason)
            else:
                self.end(experiment_id, CONCLUDED, decision.reason + "; promote it to make it active")
        return decision
