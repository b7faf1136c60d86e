"""FaultReport: what users saw during one fault, and what the mesh kept.

Timing is read from the requests themselves. A request is affected when it
failed, or succeeded only after stalling (over STALLED_S; the slowest good
answer without a fault takes about 1 s on a 2-core machine). `detect_s`:
from the fault's start until the last affected request of the fault ended
(so a request left waiting on a dead peer counts for as long as it waited);
`recover_s`: from healing until the last affected request asked after it
ended; None when no request was affected. Losses are
counted against what was acknowledged: every answered chat's turn outcome
(the optimizer's store), every answered customer question's access record
(the audit log) and every acknowledged feedback, each expected exactly once."""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from tests.chaos.faults import Fault
from tests.chaos.load import Outcome

STALLED_S = 5.0


@dataclass
class FaultReport:
    fault: Fault
    began: float
    healed: float
    outcomes: list[Outcome]
    outcomes_lost: int = 0
    access_lost: int = 0
    feedback_lost: int = 0
    duplicated: int = 0
    over_limit: dict[str, int] = field(default_factory=dict)  # metered key kind -> admitted beyond its limit
    lost: list[str] = field(default_factory=list)  # what went missing, for whoever looks into it

    @property
    def chats(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.kind != "feedback"]

    def count(self, result: str) -> int:
        return sum(1 for o in self.failed if o.result == result)

    @property
    def slowest_ok_s(self) -> float:
        """The longest a request that succeeded took: the wait users saw."""
        return max((o.ended - o.started for o in self.chats if o.result == "ok"), default=0.0)

    @property
    def failed(self) -> list[Outcome]:
        # A metered key's refusal is the quota at work, not a failure.
        return [o for o in self.chats if o.result != "ok" and not _refused_by_limit(o)]

    @property
    def affected(self) -> list[Outcome]:
        """Requests that failed, or succeeded only after stalling."""
        stalled = [o for o in self.chats if o.result == "ok" and o.ended - o.started > STALLED_S]
        return self.failed + stalled

    @property
    def detect_s(self) -> float | None:
        """From the fault's start until the last request it caught (in
        flight then or asked during it) ended."""
        caught = [o.ended - self.began for o in self.affected if o.ended >= self.began and o.started < self.healed]
        return max(caught) if caught else None

    @property
    def recover_s(self) -> float | None:
        """From healing until the last request asked after it that was affected ended."""
        after = [o.ended - self.healed for o in self.affected if o.started >= self.healed]
        return max(after) if after else None

    def violations(self) -> list[str]:
        """What breaks the fault's bounds, in words; empty when all hold."""
        found = []
        name = self.fault.name
        if self.count("hung"):
            found.append(f"{name}: {self.count('hung')} requests hung past the deadline")
        if self.count("wrong"):
            examples = "; ".join(o.detail[:160] for o in self.failed if o.result == "wrong")
            found.append(f"{name}: {self.count('wrong')} wrong answers: {examples[:600]}")
        if self.detect_s is not None and self.detect_s > self.fault.detect_bound_s:
            found.append(f"{name}: requests failed or stalled until {self.detect_s:.1f} s into the fault "
                         f"(bound {self.fault.detect_bound_s:.0f} s)")  # fmt: skip
        if self.recover_s is not None and self.recover_s > self.fault.recover_bound_s:
            found.append(f"{name}: requests failed or stalled until {self.recover_s:.1f} s after healing "
                         f"(bound {self.fault.recover_bound_s:.0f} s)")  # fmt: skip
        for what, lost in (("turn outcomes", self.outcomes_lost), ("access records", self.access_lost),
                           ("feedback", self.feedback_lost), ("duplicated records", self.duplicated)):  # fmt: skip
            if lost:
                found.append(f"{name}: {lost} {what}")
        if not self.fault.quotas_may_drift:
            for kind, beyond in self.over_limit.items():
                if beyond:
                    found.append(f"{name}: the {kind} key was admitted {beyond} beyond its limit")
        return found


def _refused_by_limit(outcome: Outcome) -> bool:
    return outcome.kind in ("metered", "lookup") and outcome.status == 429


def check_records(
    reports: list[FaultReport], feedback: dict[str, bool], postgres_url: str, audit_db: Path
) -> tuple[set[str], set[str], set[str], int]:
    """Acknowledged ids missing from the stores: (outcomes, access, feedback), and duplicates."""
    answered = {o.completion_id for r in reports for o in r.chats if o.result == "ok" and o.completion_id}
    about_customers = {o.completion_id for r in reports for o in r.chats if o.result == "ok" and o.customer}
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute(
            "SELECT completion_id, feedback FROM outcomes WHERE completion_id = ANY(%s)", (list(answered),)
        ).fetchall()
    stored = {completion_id: rating for completion_id, rating in rows}
    missing_outcomes = answered - set(stored)
    missing_feedback = {c for c, up in feedback.items() if c in stored and stored[c] != int(up)}
    with sqlite3.connect(f"file:{audit_db}?mode=ro", uri=True) as conn:
        records = conn.execute(
            f"SELECT completion_id, action, entity_id, recorded_by FROM access "
            f"WHERE completion_id IN ({','.join('?' * len(about_customers))})",
            list(about_customers),
        ).fetchall()
    missing_access = about_customers - {row[0] for row in records}
    duplicates = sum(n - 1 for n in Counter(records).values() if n > 1)
    return missing_outcomes, missing_access, missing_feedback, duplicates


