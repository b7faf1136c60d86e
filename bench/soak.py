"""Soak: many slow streams at once, through Envoy and every hop, each
answered to its end: `make soak` (1,000 streams, offline tokens 60 ms apart).

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
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass

import aiohttp
import orjson
import uvloop

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

    @property
    def outcome(self) -> str:
        if self.done:
            return "completed"
        return f"error:{self.error or 'no [DONE]'}"


async def one_stream(session: aiohttp.ClientSession, url: str, cap_s: float, key: str) -> Stream:
    stream = Stream()
    started = time.monotonic()
    body = orjson.dumps({"model": "offline", "stream": True, "messages": [{"role": "user", "content": QUESTION}]})
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
            print(f"wall time {time.monotonic() - started:.1f} s")
        finally:
            mesh.stop()
    return 0 if all(r.done for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
