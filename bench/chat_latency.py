"""What the mesh adds to a streamed chat answer: `make bench`.

An OpenAI-API emulator (its own process) answers every request with a fixed
time to first token and a fixed delay between tokens. The whole mesh runs
behind Envoy with the `openai` provider pointed at it. One raw SSE client
(aiohttp) then streams the same question

  direct   straight to the emulator, and
  mesh     through Envoy -> gateway -> router -> llm_gateway -> emulator

at each concurrency, and prints p50/p99 of time to first token (TTFT) and of
total time, the latency the mesh adds (mesh minus direct), throughput and
errors; then the cache paths (a customer lookup served warm versus a cold
lookup through tilores_data), the same request entering the mesh at each hop
(llm_gateway, router, gateway, Envoy) to show where the time goes, and the
resident memory of every process. In the same run, right after the mesh
at each concurrency, the floor chain (bench/floor_chain.py: the same chain
with nothing in it) relays the general question from the same emulator,
and the report puts its CPU per answer beside the mesh's, per hop and in all.
The table is also written to bench/results.md with the machine it ran on.
Figures only: nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import grpc
import orjson
import uvloop
from tilores_x.v1 import common_pb2, llm_gateway_pb2, llm_gateway_pb2_grpc, router_pb2, router_pb2_grpc

from bench.floor_chain import FloorChain
from deploy.local_mesh import UNMETERED_KEY_LIMITS, LocalMesh
from deploy.topology import Topology, load_topology
from services.tilores_data.sample import generate_customers
from tests.emulators.openai_api import OpenAIEmulator

API_KEY = "sk-bench"
CUSTOMERS = 2000
RESULTS = Path(__file__).with_name("results.md")
QUESTION = "What is the status and credit score of edwina.hawthorne@example.com?"
GENERAL = "What can you help me with today?"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# CPU per answer at the top concurrency of a baseline revision, measured
# with this benchmark on the same machine and day as the figures beside it
# (the machine is shared: figures move by a fifth from day to day). Made by
# running this file from a checkout of the baseline with `--record-before`:
#   git worktree add /tmp/base fa6350b && cp -r bench /tmp/base/ && cd /tmp/base
#   python -m bench.chat_latency --record-before <repo>/bench/cpu_before.json
BEFORE_FILE = Path(__file__).with_name("cpu_before.json")
CPU_COLUMNS = ("llm_gateway", "router", "gateway", "envoy", "optimizer")


def percentile(values: list[float], q: float) -> float:
    """The value at quantile `q` of the sorted values (NaN for none)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Row:
    path: str
    concurrency: int
    requests: int
    errors: int
    ttft: list[float]
    total: list[float]
    seconds: float
    cpu_ms: dict[str, float] | None = None  # CPU per answer, by process

    def p(self, values: list[float], q: float) -> float:
        return percentile(values, q)

    @property
    def ttft_p50(self) -> float:
        return statistics.median(self.ttft) if self.ttft else float("nan")

    @property
    def total_p50(self) -> float:
        return statistics.median(self.total) if self.total else float("nan")


async def sse_request(session: aiohttp.ClientSession, url: str, key: str, body: bytes) -> tuple[float, float]:
    started = time.perf_counter()
    first = 0.0
    async with session.post(
        url, data=body, headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    ) as reply:
        if reply.status != 200:
            raise RuntimeError(f"HTTP {reply.status}")
        done = False
        async for line in reply.content:
            if not first and line.startswith(b'data: {"') and b'"content":"' in line and b'"content":""' not in line:
                first = time.perf_counter() - started
            if line.startswith(b"data: [DONE]"):
                done = True
                break
            if line.startswith(b'data: {"error"'):
                raise RuntimeError("error event")
        if not done:
            raise RuntimeError("stream ended without [DONE]")
    return first, time.perf_counter() - started


async def grpc_request(call) -> tuple[float, float]:
    """TTFT and total of a Generate or Chat stream called directly."""
    started = time.perf_counter()
    first = 0.0
    async for event in call:
        if not first and event.WhichOneof("event") == "delta":
            first = time.perf_counter() - started
        if event.WhichOneof("event") == "error":
            raise RuntimeError("error event")
    return first, time.perf_counter() - started


