"""tilores_data at scale: `python -m bench.tilores_data` (part of `make bench`).

Seeds an embedded store with sample customers (100,000 by default) and
reports the ingest rate, both through the bulk seeding path and through
SubmitRecords-style resolution (each record matched against the store).
Then starts the tilores_data service on it as its own process and measures
over gRPC, at concurrency 1: SearchEntities p50/p99 by each identifier,
GetCustomer360 p50/p99, and a BatchSearch of 10 against the same 10
searches made one after another. Figures only; writes
bench/results-tilores-data.md.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import uvloop
from tilores_x.v1 import tilores_data_pb2, tilores_data_pb2_grpc

from bench.chat_latency import machine, percentile
from services.tilores_data.sample import generate_customers
from services.tilores_data.seed import seed
from services.tilores_data.store import EmbeddedEntityStore

RESULTS = Path(__file__).with_name("results-tilores-data.md")


def submit_rate(tmp: Path, customers: int) -> tuple[int, float]:
    """Records per second through resolution (SubmitRecords' path)."""
    store = EmbeddedEntityStore(str(tmp / "submit.db"))
    records = [r for c in generate_customers(customers, seed=11) for r in c.records]
    started = time.perf_counter()
    for start in range(0, len(records), 500):
        store.submit_records(records[start : start + 500])
    elapsed = time.perf_counter() - started
    store.close()
    return len(records), elapsed


async def batch_versus_sequential(addr: str, sample: list, rounds: int) -> tuple[list[float], list[float]]:
    async with grpc.aio.insecure_channel(addr) as channel:
        stub = tilores_data_pb2_grpc.TiloresDataServiceStub(channel)
        sequential, batch = [], []
        for n in range(rounds + 2):
            ten = [
                tilores_data_pb2.SearchEntitiesRequest(parameters={"CLIENT_ID": c.records[0]["CLIENT_ID"]})
                for c in sample[n * 10 % len(sample) :][:10]
            ]
            started = time.perf_counter()
            for request in ten:
                await stub.SearchEntities(request)
            sequential.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            await stub.BatchSearch(tilores_data_pb2.BatchSearchRequest(searches=ten))
            batch.append((time.perf_counter() - started) * 1000)
    return sequential[2:], batch[2:]  # the first rounds warm tokens and schema


def start_service(tmp: Path, name: str, env: dict) -> tuple[subprocess.Popen, str]:
    port_file = tmp / f"{name}.port"
    # The store's speed, not the transport's: no TLS (MESH_PLAINTEXT).
    env = dict(
        os.environ,
        LISTEN_ADDR="127.0.0.1:0",
        PORT_FILE=str(port_file),
        LOG_LEVEL="WARNING",
        MESH_PLAINTEXT="true",
        **env,
    )
    process = subprocess.Popen([sys.executable, "-m", "services.tilores_data"], env=env)
    while not port_file.exists():
        if process.poll() is not None:
            raise SystemExit(f"tilores_data ({name}) did not start")
        time.sleep(0.05)
    return process, f"127.0.0.1:{port_file.read_text()}"


async def measure(addr: str, sample: list, rounds: int) -> dict[str, list[float]]:
    async with grpc.aio.insecure_channel(addr) as channel:
        stub = tilores_data_pb2_grpc.TiloresDataServiceStub(channel)
        search = tilores_data_pb2.SearchEntitiesRequest
        picks = {
            "search by email": lambda c: search(parameters={"EMAIL": c.records[0]["EMAIL"]}),
            "search by client id": lambda c: search(parameters={"CLIENT_ID": c.records[0]["CLIENT_ID"]}),
            "search by phone": lambda c: search(parameters={"PHONE_NUMBER": c.records[0]["PHONE_NUMBER"]}),
            "search by record id": lambda c: search(parameters={"id": c.records[0]["id"]}),
            "search by name": lambda c: search(
                parameters={"FIRST_NAME": c.records[0]["FIRST_NAME"], "LAST_NAME": c.records[0]["LAST_NAME"]}
            ),
        }
        timings: dict[str, list[float]] = {name: [] for name in picks}
        timings["GetCustomer360"] = []
        for customer in sample[:20]:  # warm up
            await stub.SearchEntities(picks["search by email"](customer))
        for n in range(rounds):
            customer = sample[n % len(sample)]
            for name, make in picks.items():
                started = time.perf_counter()
                await stub.SearchEntities(make(customer))
                timings[name].append((time.perf_counter() - started) * 1000)
            ref = tilores_data_pb2.CustomerRef(entity_id=customer.entity_id)
            started = time.perf_counter()
            await stub.GetCustomer360(tilores_data_pb2.GetCustomer360Request(customer=ref))
            timings["GetCustomer360"].append((time.perf_counter() - started) * 1000)
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--submit-customers", type=int, default=5_000, help="customers ingested by resolution")
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-tilores-") as tmp_name:
        tmp = Path(tmp_name)
        db = tmp / "tilores.db"
        started = time.perf_counter()
        records = seed(str(db), args.customers)
        seeded_s = time.perf_counter() - started
        print(f"seeded {args.customers} customers ({records} records) in {seeded_s:.1f} s", flush=True)
        submitted, submit_s = submit_rate(tmp, args.submit_customers)
        print(f"resolved {submitted} submitted records in {submit_s:.1f} s", flush=True)
        rng = random.Random(3)
        everyone = list(generate_customers(args.customers))
        sample = rng.sample(everyone, min(500, len(everyone)))
        del everyone
        service, addr = start_service(tmp, "embedded", {"TILORES_DB_PATH": str(db)})
        try:
            timings = uvloop.run(measure(addr, sample, args.rounds))
            local = uvloop.run(batch_versus_sequential(addr, sample, max(20, args.rounds // 10)))
        finally:
            service.terminate()
            service.wait()
    lines = ["| call | p50 | p99 |", "|---|---:|---:|"]
    for name, values in timings.items():
        lines.append(f"| {name} | {statistics.median(values):.2f} ms | {percentile(values, 0.99):.2f} ms |")
    for name, values in (
        ("10 searches one after another", local[0]),
        ("BatchSearch of the same 10", local[1]),
    ):
        lines.append(f"| {name} | {statistics.median(values):.2f} ms | {percentile(values, 0.99):.2f} ms |")
    speedup = statistics.median(local[0]) / statistics.median(local[1])
    table = "\n".join(lines)
    summary = (
        f"Ingest: {records} records of {args.customers} customers in {seeded_s:.1f} s "
        f"({records / seeded_s:,.0f} records/s, bulk seeding); {submitted} records resolved one by one "
        f"in {submit_s:.1f} s ({submitted / submit_s:,.0f} records/s, SubmitRecords' path).\n\n"
        f"BatchSearch of 10 versus the same 10 one after another: {speedup:.1f}x faster (medians)."
    )
    print("\n" + table + "\n\n" + summary)
    RESULTS.write_text(
        "# tilores_data benchmark\n\n"
        f"Written by `make bench` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {machine()}.\n"
        f"Embedded store of {args.customers} sample customers; gRPC client and service on one machine, "
        f"concurrency 1, {args.rounds} rounds.\n\n" + table + "\n\n" + summary + "\n"
    )
    print(f"\nwritten to {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
