"""Soak: many slow streams at once, through Envoy and every hop, each
answered to its end: `make soak` (1,000 streams, offline tokens 60 ms apart);
then, on the same mesh, the worst inputs and the kills (`--faults`).

It starts the mesh on free ports with the offline model paced by
OFFLINE_TOKEN_DELAY_MS and the servers ageing their connections out every
20 s (so the soak crosses a GOAWAY, as a long-running mesh does every 5
minutes), opens the streams at 150 a second (under Envoy's flood guard)
with a raw SSE client, reads each to `data: [DONE]`, and reports per stream
whether it completed, ended with an error event (and which code) or failed
outright, with the spread of times to first token and of stream durations. Bounded in time: a
stream still open after `--cap-s` counts as unfinished. Exits 1 when any
stream did not complete, so `make soak` says whether streams up to the
documented cap finish; the figures are printed either way.

With `--faults` two more phases run, each bounded in time:
- worst inputs: 4 MiB messages of the shapes patterns backtrack on (a run of
  letters, near-miss e-mails, digits and separators, card numbers), one at
  a time with a 32-token answer, while another key's streams run; each must
  be answered in under 30 s (reported: seconds and CPU per process) and every neighbour stream
  must finish (reported: its TTFT beside an idle baseline);
- kills: streams at a steady rate while the optimizer, then the router, is
  SIGKILLed and started again; every turn answered in full must have
  exactly one outcome in the optimizer's store (reported: answered,
  recorded, lost).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

import aiohttp
import orjson
import uvloop

from bench.chat_latency import cpu_seconds
from deploy.local_mesh import UNMETERED_KEY_LIMITS, LocalMesh, parse_replicas
from deploy.topology import load_topology

API_KEY = "sk-soak"
QUESTION = "What is the status and credit score of edwina.hawthorne@example.com?"


@dataclass
class Stream:
    status: int = 0
    ttft_s: float | None = None
    duration_s: float = 0.0
    done: bool = False
    error: str = ""  # the error event's code, or the client-side failure
    completion_id: str = ""

    @property
    def outcome(self) -> str:
        if self.done:
            return "completed"
        return f"error:{self.error or 'no [DONE]'}"


async def one_stream(
    session: aiohttp.ClientSession, url: str, cap_s: float, key: str, question: str = QUESTION
) -> Stream:
    stream = Stream()
    started = time.monotonic()
    body = orjson.dumps({"model": "offline", "stream": True, "messages": [{"role": "user", "content": question}]})
    try:
        async with asyncio.timeout(cap_s):
            async with session.post(
                url, data=body, headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
            ) as response:
                stream.status = response.status
                if response.status != 200:
                    stream.error = f"HTTP {response.status}"
                    return stream
                async for line in response.content:
                    if not line.startswith(b"data: "):
                        continue
                    if stream.ttft_s is None and b'"content":"' in line and b'"content":""' not in line:
                        stream.ttft_s = time.monotonic() - started
                    if not stream.completion_id and line.startswith(b'data: {"id":"'):
                        stream.completion_id = orjson.loads(line[6:])["id"]
                    if line.startswith(b"data: [DONE]"):
                        stream.done = True
                    elif line.startswith(b'data: {"error"'):
                        stream.error = orjson.loads(line[6:])["error"].get("code") or "error"
    except TimeoutError:
        stream.error = f"still open after {cap_s:g} s"
    except aiohttp.ClientError as error:
        stream.error = type(error).__name__
    finally:
        stream.duration_s = time.monotonic() - started
    return stream


async def soak(rest_url: str, streams: int, cap_s: float, rate: float, key: str = API_KEY) -> list[Stream]:
    """Open `streams` streams, `rate` a second (under Envoy's flood guard),
    and keep every one open until it ends."""
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        url = f"{rest_url}/v1/chat/completions"
        tasks = []
        for n in range(streams):
            tasks.append(asyncio.ensure_future(one_stream(session, url, cap_s, key)))
            if n % 10 == 9:
                await asyncio.sleep(10 / rate)
        return await asyncio.gather(*tasks)


def _quantiles(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return f"p50 {statistics.median(ordered):.1f} s, p99 {at(0.99):.1f} s, max {ordered[-1]:.1f} s"


def report(results: list[Stream]) -> str:
    outcomes = collections.Counter(r.outcome for r in results)
    lines = [f"streams: {len(results)}"]
    lines += [f"  {outcome}: {count}" for outcome, count in outcomes.most_common()]
    ttfts = [r.ttft_s for r in results if r.ttft_s is not None]
    lines.append("time to first token: " + _quantiles(ttfts))
    edges = (1, 3, 7, 15, 31, 63)
    counts = [sum(1 for t in ttfts if low <= t < high) for low, high in zip((0, *edges), (*edges, 1e9), strict=True)]
    spread = ", ".join(f"<{e} s: {c}" for e, c in zip((*edges, "more"), counts, strict=True) if c)
    lines.append(f"  by time to first token: {spread}")
    lines.append("stream duration:     " + _quantiles([r.duration_s for r in results if r.done]))
    failed = sorted(r.duration_s for r in results if not r.done)
    if failed:
        lines.append(f"failed streams ended after {failed[0]:.1f} to {failed[-1]:.1f} s")
    return "\n".join(lines)


# The shapes a backtracking pattern chokes on, each filling a 4 MiB body.
HOSTILE_UNITS = ("a", "a1.", "a@b.co ", "1 ", "+1 312 555 0142 ", "4111 1111 1111 1111 ", "Jane Doe ")
HOSTILE_CHARS = 4 * 1024 * 1024 - 200  # what fits the body limit with the JSON around it


def _cpu_by_process(mesh: LocalMesh) -> dict[str, float]:
    return {name: cpu_seconds(p.pid) for name, p in mesh.processes.items() if p.poll() is None}


async def worst_inputs(mesh: LocalMesh, key: str) -> tuple[list[str], bool]:
    """Each hostile message alone, beside a neighbour's 40 streams; the
    report's lines and whether everything was answered in bounds."""
    url = f"{mesh.rest_url}/v1/chat/completions"
    lines, ok = [], True
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None)) as session:
        idle = await asyncio.gather(*(one_stream(session, url, 60, key) for _ in range(40)))
        neighbours = [asyncio.ensure_future(one_stream(session, url, 120, key)) for _ in range(40)]
        for unit in HOSTILE_UNITS:
            before = _cpu_by_process(mesh)
            # A short answer: the time is the input's cost, not the paced tokens.
            content = unit * (HOSTILE_CHARS // len(unit))
            message = {"role": "user", "content": content}
            body = orjson.dumps({"model": "offline", "max_tokens": 32, "messages": [message]})
            started = time.monotonic()
            async with session.post(
                url, data=body, headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
            ) as response:
                await response.read()
                status = response.status
            seconds = time.monotonic() - started
            spent = {n: c - before.get(n, c) for n, c in _cpu_by_process(mesh).items()}
            busiest = ", ".join(f"{n} {c:.2f}" for n, c in sorted(spent.items(), key=lambda i: -i[1])[:3])
            lines.append(f"  {unit!r:24} x {HOSTILE_CHARS // len(unit):>9,}: HTTP {status} in {seconds:.2f} s; "
                         f"CPU s meanwhile (neighbours included) {busiest}")  # fmt: skip
            ok &= status == 200 and seconds < 30
        during = await asyncio.gather(*neighbours)
    ok &= all(r.done for r in [*idle, *during])
    idle_ttft = [r.ttft_s for r in idle if r.ttft_s is not None]
    during_ttft = [r.ttft_s for r in during if r.ttft_s is not None]
    lines.append(f"  a neighbour's streams, idle: {sum(r.done for r in idle)}/40 done, TTFT {_quantiles(idle_ttft)}")
    lines.append(f"  while the hostile ones ran: {sum(r.done for r in during)}/40 done, TTFT {_quantiles(during_ttft)}")
    return lines, ok


async def steady(mesh: LocalMesh, key: str, seconds: float, rate: float) -> list[Stream]:
    """Streams opened at `rate` a second for `seconds`, each read to its end."""
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None)) as session:
        url = f"{mesh.rest_url}/v1/chat/completions"
        tasks = []
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            tasks.append(asyncio.ensure_future(one_stream(session, url, 60, key)))
            await asyncio.sleep(1 / rate)
        return await asyncio.gather(*tasks)


