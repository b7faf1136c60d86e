"""Rolling quality, alert levels and trends, the cooldown, and webhook
delivery to a local HTTP server."""

from __future__ import annotations

import time

import pytest
from aiohttp import web

from services.optimizer.experiments import Experiments
from services.optimizer.monitoring import CRITICAL, FIT_MARGIN, FIT_MAX_S, FIT_MIN_S, HIGH, LOW, MEDIUM, QualityMonitor
from services.optimizer.prompts import PromptRegistry
from services.runtime.faults import InvalidArgument


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def storage(open_store):
    storage = open_store()
    PromptRegistry(storage)
    return storage


def record(storage, scores, category="credit", model="gpt-4o-mini", start=0):
    experiments = Experiments(storage, PromptRegistry(storage))
    for n, score in enumerate(scores, start=start):
        experiments.record(f"c-{category}-{model}-{n}", "customer", 1, model=model, category=category, score=score)


@pytest.fixture
async def webhook():
    received: list[dict] = []
    failures = {"left": 1}

    async def handler(request: web.Request) -> web.Response:
        if failures["left"]:
            failures["left"] -= 1
            return web.Response(status=500)
        received.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/alerts", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/alerts", received
    await runner.cleanup()


async def test_levels_raise_their_severities(storage):
    record(storage, [0.80] * 20, category="credit")
    record(storage, [0.88] * 20, category="transactions/billing")
    record(storage, [0.93] * 20, category="calls and tickets")
    record(storage, [0.99] * 20, category="customer profile")
    monitor = QualityMonitor(storage, clock=Clock())
    by_key = {a.key: a.severity for a in await monitor.check()}
    assert by_key["quality:category:credit"] == CRITICAL
    assert by_key["quality:category:transactions/billing"] == HIGH
    assert by_key["quality:category:calls and tickets"] == LOW
    assert "quality:category:customer profile" not in by_key
    quality = {(q.group, q.key): q for q in monitor.quality()}
    assert quality[("category", "customer profile")].level == "excellent"
    # The prompt's window is its last 50 turns: 10 at 0.88, 20 at 0.93, 20 at 0.99.
    prompt = quality[("prompt", "customer:v1")]
    assert prompt.turns == 50 and prompt.mean == pytest.approx(0.944) and prompt.level == "below target"


async def test_a_falling_trend_is_an_alert_before_the_level_is(storage):
    record(storage, [0.995 - 0.0025 * n for n in range(40)], category="credit", model="m1")
    monitor = QualityMonitor(storage, clock=Clock())
    alerts = {a.key: a for a in await monitor.check()}
    assert alerts["quality:category:credit"].severity == MEDIUM
    assert "falling" in alerts["quality:category:credit"].message


async def test_the_cooldown_stops_a_flood(storage):
    clock = Clock()
    record(storage, [0.80] * 20)
    monitor = QualityMonitor(storage, clock=clock, cooldown_s=900)
    first = await monitor.check()
    assert first and await monitor.check() == []  # same keys within 15 minutes
    clock.now += 901
    assert {a.key for a in await monitor.check()} == {a.key for a in first}
    assert len(monitor.alerts()) == 2 * len(first)


async def test_alerts_reach_the_webhook_with_retries(storage, webhook):
    url, received = webhook
    record(storage, [0.70] * 20, category="credit", model="only-model")
    monitor = QualityMonitor(storage, clock=Clock(), webhook_url=url)
    raised = await monitor.check()
    assert len(received) == len(raised) >= 1  # the first POST failed with 500 and was retried
    assert {r["key"] for r in received} == {a.key for a in raised}
    assert all(delivered for _, delivered in monitor.alerts())
    assert received[0]["severity"] == CRITICAL


async def test_an_unreachable_webhook_is_logged_not_fatal(storage):
    record(storage, [0.70] * 20)
    monitor = QualityMonitor(storage, clock=Clock(), webhook_url="http://127.0.0.1:9/alerts", webhook_attempts=2)
    raised = await monitor.check()
    assert raised and not any(delivered for _, delivered in monitor.alerts())


def test_history_traces_each_keys_rolling_quality_over_time(storage):
    record(storage, [0.9] * 10, category="credit")
    record(storage, [0.6] * 4, category="billing")
    record(storage, [0.5] * 10, category="credit", start=10)
    now = time.time()
    monitor = QualityMonitor(storage, window=10, clock=lambda: now + 1)
    history = monitor.history("category", since=now - 3600, points=60)
    assert sorted(history) == ["billing", "credit"]
    (credit,) = history["credit"]  # every turn fell in the last interval: one point, its last reading
    at, mean, turns = credit
    assert at == pytest.approx(now + 1) and mean == pytest.approx(0.5) and turns == 10  # the window's last 10
    assert history["billing"][0][1:] == (pytest.approx(0.6), 4)
    by_model = monitor.history("model", since=now - 3600)
    assert list(by_model) == ["gpt-4o-mini"]


def test_a_fitted_history_starts_just_before_the_first_scored_turn(storage):
    now = time.time()
    empty = QualityMonitor(storage, clock=lambda: now)
    assert empty.fitted_since() == pytest.approx(now - FIT_MIN_S * FIT_MARGIN)  # no data: the shortest range
    record(storage, [0.9] * 3)
    young = QualityMonitor(storage, clock=lambda: now + 10)
    assert young.fitted_since() == pytest.approx(now + 10 - FIT_MIN_S * FIT_MARGIN, abs=1)  # seconds old: a minute
    later = QualityMonitor(storage, clock=lambda: now + 7200)
    since = later.fitted_since()
    assert now - 7200 * (FIT_MARGIN - 1) - 1 <= since <= now  # two hours of data fill two hours and a margin
    assert later.history("category", since=since, points=10)["credit"]
    ancient = QualityMonitor(storage, clock=lambda: now + 400 * 86_400)
    assert ancient.fitted_since() == pytest.approx(now + 400 * 86_400 - FIT_MAX_S * FIT_MARGIN)


@pytest.mark.parametrize(
    "group, since_ago, points, field",
    [("nope", 60, 10, "group"), ("category", -60, 10, "since"), ("category", 60, 0, "points")],
)
def test_history_refuses_bad_requests_by_name(storage, group, since_ago, points, field):
    monitor = QualityMonitor(storage)
    with pytest.raises(InvalidArgument) as refused:
        monitor.history(group, since=time.time() - since_ago, points=points)
    assert refused.value.field == field
