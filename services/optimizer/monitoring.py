"""QualityMonitor: rolling answer quality per model, prompt version,
question category and agent mode, degradation by level and by trend, and alerts.

Levels (configurable): below 0.85 critical, 0.90 warning, 0.95 target,
0.98 excellent. A group's mean over its last `window` scored turns below
critical raises CRITICAL, below warning HIGH, below target LOW; a falling
trend (least-squares slope over the window, scipy's linregress, below
`slope_limit` per turn and significant at 5 %) raises MEDIUM. An alert key
(e.g. `quality:category:credit`) alerts at most once per cooldown (default
15 minutes); every alert is stored, logged, and POSTed to an optional
webhook with retries."""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import orjson
from scipy import stats
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from services.optimizer.storage import OptimizerStore, statements
from services.runtime.faults import InvalidArgument

log = logging.getLogger("optimizer.alerts")

CRITICAL, HIGH, MEDIUM, LOW, INFO = "CRITICAL", "HIGH", "MEDIUM", "LOW", "INFO"
# The agent mode with its category ("client/billing") is a group of its own.
GROUPS = statements.GROUPS
# A history fitted to its data spans from its first scored turn to now,
# with a margin so that turn is not on the chart's edge: at least ten
# seconds (a new mesh) and at most ninety days (what the store keeps in reach).
FIT_MIN_S = 10.0
FIT_MAX_S = 90 * 86_400.0
FIT_MARGIN = 1.05


@dataclass(frozen=True)
class Thresholds:
    critical: float = 0.85
    warning: float = 0.90
    target: float = 0.95
    excellent: float = 0.98

    def level(self, value: float) -> str:
        if value < self.critical:
            return "critical"
        if value < self.warning:
            return "warning"
        if value < self.target:
            return "below target"
        return "excellent" if value >= self.excellent else "on target"


@dataclass(frozen=True)
class GroupQuality:
    group: str  # model, prompt or category
    key: str  # e.g. "gpt-4o-mini", "customer:v2", "credit"
    turns: int
    mean: float
    slope: float
    level: str


@dataclass(frozen=True)
class Alert:
    key: str
    severity: str
    message: str
    value: float
    at: float


