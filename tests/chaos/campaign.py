"""Campaign: faults one after another on a running cluster, under one
steady load, then the stores checked for what was acknowledged."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from tests.chaos.cluster import KEYS, Cluster
from tests.chaos.faults import Fault
from tests.chaos.load import Load
from tests.chaos.report import FaultReport, check_records, over_limits

WARM_UP_S = 5.0
BEFORE_S = 3.0  # load before each fault, in its window
DRAIN_S = 30.0  # how long acknowledged records may take to reach the stores


async def run_campaign(cluster: Cluster, faults: Sequence[Fault], log=print) -> list[FaultReport]:
    load = Load(cluster.rest_url)
    stop = asyncio.Event()
    running = asyncio.create_task(load.run(stop))
    windows: list[tuple[Fault, float, float, float, float]] = []
    try:
        await asyncio.sleep(WARM_UP_S)
        for fault in faults:
            opened = time.monotonic()
            await asyncio.sleep(BEFORE_S)
            log(f"fault: {fault.name} for {fault.duration_s:.0f} s")
            began = time.monotonic()
            await asyncio.to_thread(fault.start, cluster)
            await asyncio.sleep(max(0.0, began + fault.duration_s - time.monotonic()))
            healed = time.monotonic()
            await asyncio.to_thread(fault.heal, cluster)
            await asyncio.sleep(fault.settle_s)
            windows.append((fault, opened, began, healed, time.monotonic()))
    finally:
        stop.set()
        await running
    reports = [
        FaultReport(fault, began, healed, [o for o in load.outcomes if opened <= o.started < closed])
        for fault, opened, began, healed, closed in windows
    ]
    limits = {key_id: limits for key_id, limits in KEYS.values()}
    over_limits(reports, limits["metered"]["requests_per_minute"], limits["lookups"]["customers_per_hour"])
    await asyncio.to_thread(_count_losses, cluster, reports, load.feedback)
    return reports


def _count_losses(cluster: Cluster, reports: list[FaultReport], feedback: dict[str, bool]) -> None:
    """Wait until every acknowledged record is stored (outboxes drain) or
    DRAIN_S passes, then count what is missing, per fault."""
    assert cluster.postgres is not None
    deadline = time.monotonic() + DRAIN_S
    while True:
        outcomes, access, lost_feedback, duplicated = check_records(
            reports, feedback, cluster.postgres.url("optimizer"), cluster.audit_db()
        )
        if not (outcomes or access or lost_feedback) or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    for report in reports:
        ids = {o.completion_id for o in report.chats}
        report.outcomes_lost = len(outcomes & ids)
        report.access_lost = len(access & ids)
        report.feedback_lost = len(lost_feedback & {o.completion_id for o in report.outcomes})
        report.lost = [f"turn outcome of {c}" for c in sorted(outcomes & ids)]
        report.lost += [f"access record of {c}" for c in sorted(access & ids)]
        report.lost += [f"feedback on {c}" for c in sorted(lost_feedback & ids)]
    # Duplicates are counted over the whole run; the first report carries them.
    if reports:
        reports[0].duplicated = duplicated