def kills(mesh: LocalMesh, key: str, victim: str, seconds: float = 8.0, rate: float = 20.0) -> list[Stream]:
    """Steady streams while `victim` is SIGKILLed a quarter of the way in
    and started again. The restart is made from this (the main) thread: a
    process dies with the thread that started it (with_parent)."""
    results: list[Stream] = []
    load = threading.Thread(target=lambda: results.extend(uvloop.run(steady(mesh, key, seconds, rate))))
    load.start()
    time.sleep(seconds / 4)
    mesh.restart(victim, kill=True)
    load.join()
    return results


def _recorded(mesh: LocalMesh, ids: list[str], wait_s: float = 30.0) -> dict[str, int]:
    """Rows per completion id in the optimizer's store, once every id is in
    or `wait_s` has passed."""
    deadline = time.monotonic() + wait_s
    chunks = [ids[start : start + 500] for start in range(0, len(ids), 500)]
    while True:
        rows: collections.Counter = collections.Counter()
        with sqlite3.connect(mesh.data_dir / "optimizer.db") as db:
            for chunk in chunks:
                marks = ",".join("?" * len(chunk))
                query = f"SELECT completion_id FROM outcomes WHERE completion_id IN ({marks})"
                rows.update(row[0] for row in db.execute(query, chunk))
        if len(rows) == len(set(ids)) or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