async def run_level(name: str, make_request, concurrency: int, total: int) -> Row:
    ttft: list[float] = []
    whole: list[float] = []
    errors = 0
    counter = iter(range(total))

    async def worker():
        nonlocal errors
        for n in counter:
            try:
                first, end = await make_request(n)
            except Exception:  # counted, not raised: the table reports errors
                errors += 1
                continue
            ttft.append(first * 1000)
            whole.append(end * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Row(name, concurrency, total, errors, ttft, whole, time.perf_counter() - started)


def body(question: str) -> bytes:
    # Usage on, as llm_gateway always asks it of the upstream: the direct
    # path then waits for the same events (the usage chunk comes last).
    return orjson.dumps(
        {
            "model": "gpt-4o-mini",
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": question}],
        }
    )


def cpu_seconds(pid: int) -> float:
    """User and system CPU a process has used, all its threads."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class CpuMeter:
    """CPU each mesh process spends per answer over a run."""

    def __init__(self, pids: dict[str, int]):
        self.pids = pids

    def snapshot(self) -> dict[str, float]:
        return {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    async def run(self, run) -> Row:
        before = self.snapshot()
        row = await run
        after = self.snapshot()
        answers = max(1, len(row.total))
        row.cpu_ms = {name: (after[name] - before[name]) * 1000 / answers for name in self.pids}
        return row


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


async def measure(
    mesh: LocalMesh, upstream: str, levels: list[int], per_level: dict[int, int], floor: FloorChain
) -> tuple[list, list, list, list]:
    client_ids = [c.records[0]["CLIENT_ID"] for c in generate_customers(CUSTOMERS)][1:]
    cold = iter(client_ids)
    # The gateway's own port is HTTPS with the mesh CA; the other URLs are plain HTTP.
    connector = aiohttp.TCPConnector(limit=0, ssl=mesh.ssl_context())
    async with aiohttp.ClientSession(connector=connector) as session:
        paths = {
            "direct": lambda n: sse_request(
                session, f"{upstream}/chat/completions", OpenAIEmulator.api_key, body(QUESTION)
            ),
            "mesh": lambda n: sse_request(session, f"{mesh.rest_url}/v1/chat/completions", API_KEY, body(GENERAL)),
            "mesh, customer (warm)": lambda n: sse_request(
                session, f"{mesh.rest_url}/v1/chat/completions", API_KEY, body(QUESTION)
            ),
        }
        # The floor: the same chain with nothing in it, the same upstream (bench/floor_chain.py).
        floor_path = lambda n: sse_request(session, f"{floor.rest_url}/v1/chat/completions", API_KEY, body(GENERAL))  # noqa: E731
        for path in [*paths.values(), floor_path]:  # warm connections, channels and caches
            for n in range(10):
                await path(n)
        meter = CpuMeter({name: p.pid for name, p in mesh.processes.items() if name != "redis"})
        floor_meter = CpuMeter({FLOOR_HOPS[name]: p.pid for name, p in floor.processes.items()})
        rows, cpu_rows, floor_rows = [], [], []
        for concurrency in levels:
            for name, path in paths.items():
                row = await meter.run(run_level(name, path, concurrency, per_level[concurrency]))
                rows.append(row)
                if name != "direct":
                    cpu_rows.append(row)
                print(format_row(row), flush=True)
            row = await floor_meter.run(run_level("floor", floor_path, concurrency, per_level[concurrency]))
            rows.append(row)
            floor_rows.append(row)
            print(format_row(row), flush=True)
        cache_rows = [
            await run_level("mesh, lookup warm", paths["mesh, customer (warm)"], 1, 100),
            await run_level(
                "mesh, lookup cold",
                lambda n: sse_request(
                    session,
                    f"{mesh.rest_url}/v1/chat/completions",
                    API_KEY,
                    body(f"status of client id {next(cold)}"),
                ),
                1,
                100,
            ),
        ]
        # Where the time goes: the same request entering the mesh at each hop.
        question = [common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content=QUESTION)]
        async with (
            grpc.aio.secure_channel(mesh.service_addr("llm_gateway"), mesh.client_credentials()) as llm_channel,
            grpc.aio.secure_channel(mesh.service_addr("router"), mesh.client_credentials()) as router_channel,
        ):
            llm = llm_gateway_pb2_grpc.LlmGatewayServiceStub(llm_channel)
            router = router_pb2_grpc.RouterServiceStub(router_channel)
            generate = llm_gateway_pb2.GenerateRequest(model="gpt-4o-mini", messages=question)
            chat = router_pb2.ChatRequest(model="gpt-4o-mini", messages=question)
            gateway = f"{mesh.gateway_url}/v1/chat/completions"
            hops = {
                "llm_gateway (gRPC)": lambda n: grpc_request(llm.Generate(generate, timeout=30)),
                "router (gRPC)": lambda n: grpc_request(router.Chat(chat, timeout=30)),
                "gateway (REST, no Envoy)": lambda n: sse_request(session, gateway, API_KEY, body(QUESTION)),
                "Envoy (whole mesh)": paths["mesh, customer (warm)"],
            }
            for path in hops.values():
                for n in range(10):
                    await path(n)
            for name, path in hops.items():
                row = await run_level(name, path, 1, 100)
                cache_rows.append(row)
                print(format_row(row), flush=True)
    return rows, cache_rows, cpu_rows, floor_rows


HEADER = (
    "| path | conc | requests | errors | TTFT p50 | TTFT p99 | total p50 | total p99 | req/s |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def format_row(row: Row) -> str:
    return (
        f"| {row.path} | {row.concurrency} | {row.requests} | {row.errors} | {row.ttft_p50:.2f} ms | "
        f"{row.p(row.ttft, 0.99):.2f} ms | {row.total_p50:.2f} ms | {row.p(row.total, 0.99):.2f} ms | "
        f"{len(row.total) / row.seconds:.0f} |"
    )


def cpu_table(rows: list[Row]) -> str:
    """CPU per streamed answer, by process and in all."""
    names = list(rows[0].cpu_ms)
    lines = [
        "| path | conc | " + " | ".join(names) + " | whole mesh |",
        "|---|---:|" + "---:|" * (len(names) + 1),
    ]
    for row in rows:
        cells = " | ".join(f"{row.cpu_ms[n]:.2f}" for n in names)
        lines.append(f"| {row.path} | {row.concurrency} | {cells} | {sum(row.cpu_ms.values()):.2f} |")
    return "\n".join(lines)


def top_cpu(rows: list[Row]) -> dict[str, dict[str, float]]:
    """CPU per answer by path at the highest concurrency, in CPU_COLUMNS and `others`."""
    top = max(r.concurrency for r in rows)
    out = {}
    for row in (r for r in rows if r.concurrency == top):
        figures = {n: row.cpu_ms.get(n, 0.0) for n in CPU_COLUMNS}
        figures["others"] = sum(v for n, v in row.cpu_ms.items() if n not in CPU_COLUMNS)
        out[row.path] = figures
    return out


def record_before(rows: list[Row], path: Path, setup: str) -> None:
    """This checkout's figures as the baseline later runs are compared with."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    path.write_text(
        json.dumps(
            {
                "commit": commit.stdout.strip() or "unknown",
                "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "concurrency": max(r.concurrency for r in rows),
                "setup": setup,
                "cpu_ms": {path: {n: round(v, 3) for n, v in f.items()} for path, f in top_cpu(rows).items()},
            },
            indent=2,
        )
        + "\n"
    )