def over_limits(reports: list[FaultReport], requests_per_minute: int, customers_per_hour: int) -> None:
    """Per report, how many requests of each metered key were admitted
    beyond its limit: in each window of the limit (a minute, an hour of the
    clock), the admissions past the limit, in order, each counted against
    a fault that let the window's counts drift, or else the fault during
    which it was asked."""
    outcomes = sorted((o for r in reports for o in r.chats), key=lambda o: o.wall)
    beyond: list[Outcome] = []
    for kind, window_s, limit in (("metered", 60, requests_per_minute), ("lookup", 3600, customers_per_hour)):
        admitted: dict[int, set[str]] = {}
        for outcome in (o for o in outcomes if o.kind == kind and o.result == "ok"):
            # A metered request counts once; a customer once an hour, however often asked.
            seen = admitted.setdefault(int(outcome.wall // window_s), set())
            what = outcome.customer if kind == "lookup" else str(id(outcome))
            if what not in seen:
                seen.add(what)
                if len(seen) > limit:
                    beyond.append(outcome)
    # A window whose counts a fault let drift (Redis away: admitted, not
    # counted) lets the rest of that window's requests in past the limit,
    # after the fault healed; the excess is the drifting fault's.
    offset = time.time() - time.monotonic()
    for report in reports:
        report.over_limit = dict.fromkeys(("metered", "lookup"), 0)
    for outcome in beyond:
        window_s = 60 if outcome.kind == "metered" else 3600
        start = outcome.wall // window_s * window_s
        drifting = [
            r for r in reports
            if r.fault.quotas_may_drift and r.began + offset < start + window_s and r.healed + offset > start
        ]  # fmt: skip
        asked_in = [r for r in reports if any(o is outcome for o in r.chats)]
        for report in (drifting or asked_in)[:1]:
            report.over_limit[outcome.kind] += 1


def table(reports: list[FaultReport], markdown: bool = False) -> str:
    """The run as one table: aligned text, or Markdown for the docs."""
    header = ("fault", "requests", "explicit errors", "hung", "wrong", "slowest ok s", "detect s", "recover s",
              "outcomes lost", "access lost", "feedback lost", "dup", "over limit")  # fmt: skip
    rows = [header]
    for r in reports:
        over = ", ".join(f"{k} +{v}" for k, v in r.over_limit.items() if v) or "0"
        rows.append((
            r.fault.name, str(len(r.chats)), str(r.count("error")), str(r.count("hung")), str(r.count("wrong")),
            f"{r.slowest_ok_s:.1f}",
            _seconds(r.detect_s, r.fault.detect_bound_s), _seconds(r.recover_s, r.fault.recover_bound_s),
            str(r.outcomes_lost), str(r.access_lost), str(r.feedback_lost), str(r.duplicated), over,
        ))  # fmt: skip
    if markdown:
        lines = ["| " + " | ".join(row) + " |" for row in rows]
        lines.insert(1, "|" + "|".join("---" for _ in header) + "|")
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [" | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(lines)


def _seconds(value: float | None, bound: float) -> str:
    return f"0 (≤{bound:.0f})" if value is None else f"{value:.1f} (≤{bound:.0f})"


def failures(reports: list[FaultReport], most: int = 5) -> str:
    """Per fault, its most common failures, for whoever reads the table."""
    lines = []
    for report in reports:
        seen = Counter(
            f"{o.result}: {o.detail[:110]}" if o.result != "ok" else f"stalled {_bucket(o.ended - o.started)}"
            for o in report.affected
        )
        seen.update(f"feedback {o.result}: {o.detail[:100]}" for o in report.outcomes if o.kind == "feedback"
                    and o.result != "ok")  # fmt: skip
        if seen or report.lost:
            lines.append(f"{report.fault.name}:")
            lines += [f"  {n} × {what}" for what, n in seen.most_common(most)]
            lines += [f"  lost: {what}" for what in report.lost[:most]]
    return "\n".join(lines)


def _bucket(seconds: float) -> str:
    """5-10 s, 10-20 s, ...: stalls grouped for reading."""
    low = 5 * 2 ** max(0, int(seconds // 5).bit_length() - 1)
    return f"{low}-{2 * low} s"
