"""ImprovementCycle: when answers of a category score below the warning
level (or an operator asks), propose better versions of the prompt, test
them against the current one, and remember what worked.

Variants are written by a model through llm_gateway when one is configured
(`variant_model`), shown the current template and the worst-scoring turns'
weakest evaluators as evidence; otherwise (and with the offline model) they
are built from refinement patterns, ranked by how each pattern did before
(wins minus losses) and by how well it answers the evidence. The variants
become versions and start an experiment against the active version with
automatic promotion, so the decision rule promotes a winner or keeps the
control. When the experiment ends, each variant's pattern is credited with a
win or a loss: that is the learning the next cycle ranks by."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from services.optimizer import experiments as states
from services.optimizer.experiments import Experiments
from services.optimizer.monitoring import QualityMonitor
from services.optimizer.prompts import PromptRegistry, PromptVersion, template_variables
from services.optimizer.storage import Connection, OptimizerStore, statements
from services.runtime.faults import FailedPrecondition, Fault, InvalidArgument

log = logging.getLogger("optimizer.cycle")

# Refinement patterns: an instruction added to the prompt, and the evaluator
# weakness it answers.
PATTERNS = {
    "numbers_verbatim": (
        "groundedness",
        "Copy every number, date and e-mail exactly as the data shows it; never compute, round or estimate one.",
    ),
    "cite_records": ("groundedness", "Put the record id in brackets after every fact you state."),
    "say_not_on_file": (
        "coverage",
        "Answer every part of the question; for any part the data does not cover, say it is not on file.",
    ),
    "answer_first": ("coverage", "Start with the direct answer in one sentence, then give the supporting facts."),
    "refuse_unknown": (
        "refusal",
        "If no customer matched, say so plainly and ask for an e-mail, client id or phone number.",
    ),
    "complete_sentences": ("format", "Answer in complete sentences and end with a full stop."),
}
VARIANTS_PER_CYCLE = 2
EVIDENCE_TURNS = 20
RUNNING = "running"


@dataclass
class CycleRecord:
    id: int
    prompt: str
    category: str
    reason: str
    experiment_id: int | None
    started_at: float
    ended_at: float | None
    outcome: str
    variants: list[tuple[int, str]] = field(default_factory=list)


# A model that writes variants of a template, told its weaknesses.
VariantWriter = Callable[[str, Counter[str]], Awaitable[list[str]]]
# Prompt versions evaluated offline: each version's mean quality.
OfflineScores = Callable[[Sequence[int]], Awaitable[dict[int, float]]]


class ImprovementCycle:
    def __init__(
        self,
        storage: OptimizerStore,
        registry: PromptRegistry,
        experiments: Experiments,
        monitor: QualityMonitor,
        variant_writer: VariantWriter | None = None,
        min_samples: int = 50,
        cooldown_s: float = 3600.0,
        offline_gate: OfflineScores | None = None,
    ):
        self.storage = storage
        self.registry = registry
        self.experiments = experiments
        self.monitor = monitor
        self.variant_writer = variant_writer  # async (template, evidence) -> list[str] | None
        self.min_samples = min_samples
        # After a cycle ends, the rolling window still holds the turns that
        # started it: wait for fresh evidence before starting another.
        self.cooldown_s = cooldown_s
        # async (versions) -> {version: score}: candidates are evaluated
        # offline first; one scoring below the active version never starts.
        self.offline_gate = offline_gate

    # Learning.

    def learning(self) -> dict[str, tuple[int, int]]:
        return {p: (w, lo) for p, w, lo in self.storage.query(statements.LEARNING)}

    def _credit(self, db: Connection, pattern: str, won: bool) -> None:
        db.execute(statements.CREDIT, pattern=pattern, wins=int(won), losses=int(not won))

    # The cycle.

    def evidence(self, prompt: str, category: str) -> Counter[str]:
        """Weakest evaluators among the worst-scoring recent turns."""
        rows = self.storage.query(statements.WEAKEST_OF_WORST, prompt=prompt, category=category, limit=EVIDENCE_TURNS)
        return Counter(w for (w,) in rows if w)

    def _ranked_patterns(self, evidence: Counter[str]) -> list[str]:
        learned = self.learning()

        def rank(pattern: str) -> tuple[int, int, int]:
            wins, losses = learned.get(pattern, (0, 0))
            return (wins - losses, evidence.get(PATTERNS[pattern][0], 0), -list(PATTERNS).index(pattern))

        return sorted(PATTERNS, key=rank, reverse=True)

    async def trigger(self, prompt: str = "customer", category: str = "", reason: str = "") -> CycleRecord:
        """Start a cycle: variants, versions, an experiment."""
        self.sync()
        if self.experiments.running(prompt) is not None:
            raise FailedPrecondition(f"prompt {prompt!r} already has a running experiment", field="prompt")
        current = self.registry.active(prompt)
        variants = await self._variants(current.template, self.evidence(prompt, category))
        if not variants:
            raise FailedPrecondition("no variant could be made for this prompt", field="prompt")
        why = reason or (f"category {category!r} below threshold" if category else "requested")
        versions = [
            (self.registry.create(prompt, template, note=f"improvement cycle: {pattern} ({why})"), pattern)
            for template, pattern in variants
        ]
        gate_note, versions = await self._gated(current.version, versions)
        experiment = None
        if versions:
            arms = [(current.version, 1.0)] + [(v.version, 1.0) for v, _ in versions]
            experiment = self.experiments.start(prompt, arms, min_samples=self.min_samples, auto_promote=True)
        with self.storage.transaction() as db:
            (cycle_id,) = db.execute(
                statements.START_CYCLE,
                prompt=prompt,
                category=category,
                reason=why,
                experiment_id=experiment.id if experiment else None,
                started_at=time.time(),
                ended_at=None if experiment else time.time(),
                outcome=gate_note if experiment is None else "",
            ).fetchone()
            db.executemany(
                statements.ADD_CYCLE_VARIANT,
                [{"cycle_id": cycle_id, "version": v.version, "pattern": pattern} for v, pattern in versions],
            )
        log.info(
            "cycle.started",
            extra={"fields": {"cycle": cycle_id, "experiment": experiment.id if experiment else None, "why": why,
                              "offline_gate": gate_note}},
        )  # fmt: skip
        return self.get(cycle_id)

    async def _variants(self, template: str, evidence: Counter[str]) -> list[tuple[str, str]]:
        """Candidate templates with the pattern each came from: the variant
        model's first (those that keep the template rules and {context}),
        then the ranked patterns' instructions the template lacks."""
        variants: list[tuple[str, str]] = []
        if self.variant_writer is not None:
            try:
                written = await self.variant_writer(template, evidence)
            except Fault as fault:
                log.warning("cycle.variant_model_failed", extra={"fields": {"code": fault.code}})
                written = None
            for text in written or ():
                try:
                    template_variables(text)
                except InvalidArgument:
                    continue  # a variant that breaks the template rules is dropped
                if "{context}" in text:
                    variants.append((text, "model"))
        for pattern in self._ranked_patterns(evidence):
            if len(variants) >= VARIANTS_PER_CYCLE:
                break
            instruction = PATTERNS[pattern][1]
            if instruction in template:
                continue
            head, _, tail = template.rpartition("{context}")
            variants.append((f"{head.rstrip()} {instruction}\n\n{{context}}{tail}", pattern))
        return variants

    async def _gated(
        self, control: int, versions: list[tuple[PromptVersion, str]]
    ) -> tuple[str, list[tuple[PromptVersion, str]]]:
        """The candidates that score at least as well as the active version
        on the offline evaluation (all of them without a gate)."""
        if self.offline_gate is None or not versions:
            return "", versions
        scores = await self.offline_gate([control, *(v.version for v, _ in versions)])
        kept = [(v, pattern) for v, pattern in versions if scores[v.version] >= scores[control]]
        figures = ", ".join(f"v{version} {score:.3f}" for version, score in scores.items())
        if not kept:
            return f"no candidate scored as well as the active version offline ({figures})", []
        return f"offline: {figures}", kept

    def sync(self) -> None:
        """Close cycles whose experiment ended, crediting their patterns."""
        for cycle_id, experiment_id in self.storage.query(statements.OPEN_CYCLES):
            experiment = self.experiments.get(experiment_id)
            if experiment.state == states.RUNNING:
                continue
            winner = self.registry.active(experiment.prompt).version if experiment.state == states.PROMOTED else None
            with self.storage.transaction() as db:
                for version, pattern in db.execute(statements.CYCLE_VARIANTS, cycle_id=cycle_id).fetchall():
                    self._credit(db, pattern, won=version == winner)
                db.execute(
                    statements.END_CYCLE,
                    ended_at=time.time(),
                    outcome=f"{experiment.state}: {experiment.decision}",
                    id=cycle_id,
                )

    async def watch(self, prompt: str = "customer") -> CycleRecord | None:
        """Start a cycle when a category is below the warning level (not
        within the cooldown after the last one ended)."""
        self.sync()
        if self.experiments.running(prompt) is not None:
            return None
        (last_end,) = self.storage.query(statements.LAST_CYCLE_END, prompt=prompt)[0]
        if last_end is not None and time.time() - last_end < self.cooldown_s:
            return None
        weak = [q for q in self.monitor.quality() if q.group == "category" and q.mean < self.monitor.thresholds.warning]
        if not weak:
            return None
        worst = min(weak, key=lambda q: q.mean)
        return await self.trigger(prompt, worst.key, f"category {worst.key!r} at {worst.mean:.3f}, below warning")

    def get(self, cycle_id: int) -> CycleRecord:
        rows = self.storage.query(statements.CYCLE, id=cycle_id)
        record = CycleRecord(*rows[0])
        record.variants = list(self.storage.query(statements.CYCLE_VARIANTS, cycle_id=cycle_id))
        return record

    def recent(self, limit: int = 10) -> list[CycleRecord]:
        return [self.get(cid) for (cid,) in self.storage.query(statements.RECENT_CYCLES, limit=limit)]
