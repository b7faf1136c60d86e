"""`python -m tests.chaos` (what `make chaos` runs, as root): the mesh on
simulated hosts, every fault of tests/chaos/faults.py under a steady load,
one table; exits 1 when a bound is broken. `--short`: the two faults
`make test` runs. The pods' logs (and PostgreSQL's) stay in the folder it
prints first."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from tests.chaos.campaign import run_campaign
from tests.chaos.cluster import Cluster
from tests.chaos.faults import FAULTS, SHORT
from tests.chaos.network import PodNetwork
from tests.chaos.report import failures, table
from tests.pods import checked_read_only_mounts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="two faults, shorter (as in make test)")
    parser.add_argument("--only", default="", help="run the faults whose names contain this text")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args(argv)
    faults = [f for f in (SHORT if args.short else FAULTS) if args.only in f.name]
    root = Path(tempfile.mkdtemp(prefix="chaos-"))
    cluster = Cluster(root, PodNetwork(), checked_read_only_mounts())
    started = time.monotonic()
    try:
        cluster.start()
        print(f"cluster up in {time.monotonic() - started:.0f} s ({root})", flush=True)
        reports = asyncio.run(run_campaign(cluster, faults, log=lambda line: print(line, flush=True)))
    finally:
        cluster.stop()
    print()
    print(table(reports, markdown=args.markdown))
    if failures(reports):
        print(f"\nfailed requests, most common first:\n{failures(reports)}")
    print(f"\n{len(faults)} faults in {time.monotonic() - started:.0f} s")
    broken = [line for report in reports for line in report.violations()]
    for line in broken:
        print(f"BOUND BROKEN: {line}", file=sys.stderr)
    return 1 if broken else 0


if __name__ == "__main__":
    raise SystemExit(main())