def faults(mesh: LocalMesh) -> bool:
    ok = True
    print("worst inputs (4 MiB each), one at a time beside a neighbour's streams:", flush=True)
    lines, answered = uvloop.run(worst_inputs(mesh, API_KEY))
    print("\n".join(lines), flush=True)
    ok &= answered
    for victim in ("optimizer", "router"):
        results = kills(mesh, API_KEY, victim)
        ids = [r.completion_id for r in results if r.done and r.completion_id]
        rows = _recorded(mesh, ids)
        lost, repeated = len(set(ids) - set(rows)), sum(1 for n in rows.values() if n > 1)
        print(
            f"{victim} SIGKILLed under load: {len(results)} streams, {len(ids)} answered in full, "
            f"{len(results) - len(ids)} cut by the kill; outcomes recorded {len(rows)}, lost {lost}, "
            f"recorded twice {repeated}",
            flush=True,
        )
        ok &= lost == 0 and repeated == 0 and len(ids) > 0
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--token-delay-ms", type=float, default=60.0)
    parser.add_argument("--cap-s", type=float, default=300.0, help="a stream still open after this is unfinished")
    parser.add_argument("--rate", type=float, default=150.0, help="streams opened a second (Envoy admits 200)")
    parser.add_argument(
        "--max-connection-age-s",
        type=float,
        default=20.0,
        help="servers age connections out this often (production: 300), so the soak crosses it",
    )
    parser.add_argument("--replicas", default="", help='e.g. "router=2 llm_gateway=2 gateway=2"')
    parser.add_argument("--faults", action="store_true", help="then the worst inputs and the kills (see above)")
    args = parser.parse_args(argv)
    topology = load_topology("deploy/topology.yaml")

    with tempfile.TemporaryDirectory(prefix="soak-") as data_dir:
        mesh = LocalMesh(
            topology,
            data_dir,
            free_ports=True,
            api_key=API_KEY,
            key_limits=UNMETERED_KEY_LIMITS,
            replicas=parse_replicas(args.replicas, topology) if args.replicas else None,
            env={
                "SAMPLE_CUSTOMERS": "200",
                "OFFLINE_TOKEN_DELAY_MS": f"{args.token_delay_ms:g}",
                "MAX_CONNECTION_AGE_S": f"{args.max_connection_age_s:g}",
                "LOG_LEVEL": "WARNING",
            },
        )
        mesh.start()
        try:
            print(
                f"soak: {args.streams} streams, offline tokens {args.token_delay_ms:g} ms apart, "
                f"{args.rate:g} opened a second, connections aged out every {args.max_connection_age_s:g} s, "
                f"cap {args.cap_s:g} s",
                flush=True,
            )
            started = time.monotonic()
            results = uvloop.run(soak(mesh.rest_url, args.streams, args.cap_s, args.rate))
            print(report(results))
            print(f"wall time {time.monotonic() - started:.1f} s", flush=True)
            faults_held = faults(mesh) if args.faults else True
        finally:
            mesh.stop()
    return 0 if all(r.done for r in results) and faults_held else 1


if __name__ == "__main__":
    sys.exit(main())
