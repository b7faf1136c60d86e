"""The shorter chaos run `make test` holds the mesh to: on simulated hosts
(tests/chaos), a host vanishes and then two hosts are split from each other,
each for 10 s under a steady load of streamed and whole chats; no request
may hang or be answered wrongly, requests may fail or stall only within the
faults' bounds, and nothing acknowledged may be lost or recorded twice.
`make chaos` runs every fault (needs root, as this does)."""

from __future__ import annotations

import asyncio

import pytest

from tests.chaos.campaign import run_campaign
from tests.chaos.cluster import Cluster
from tests.chaos.faults import SHORT
from tests.chaos.network import PodNetwork
from tests.chaos.report import failures, table
from tests.pods import checked_read_only_mounts

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(600)
def test_a_host_vanishing_and_a_partition_lose_nothing_within_their_bounds(tmp_path):
    cluster = Cluster(tmp_path, PodNetwork(), checked_read_only_mounts())
    try:
        cluster.start()
        reports = asyncio.run(run_campaign(cluster, SHORT, log=lambda line: None))
    finally:
        codes = cluster.stop()
    print(table(reports))
    assert [r.fault.name for r in reports] == [f.name for f in SHORT]
    # The load ran through each fault: a run that asked nothing would prove nothing.
    assert all(len(r.chats) > 100 for r in reports), [len(r.chats) for r in reports]
    assert all(any(o.customer and o.result == "ok" for o in r.chats) for r in reports)
    broken = [line for report in reports for line in report.violations()]
    assert broken == [], f"{broken}\n{table(reports)}\n{failures(reports)}"
    assert codes == dict.fromkeys(codes, 0), codes