class QualityMonitor:
    def __init__(
        self,
        storage: OptimizerStore,
        thresholds: Thresholds | None = None,
        window: int = 50,
        min_turns: int = 10,
        slope_limit: float = -0.002,
        cooldown_s: float = 900.0,
        webhook_url: str = "",
        webhook_attempts: int = 3,
        clock: Callable[[], float] = time.time,
    ):
        self.storage = storage
        self.thresholds = thresholds or Thresholds()
        self.window = window
        self.min_turns = min_turns
        self.slope_limit = slope_limit
        self.cooldown_s = cooldown_s
        self.webhook_url = webhook_url
        self.webhook_attempts = webhook_attempts
        self._clock = clock
        # What the last check saw, for Prometheus to read between checks.
        self.latest: list[GroupQuality] = []
        self.raised: dict[str, int] = {}

    def quality(self) -> list[GroupQuality]:
        """Rolling quality of every group with enough scored turns."""
        out = []
        for group in GROUPS:
            keys = [k for (k,) in self.storage.query(statements.GROUP_KEYS[group])]
            for key in keys:
                if not key:
                    continue
                rows = self.storage.query(statements.GROUP_SCORES[group], key=key, limit=self.window)
                scores = [s for (s,) in reversed(rows)]
                if len(scores) < self.min_turns:
                    continue
                mean = sum(scores) / len(scores)
                slope = _slope(scores)
                out.append(GroupQuality(group, key, len(scores), mean, slope, self.thresholds.level(mean)))
        return out

    def fitted_since(self) -> float:
        """Where a history starts that the data fills: just before the first
        scored turn, at least FIT_MIN_S and at most FIT_MAX_S back."""
        now = self._clock()
        [(first,)] = self.storage.query(statements.FIRST_SCORED)
        span = min(max(now - (first if first is not None else now), FIT_MIN_S), FIT_MAX_S)
        return now - span * FIT_MARGIN

    def history(self, group: str, since: float, points: int = 120) -> dict[str, list[tuple[float, float, int]]]:
        """Per key of `group`, its rolling quality (the mean of its last
        `window` scored turns) at the end of each of `points` equal
        intervals from `since` to now where the key had a scored turn:
        (at, mean, turns), oldest first."""
        if group not in GROUPS:
            raise InvalidArgument(f"group must be one of {', '.join(GROUPS)}", field="group")
        if not 1 <= points <= 500:
            raise InvalidArgument("points must be between 1 and 500", field="points")
        now = self._clock()
        if since >= now:
            raise InvalidArgument("since must be in the past", field="since")
        step = (now - since) / points
        rows = self.storage.query(statements.GROUP_SCORES_SINCE[group], since=since)
        windows: dict[str, collections.deque[float]] = {}
        series: dict[str, list[tuple[float, float, int]]] = {}
        for key, at, score in rows:
            if not key:
                continue
            window = windows.setdefault(key, collections.deque(maxlen=self.window))
            window.append(score)
            end = since + step * min(points, int((at - since) // step) + 1)
            point = (end, sum(window) / len(window), len(window))
            keyed = series.setdefault(key, [])
            if keyed and keyed[-1][0] == end:
                keyed[-1] = point  # the interval's last turn speaks for it
            else:
                keyed.append(point)
        return dict(sorted(series.items()))

    async def check(self) -> list[Alert]:
        """Raise the alerts the current quality calls for (cooldown applied)."""
        raised = []
        self.latest = self.quality()
        for q in self.latest:
            key = f"quality:{q.group}:{q.key}"
            severity, message = None, ""
            if q.mean < self.thresholds.critical:
                severity, message = CRITICAL, f"{q.group} {q.key}: quality {q.mean:.3f} is below critical"
            elif q.mean < self.thresholds.warning:
                severity, message = HIGH, f"{q.group} {q.key}: quality {q.mean:.3f} is below warning"
            elif q.slope < self.slope_limit:
                severity, message = MEDIUM, f"{q.group} {q.key}: quality is falling ({q.slope:+.4f} per turn)"
            elif q.mean < self.thresholds.target:
                severity, message = LOW, f"{q.group} {q.key}: quality {q.mean:.3f} is below target"
            if severity is None:
                continue
            alert = await self.raise_alert(key, severity, f"{message} over the last {q.turns} turns", q.mean)
            if alert is not None:
                raised.append(alert)
        return raised

    async def raise_alert(self, key: str, severity: str, message: str, value: float) -> Alert | None:
        now = self._clock()
        with self.storage.transaction() as db:
            recent = db.execute(statements.ALERT_SINCE, key=key, since=now - self.cooldown_s).fetchone()
            if recent:
                return None  # within the cooldown: no flood
            db.execute(statements.RAISE_ALERT, key=key, severity=severity, message=message, value=value, at=now)
        alert = Alert(key, severity, message, value, now)
        self.raised[severity] = self.raised.get(severity, 0) + 1
        log.warning("alert", extra={"fields": {"key": key, "severity": severity, "message": message}})
        if self.webhook_url:
            delivered = await self._deliver(alert)
            with self.storage.transaction() as db:
                db.execute(statements.ALERT_DELIVERED, delivered=int(delivered), key=key, at=now)
        return alert

    async def _deliver(self, alert: Alert) -> bool:
        body = orjson.dumps(alert.__dict__)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.webhook_attempts),
            wait=wait_exponential(multiplier=0.1, max=2.0),
            retry=retry_if_exception_type((aiohttp.ClientError, TimeoutError)),
            reraise=True,
        )
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
                async for attempt in retrying:
                    with attempt:
                        async with session.post(
                            self.webhook_url, data=body, headers={"Content-Type": "application/json"}
                        ) as reply:
                            reply.raise_for_status()
        except (aiohttp.ClientError, TimeoutError) as error:
            log.warning("alert.webhook_failed", extra={"fields": {"key": alert.key, "error": type(error).__name__}})
            return False
        return True

    def alerts(self, limit: int = 100) -> list[tuple[Alert, bool]]:
        rows = self.storage.query(statements.ALERTS, limit=limit)
        return [(Alert(k, s, m, v, a), bool(d)) for k, s, m, v, a, d in rows]

    def judge_agreement(self, limit: int = 1000) -> tuple[int, float | None, float]:
        """Over the latest turns both the judge and the scorer graded: how
        many, the share on the same side of the target level, and the mean
        absolute difference of their scores."""
        rows = self.storage.query(statements.JUDGE_AND_SCORER, limit=limit)
        if not rows:
            return 0, None, 0.0
        target = self.thresholds.target
        same = sum((s >= target) == (j >= target) for s, j in rows)
        return len(rows), round(same / len(rows), 4), round(sum(abs(s - j) for s, j in rows) / len(rows), 4)


def _slope(scores: list[float]) -> float:
    """Least-squares slope per turn; 0 unless the fall is significant."""
    if len(scores) < 3 or max(scores) == min(scores):
        return 0.0
    fit = stats.linregress(range(len(scores)), scores)
    return float(fit.slope) if fit.pvalue < 0.05 else 0.0
