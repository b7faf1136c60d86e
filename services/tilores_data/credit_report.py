"""Credit report and analysis from the CREDIT_RESPONSE of an entity's
records: per bureau the scores over time, utilization (CREDIT_SUMMARY
PT016), late payments, tradelines and inquiries; then one assessment.

Banding: the FICO score ranges, the one scale lenders and bureaus publish:
  800-850 Exceptional (risk Very Low)   740-799 Very Good (Low)
  670-739 Good (Moderate)               580-669 Fair (High)
  300-579 Poor (Very High)
The assessed score is the lowest of the bureaus' latest scores, as a lender
reads the weakest file. No score on file gives INSUFFICIENT_DATA: no band,
no risk level and no number.

Recommendations come only from the data: utilization above 30 %, late
payments on the newest report, more than 2 inquiries on one report, and a
score that fell more than 20 points since the previous report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

BANDS = (
    (800, "Exceptional", "Very Low"),
    (740, "Very Good", "Low"),
    (670, "Good", "Moderate"),
    (580, "Fair", "High"),
    (300, "Poor", "Very High"),
)
SCORE_RANGE = (300, 850)
UTILIZATION_LIMIT = 30.0
INQUIRY_LIMIT = 2
SCORE_DROP_LIMIT = 20
BUREAUS = ("Equifax", "Experian", "TransUnion")
SCORED = "scored"
INSUFFICIENT_DATA = "insufficient_data"


@dataclass(frozen=True)
class Score:
    bureau: str
    value: int
    model: str
    date: str
    record_id: str


@dataclass
class BureauSummary:
    bureau: str
    scores: list[Score] = field(default_factory=list)
    utilization_percent: float | None = None
    late_30_days: int = 0
    late_60_days: int = 0
    late_90_days: int = 0
    open_accounts: int = 0
    closed_accounts: int = 0
    inquiries: int = 0
    record_id: str = ""
    # The items behind the counts, on the newest report: each inquiry as
    # (date, who asked, purpose), newest first; each account with late
    # payments as (creditor, "30/60/90" counts).
    inquiry_items: list[tuple[str, str, str]] = field(default_factory=list)
    late_accounts: list[tuple[str, str]] = field(default_factory=list)

    @property
    def latest(self) -> Score | None:
        return self.scores[-1] if self.scores else None

    @property
    def score_change(self) -> int | None:
        return self.scores[-1].value - self.scores[-2].value if len(self.scores) > 1 else None


@dataclass
class Assessment:
    status: str
    score: int | None = None
    band: str = ""
    risk_level: str = ""
    recommendations: list[str] = field(default_factory=list)


def band_of(score: int) -> tuple[str, str]:
    """(band, risk level) of a score in 300..850."""
    for floor, band, risk in BANDS:
        if score >= floor:
            return band, risk
    raise ValueError(f"score {score} is below the scale")


def _int(value: object) -> int:
    try:
        return int(float(str(value).strip()))
    except (TypeError, ValueError):
        return 0


def _bureau(report: dict[str, Any]) -> str:
    name = str(report.get("CREDIT_BUREAU") or "").strip()
    if not name:
        scores = report.get("CREDIT_SCORE") or [{}]
        name = str((scores[0] or {}).get("CreditRepositorySourceType") or "").strip()
    return next((b for b in BUREAUS if b.lower() == name.replace(" ", "").lower()), name)


def _utilization(report: dict[str, Any]) -> float | None:
    summary = report.get("CREDIT_SUMMARY") or report.get("CREDIT_SUMMARY_TUI") or {}
    for item in summary.get("DATA_SET") or ():
        if (item or {}).get("ID") == "PT016":
            try:
                return float(str(item.get("Value")).strip().rstrip("%"))
            except (TypeError, ValueError):
                return None
    return None


def bureau_summaries(records: list[dict[str, Any]]) -> list[BureauSummary]:
    """One summary per bureau with a report, alphabetical; the counts come
    from each bureau's newest report."""
    reports: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for record in records:
        report = record.get("CREDIT_RESPONSE")
        if not isinstance(report, dict):
            continue
        bureau = _bureau(report)
        if bureau:
            date = str(report.get("CreditReportFirstIssuedDate") or "")
            reports.setdefault(bureau, []).append((date, str(record.get("id", "")), report))
    summaries = []
    for bureau in sorted(reports):
        dated = sorted(reports[bureau], key=lambda item: item[0])
        summary = BureauSummary(bureau)
        for date, record_id, report in dated:
            for item in report.get("CREDIT_SCORE") or ():
                value = _int((item or {}).get("Value"))
                if SCORE_RANGE[0] <= value <= SCORE_RANGE[1]:
                    summary.scores.append(
                        Score(
                            bureau,
                            value,
                            str(item.get("ModelNameType") or ""),
                            str(item.get("Date") or date),
                            record_id,
                        )
                    )
        summary.scores.sort(key=lambda s: s.date)
        _, summary.record_id, newest = dated[-1]
        _count_from_newest(summary, newest)
        summaries.append(summary)
    return summaries


