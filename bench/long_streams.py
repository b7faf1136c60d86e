"""Long answers by the hundred: `python -m bench.long_streams` (part of
`make bench`).

An OpenAI-API emulator (its own process) streams every answer as 200
tokens 25 ms apart, the pace of a model writing a long answer. The whole
mesh runs behind Envoy with its `openai` provider pointed at it. At each
level (300 and 1,000 streams open at once) the same answers are read

  direct   straight from the emulator,
  mesh     through Envoy -> gateway -> router -> llm_gateway -> emulator, and
  floor    through the same chain with nothing in it (bench/floor_chain.py)

by one raw SSE client, and the table gives errors, answers whose text was
not exactly the emulator's, time to first token and the gap between
deltas as a reader sees them (p50/p99), what the mesh and the floor add
to each p99, and each process's peak resident memory while the streams
were open (the floor's by the mesh process each of its hops stands in
for).
Figures only: nothing here passes or fails. The table goes into
bench/results.md under "Long streams".
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import time
from dataclasses import dataclass, field

import aiohttp
import orjson
import uvloop

from bench.chat_latency import API_KEY, FLOOR_HOPS, RESULTS, emulated_mesh, machine, percentile, rss_mb
from bench.floor_chain import FloorChain
from deploy.local_mesh import LocalMesh
from deploy.topology import load_topology
from tests.emulators.openai_api import OpenAIEmulator

SECTION = "## Long streams"
QUESTION = "Write me a long summary of what you can do."


@dataclass
class Level:
    path: str
    streams: int
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    inexact: int = 0
    ttft_ms: list[float] = field(default_factory=list)
    gaps_ms: list[float] = field(default_factory=list)
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


async def one_stream(session: aiohttp.ClientSession, url: str, key: str, expected: str, level: Level) -> None:
    body = orjson.dumps({"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": QUESTION}]})
    started = time.perf_counter()
    last = 0.0
    text: list[str] = []
    try:
        async with session.post(
            url, data=body, headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        ) as reply:
            if reply.status != 200:
                message = orjson.loads(await reply.read()).get("error", {}).get("message", "")
                raise RuntimeError(f"HTTP {reply.status}: {message[:80]}")
            done = False
            async for line in reply.content:
                at = time.perf_counter()
                if line.startswith(b"data: [DONE]"):
                    done = True
                    break
                if line.startswith(b'data: {"error"'):
                    raise RuntimeError("error event")
                marker = line.find(b'"content":"')
                if marker < 0:
                    continue
                start = marker + 11
                piece = line[start : line.index(b'"', start)].decode()
                if not piece:
                    continue
                text.append(piece)
                if last:
                    level.gaps_ms.append((at - last) * 1000)
                else:
                    level.ttft_ms.append((at - started) * 1000)
                last = at
            if not done:
                raise RuntimeError("stream ended without [DONE]")
    except Exception as error:  # counted, not raised: the table reports errors
        level.errors += 1
        kind = str(error) if isinstance(error, RuntimeError) else type(error).__name__
        level.error_kinds[kind] = level.error_kinds.get(kind, 0) + 1
        return
    if "".join(text) != expected:
        level.inexact += 1


async def run_level(
    name: str, url: str, key: str, streams: int, expected: str, pids: dict[str, int], ssl_context
) -> Level:
    level = Level(name, streams)
    connector = aiohttp.TCPConnector(limit=0, ssl=ssl_context)
    peaks = {process: 0.0 for process in pids}
    running = True

    async def watch_memory() -> None:
        while running:
            for process, pid in pids.items():
                peaks[process] = max(peaks[process], rss_mb(pid))
            await asyncio.sleep(0.5)

    watcher = asyncio.ensure_future(watch_memory())
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        await asyncio.gather(*(one_stream(session, url, key, expected, level) for _ in range(streams)))
        level.seconds = time.perf_counter() - started
    running = False
    await watcher
    level.peak_rss_mb = peaks
    return level


def table(levels: list[Level]) -> str:
    lines = [
        "| path | streams | errors | inexact | TTFT p50 | TTFT p99 | gap p50 | gap p99 | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for level in levels:
        lines.append(
            f"| {level.path} | {level.streams} | {level.errors} | {level.inexact} | "
            f"{statistics.median(level.ttft_ms) if level.ttft_ms else float('nan'):.1f} ms | "
            f"{percentile(level.ttft_ms, 0.99):.1f} ms | "
            f"{statistics.median(level.gaps_ms) if level.gaps_ms else float('nan'):.1f} ms | "
            f"{percentile(level.gaps_ms, 0.99):.1f} ms | {level.seconds:.1f} |"
        )
    return "\n".join(lines)


def added(levels: list[Level]) -> str:
    lines = ["| chain | streams | added TTFT p99 | added gap p99 |", "|---|---:|---:|---:|"]
    by = {(level.path, level.streams): level for level in levels}
    for streams in sorted({level.streams for level in levels}):
        direct = by[("direct", streams)]
        for chain in ("mesh", "floor"):
            level = by.get((chain, streams))
            if level is None:
                continue
            ttft = percentile(level.ttft_ms, 0.99) - percentile(direct.ttft_ms, 0.99)
            gap = percentile(level.gaps_ms, 0.99) - percentile(direct.gaps_ms, 0.99)
            lines.append(f"| {chain} | {streams} | {ttft:+.1f} ms | {gap:+.1f} ms |")
    return "\n".join(lines)


def memory(levels: list[Level]) -> str:
    chains = [level for level in levels if level.path != "direct"]
    names = list(next((level.peak_rss_mb for level in chains if level.path == "mesh"), {}))
    lines = ["| chain | streams | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names)]
    for level in chains:
        cells = [f"{level.peak_rss_mb[n]:.0f} MB" if n in level.peak_rss_mb else "—" for n in names]
        lines.append(f"| {level.path} | {level.streams} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


async def measure(
    mesh: LocalMesh, upstream: str, levels: list[int], expected: str, floor: FloorChain | None = None
) -> list[Level]:
    pids = {name: p.pid for name, p in mesh.processes.items() if name != "redis"}
    floor_pids = {FLOOR_HOPS[name]: p.pid for name, p in floor.processes.items()} if floor else {}
    out = []
    for streams in levels:
        chains = [
            ("direct", f"{upstream}/chat/completions", OpenAIEmulator.api_key, {}),
            ("mesh", f"{mesh.rest_url}/v1/chat/completions", API_KEY, pids),
        ]
        if floor is not None:
            chains.append(("floor", f"{floor.rest_url}/v1/chat/completions", API_KEY, floor_pids))
        for name, url, key, watched in chains:
            level = await run_level(name, url, key, streams, expected, watched, mesh.ssl_context())
            out.append(level)
            print(table([level]).splitlines()[-1], level.error_kinds or "", flush=True)
    return out


def write_section(text: str) -> None:
    """Replace the "Long streams" section of bench/results.md (or add it)."""
    current = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    head, _, rest = current.partition(SECTION)
    tail = rest[rest.find("\n## ") :] if "\n## " in rest else ""
    RESULTS.write_text(head.rstrip() + "\n\n" + text.rstrip() + "\n" + tail)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", default="300,1000", help="comma-separated levels (default 300,1000)")
    parser.add_argument("--tokens", type=int, default=200, help="tokens per answer (default 200)")
    parser.add_argument("--token-ms", type=float, default=25.0, help="delay between tokens (default 25)")
    parser.add_argument("--ttft-ms", type=float, default=50.0, help="time to first token (default 50)")
    args = parser.parse_args(argv)
    levels = [int(level) for level in args.streams.split(",")]
    expected = " ".join(f"word{n}" for n in range(args.tokens))
    topology = load_topology("deploy/topology.yaml")
    # Envoy's flood guard (a token bucket of requests a second) would turn
    # away streams opened all at once: this measures the mesh.
    guard = max(topology.envoy.rate_limit_rps, 2 * max(levels))
    envoy = dataclasses.replace(topology.envoy, rate_limit_rps=guard, rate_limit_burst=guard)
    topology = dataclasses.replace(topology, envoy=envoy)
    with emulated_mesh(args.tokens, args.token_ms, args.ttft_ms, topology) as (mesh, upstream):
        setup = (
            f"upstream: OpenAI-API emulator, TTFT {args.ttft_ms:g} ms, {args.tokens} tokens "
            f"{args.token_ms:g} ms apart; all streams open at once (Envoy's flood guard raised to "
            f"{guard} requests a second); {machine()}"
        )
        print(setup + "\n\n" + table([]), flush=True)
        floor = FloorChain.beside(mesh, upstream, OpenAIEmulator.api_key)
        floor.start()
        try:
            results = uvloop.run(measure(mesh, upstream, levels, expected, floor))
        finally:
            floor.stop()
    section = (
        f"{SECTION}\n\nSetup: {setup}.\n\n{table(results)}\n\n"
        f"What the mesh and the floor chain add to a direct call:\n\n{added(results)}\n\n"
        f"Peak resident memory of each process while the streams were open:\n\n{memory(results)}\n"
    )
    print("\n" + section)
    write_section(section)
    print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