def before_after(rows: list[Row]) -> tuple[str, str]:
    """The baseline's CPU per answer beside this run's, and what the baseline was."""
    if not BEFORE_FILE.exists():
        return "", ""
    baseline = json.loads(BEFORE_FILE.read_text())
    top = max(r.concurrency for r in rows)
    if baseline["concurrency"] != top:
        return "", ""
    lines = [
        "| path (concurrency " + str(top) + ") | | " + " | ".join(CPU_COLUMNS) + " | others | whole mesh |",
        "|---|---|" + "---:|" * (len(CPU_COLUMNS) + 2),
    ]
    now = top_cpu(rows)
    for path, before in baseline["cpu_ms"].items():
        if path not in now or path == "direct":
            continue
        for label, figures in (("before", before), ("now", now[path])):
            cells = " | ".join(f"{figures[n]:.2f}" for n in (*CPU_COLUMNS, "others"))
            lines.append(f"| {path} | {label} | {cells} | {sum(figures.values()):.2f} |")
    said = f"commit {baseline['commit']}, measured {baseline['measured']} with this benchmark"
    return "\n".join(lines), said


# Each hop of the floor chain by the mesh process it stands in for.
FLOOR_HOPS = {"envoy": "envoy", "edge": "gateway", "router": "router", "model": "llm_gateway"}