def _count_from_newest(summary: BureauSummary, newest: dict[str, Any]) -> None:
    """Utilization, late payments, accounts and inquiries: as the bureau's
    newest report states them."""
    summary.utilization_percent = _utilization(newest)
    for liability in newest.get("CREDIT_LIABILITY") or ():
        lates = (liability or {}).get("LateCount") or {}
        summary.late_30_days += _int(lates.get("Days30"))
        summary.late_60_days += _int(lates.get("Days60"))
        summary.late_90_days += _int(lates.get("Days90"))
        counts = [_int(lates.get(key)) for key in ("Days30", "Days60", "Days90")]
        if any(counts):
            creditor = str(((liability or {}).get("Creditor") or {}).get("Name") or "an account")
            summary.late_accounts.append((creditor, "/".join(map(str, counts))))
        closed = str(liability.get("AccountStatusType") or "").lower() == "closed" or bool(
            liability.get("IsClosedIndicator")
        )
        summary.closed_accounts += closed
        summary.open_accounts += not closed
    inquiries = [i for i in newest.get("CREDIT_INQUIRY") or () if isinstance(i, dict)]
    summary.inquiries = len(newest.get("CREDIT_INQUIRY") or ())
    summary.inquiry_items = sorted(
        ((str(i.get("Date") or ""), str(i.get("Name") or ""), str(i.get("PurposeType") or "")) for i in inquiries),
        reverse=True,
    )


def assess(summaries: list[BureauSummary]) -> Assessment:
    latest = [s.latest for s in summaries if s.latest is not None]
    if not latest:
        return Assessment(INSUFFICIENT_DATA)
    weakest = min(latest, key=lambda s: s.value)
    band, risk = band_of(weakest.value)
    advice = []
    for s in summaries:
        if s.utilization_percent is not None and s.utilization_percent > UTILIZATION_LIMIT:
            advice.append(
                f"Utilization on revolving trades is {s.utilization_percent:g} % on the {s.bureau} report; "
                f"bringing it under {UTILIZATION_LIMIT:g} % usually lifts the score."
            )
        lates = s.late_30_days + s.late_60_days + s.late_90_days
        if lates:
            advice.append(
                f"The {s.bureau} report shows {lates} late payment(s) (30/60/90 days: {s.late_30_days}/"
                f"{s.late_60_days}/{s.late_90_days}); paying every account on time from now on matters most."
            )
        if s.inquiries > INQUIRY_LIMIT:
            advice.append(
                f"The {s.bureau} report lists {s.inquiries} inquiries; holding off new credit applications "
                "lets them age."
            )
        change = s.score_change
        if change is not None and change < -SCORE_DROP_LIMIT:
            advice.append(f"The {s.bureau} score fell {-change} points since the previous report.")
    return Assessment(SCORED, weakest.value, band, risk, advice)
