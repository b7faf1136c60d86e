"""What the mesh adds to a streamed chat answer: `make bench`.

Starts an OpenAI-API emulator (its own process, 20 chunks per answer), then
the whole mesh behind Envoy with the `openai` provider pointed at it, and
measures with one raw SSE client (aiohttp) at several concurrencies:

  direct     the client straight to the emulator
  mesh       the same answer through Envoy -> gateway -> router -> llm_gateway
             -> emulator, customer lookup served from the cache (warm)
  mesh cold  as mesh, but every request asks about a different customer, so
             each one goes cache miss -> tilores_data
  router     gRPC straight to the router (no Envoy, no REST gateway)

Prints p50/p99 time to first token and total time, throughput, and the
mesh's added latency as differences and ratios of medians. Figures only: the
machine is shared and noisy, so nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import grpc
import orjson
import uvloop
from tilores_x.v1 import common_pb2, router_pb2, router_pb2_grpc

from deploy.local_mesh import LocalMesh
from deploy.topology import load_topology
from services.tilores_data.sample import generate_customers
from tests.emulators.openai_api import OpenAIEmulator

API_KEY = "sk-bench"
CUSTOMERS = 2000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def sse_request(session: aiohttp.ClientSession, url: str, key: str, body: bytes) -> tuple[float, float]:
    started = time.perf_counter()
    first = 0.0
    async with session.post(
        url, data=body, headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    ) as reply:
        if reply.status != 200:
            raise RuntimeError(f"HTTP {reply.status}: {await reply.text()}")
        async for line in reply.content:
            if not first and line.startswith(b'data: {"') and b'"content":"' in line and b'"content":""' not in line:
                first = time.perf_counter() - started
            if line.startswith(b"data: [DONE]"):
                break
    return first, time.perf_counter() - started


async def router_request(stub, question: str) -> tuple[float, float]:
    started = time.perf_counter()
    first = 0.0
    request = router_pb2.ChatRequest(
        model="gpt-4o-mini", messages=[common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content=question)]
    )
    async for event in stub.Chat(request, timeout=30):
        if not first and event.WhichOneof("event") == "delta":
            first = time.perf_counter() - started
    return first, time.perf_counter() - started


async def run_level(make_request, concurrency: int, total: int) -> dict:
    samples: list[tuple[float, float]] = []
    counter = iter(range(total))

    async def worker():
        for n in counter:
            samples.append(await make_request(n))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    ttft = [s[0] * 1000 for s in samples]
    whole = [s[1] * 1000 for s in samples]
    return {
        "ttft_p50": statistics.median(ttft),
        "ttft_p99": percentile(ttft, 0.99),
        "total_p50": statistics.median(whole),
        "total_p99": percentile(whole, 0.99),
        "rps": total / elapsed,
    }


def body(model: str, question: str) -> bytes:
    return orjson.dumps({"model": model, "stream": True, "messages": [{"role": "user", "content": question}]})


async def measure(mesh: LocalMesh, upstream: str, levels: list[int], requests: int) -> None:
    demo = "What is the status and credit score of edwina.hawthorne@example.com?"
    client_ids = [c.records[0]["CLIENT_ID"] for c in generate_customers(CUSTOMERS)][1:]
    cold = iter(client_ids)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        channel = grpc.aio.insecure_channel(mesh.service_addr("router"))
        router = router_pb2_grpc.RouterServiceStub(channel)
        paths = {
            "direct": lambda n: sse_request(
                session, f"{upstream}/chat/completions", OpenAIEmulator.api_key, body("gpt-4o-mini", demo)
            ),
            "mesh": lambda n: sse_request(
                session, f"{mesh.rest_url}/v1/chat/completions", API_KEY, body("gpt-4o-mini", demo)
            ),
            "mesh cold": lambda n: sse_request(
                session,
                f"{mesh.rest_url}/v1/chat/completions",
                API_KEY,
                body("gpt-4o-mini", f"status of client id {next(cold)}"),
            ),
            "router": lambda n: router_request(router, demo),
        }
        for path in paths.values():  # warm connections, channels and the cache
            for n in range(20):
                await path(n)
        print(
            f"{'path':<10} {'conc':>4} {'ttft p50':>9} {'ttft p99':>9} {'total p50':>10} {'total p99':>10} {'req/s':>7}"
        )
        results: dict[tuple[str, int], dict] = {}
        for concurrency in levels:
            for name, path in paths.items():
                count = min(requests, len(client_ids) - 100) if name == "mesh cold" else requests
                if name == "mesh cold" and concurrency != levels[0]:
                    count = min(count, (len(client_ids) - 100) // len(levels))
                result = await run_level(path, concurrency, count)
                results[(name, concurrency)] = result
                print(
                    f"{name:<10} {concurrency:>4} {result['ttft_p50']:>7.2f}ms {result['ttft_p99']:>7.2f}ms"
                    f" {result['total_p50']:>8.2f}ms {result['total_p99']:>8.2f}ms {result['rps']:>7.0f}",
                    flush=True,
                )
        await channel.close()
    print("\nadded by the mesh (medians; mesh vs direct to the same upstream):")
    for concurrency in levels:
        direct, mesh_r, cold_r = (results[(n, concurrency)] for n in ("direct", "mesh", "mesh cold"))
        print(
            f"  conc {concurrency:>3}: TTFT +{mesh_r['ttft_p50'] - direct['ttft_p50']:.2f} ms"
            f" (x{mesh_r['ttft_p50'] / direct['ttft_p50']:.1f}),"
            f" total +{mesh_r['total_p50'] - direct['total_p50']:.2f} ms"
            f" (x{mesh_r['total_p50'] / direct['total_p50']:.1f}),"
            f" cache miss adds {cold_r['ttft_p50'] - mesh_r['ttft_p50']:+.2f} ms TTFT,"
            f" throughput x{mesh_r['rps'] / direct['rps']:.2f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated levels (default 1,8,32)")
    parser.add_argument("--requests", type=int, default=300, help="requests per path and level (default 300)")
    args = parser.parse_args(argv)
    levels = [int(level) for level in args.concurrency.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        url_file = Path(tmp) / "emulator-url"
        emulator = subprocess.Popen(
            [sys.executable, "-m", "tests.emulators.openai_api", "--url-file", str(url_file), "--words", "20"]
        )
        try:
            while not url_file.exists():
                time.sleep(0.02)
            upstream = url_file.read_text()
            mesh = LocalMesh(
                load_topology("deploy/topology.yaml"),
                tmp,
                free_ports=True,
                api_key=API_KEY,
                env={
                    "GATEWAY_API_KEYS": API_KEY,
                    "SAMPLE_CUSTOMERS": str(CUSTOMERS),
                    "OPENAI_API_KEY": OpenAIEmulator.api_key,
                    "OPENAI_BASE_URL": upstream,
                    "LOG_LEVEL": "WARNING",
                },
            )
            with mesh:
                print(f"upstream: OpenAI-API emulator, 20 chunks per answer; {args.requests} requests per row\n")
                uvloop.run(measure(mesh, upstream, levels, args.requests))
        finally:
            emulator.terminate()
            emulator.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