def floor_table(cpu_rows: list[Row], floor_rows: list[Row]) -> str:
    """CPU per answer of the floor chain and of the mesh, per hop and in
    all, with the ratio mesh / floor; the mesh's other processes (the
    optimizer, the cache, tilores_data, the audit log) count in its total."""
    hops = list(FLOOR_HOPS.values())
    lines = [
        "| mesh path | conc | "
        + " | ".join(f"{h} (floor → mesh, ×)" for h in hops)
        + " | whole chain (floor → mesh, ×) |",
        "|---|---:|" + "---:|" * (len(hops) + 1),
    ]
    floor_by = {row.concurrency: row for row in floor_rows}
    for row in cpu_rows:
        floor = floor_by.get(row.concurrency)
        if floor is None or row.cpu_ms is None or floor.cpu_ms is None:
            continue
        cells = [
            f"{floor.cpu_ms[h]:.2f} → {row.cpu_ms[h]:.2f} ({_ratio(row.cpu_ms[h], floor.cpu_ms[h])})" for h in hops
        ]
        mesh_total, floor_total = sum(row.cpu_ms.values()), sum(floor.cpu_ms.values())
        cells.append(f"{floor_total:.2f} → {mesh_total:.2f} ({_ratio(mesh_total, floor_total)})")
        lines.append(f"| {row.path} | {row.concurrency} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _ratio(mesh: float, floor: float) -> str:
    return f"{mesh / floor:.2f}×" if floor > 0 else "—"


def added_table(rows: list[Row]) -> str:
    """What the mesh and the floor chain each add to a direct call (the general question)."""
    lines = [
        "| chain | conc | added TTFT p50 | added TTFT p99 | added total p50 | throughput / direct |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    by_key = {(r.path, r.concurrency): r for r in rows}
    for concurrency in sorted({r.concurrency for r in rows}):
        direct = by_key[("direct", concurrency)]
        for chain in ("mesh", "floor"):
            row = by_key.get((chain, concurrency))
            if row is None:
                continue
            lines.append(
                f"| {chain} | {concurrency} | {row.ttft_p50 - direct.ttft_p50:+.2f} ms | "
                f"{row.p(row.ttft, 0.99) - direct.p(direct.ttft, 0.99):+.2f} ms | "
                f"{row.total_p50 - direct.total_p50:+.2f} ms | "
                f"{(len(row.total) / row.seconds) / (len(direct.total) / direct.seconds):.2f} |"
            )
    return "\n".join(lines)


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    return (
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


@contextmanager
def emulated_mesh(
    tokens: int, token_ms: float, ttft_ms: float, topology: Topology | None = None
) -> Iterator[tuple[LocalMesh, str]]:
    """An OpenAI-API emulator in its own process (each answer `tokens`
    words, the first after `ttft_ms`, then `token_ms` apart) and the whole
    mesh on free ports with its `openai` provider pointed at it; the mesh
    and the emulator's base URL."""
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        url_file = Path(tmp) / "emulator-url"
        emulator = subprocess.Popen(
            [sys.executable, "-m", "tests.emulators.openai_api", "--url-file", str(url_file), "--words", str(tokens),
             "--first-token-ms", str(ttft_ms), "--chunk-delay-ms", str(token_ms)]
        )  # fmt: skip
        try:
            while not url_file.exists():
                time.sleep(0.02)
            upstream = url_file.read_text()
            mesh = LocalMesh(
                topology or load_topology("deploy/topology.yaml"),
                tmp,
                free_ports=True,
                api_key=API_KEY,
                key_limits=UNMETERED_KEY_LIMITS,
                env={"SAMPLE_CUSTOMERS": str(CUSTOMERS), "OPENAI_API_KEY": OpenAIEmulator.api_key,
                     "OPENAI_BASE_URL": upstream},
            )  # fmt: skip
            with mesh:
                yield mesh, upstream
        finally:
            emulator.terminate()
            emulator.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", default="1,10,100", help="comma-separated levels (default 1,10,100)")
    parser.add_argument("--requests", type=int, default=0, help="requests per row (default: 100, or 8 per client)")
    parser.add_argument("--ttft-ms", type=float, default=50.0, help="emulator time to first token (default 50)")
    parser.add_argument("--token-ms", type=float, default=5.0, help="emulator delay between tokens (default 5)")
    parser.add_argument("--tokens", type=int, default=20, help="tokens per answer (default 20)")
    parser.add_argument(
        "--record-before", type=Path, default=None, help="write this checkout's CPU per answer as the baseline here"
    )
    args = parser.parse_args(argv)
    levels = [int(level) for level in args.concurrency.split(",")]
    per_level = {c: args.requests or max(100, 8 * c) for c in levels}
    with emulated_mesh(args.tokens, args.token_ms, args.ttft_ms) as (mesh, upstream):
        setup = (
            f"upstream: OpenAI-API emulator, TTFT {args.ttft_ms:g} ms, {args.tokens} tokens "
            f"{args.token_ms:g} ms apart; streaming; {machine()}"
        )
        print(setup + "\n\n" + HEADER, flush=True)
        floor = FloorChain.beside(mesh, upstream, OpenAIEmulator.api_key)
        floor.start()
        try:
            rows, cache_rows, cpu_rows, floor_rows = uvloop.run(measure(mesh, upstream, levels, per_level, floor))
        finally:
            floor.stop()
        memory = {name: rss_mb(p.pid) for name, p in mesh.processes.items()}
    added = added_table(rows)
    cpu = cpu_table(cpu_rows)
    floor_cpu = floor_table(cpu_rows, floor_rows)
    if args.record_before is not None:
        record_before(cpu_rows, args.record_before, setup)
        print(f"\nCPU per streamed answer, milliseconds:\n{cpu}\n\nbaseline written to {args.record_before}")
        return 0
    compared, baseline = before_after(cpu_rows)
    print("\nCPU per streamed answer, milliseconds (mesh processes; Envoy included):\n" + cpu)
    if compared:
        print(f"\nthe baseline ({baseline}) and now:\n" + compared)
    print("\nCPU per streamed answer against the floor chain (milliseconds, floor → mesh, ratio):\n" + floor_cpu)
    memory_lines = "\n".join(f"| {name} | {mb:.0f} MB |" for name, mb in memory.items())
    print("\nadded by the mesh and by the floor chain (minus direct):\n" + added)
    print("\nresident memory after the run:\n| process | RSS |\n|---|---:|\n" + memory_lines)
    RESULTS.write_text(
        "# Benchmark results\n\n"
        f"Written by `make bench` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.\n\n"
        f"Setup: {setup}.\n\n"
        "## Direct versus the whole mesh\n\n" + HEADER + "\n" + "\n".join(format_row(r) for r in rows) + "\n\n"
        "## Added by the mesh and by the floor chain (the general question)\n\n" + added + "\n\n"
        "## CPU per streamed answer (milliseconds, every feature of the default configuration on)\n\n"
        + cpu
        + (f"\n\nThe baseline ({baseline}) and now:\n\n{compared}" if compared else "")
        + "\n\n"
        "## Against the floor (the same chain with nothing in it: bench/floor_chain.py)\n\n"
        "CPU per streamed answer in milliseconds, floor → mesh, and the ratio mesh / floor; the floor relays the "
        "general question, measured right after the mesh at the same concurrency against the same upstream.\n\n"
        + floor_cpu
        + "\n\n"
        "## Cache paths and where the time goes (concurrency 1)\n\n"
        + HEADER
        + "\n"
        + "\n".join(format_row(r) for r in cache_rows)
        + "\n\n"
        "## Resident memory after the run\n\n| process | RSS |\n|---|---:|\n" + memory_lines + "\n"
    )
    print(f"\nwritten to {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
