"""What a customer question costs before the model is asked:
`python -m bench.router_paths` (part of `make bench`).

Starts the whole mesh (with Redis) on free ports and, in this process, a
router on the same peers, then times `RouterService.prepare` — everything a
turn does before its first model call (identifiers, customer lookup, 360
view and credit report, prompt, field policy, context) — for:

  cold        a customer never looked up: cache miss, tilores_data
  cache L1    the cache service's in-process tier answers
  cache L2    the cache restarted, Redis answers (and the value is promoted)
  router      the router's own near-cache answers (no hop at all)

then the prewarm time per customer, and a ChatBatch of 10 against the same
10 turns one after another (offline model, tokens 2 ms apart). Figures only;
writes bench/results-router.md.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import grpc
import uvloop
from tilores_x.v1 import cache_pb2, cache_pb2_grpc, common_pb2, router_pb2, router_pb2_grpc

from bench.chat_latency import machine, percentile
from deploy.local_mesh import UNMETERED_KEY_LIMITS, LocalMesh
from deploy.topology import load_topology
from services.router.clients import RouterClients
from services.router.service import RouterService
from services.runtime.identity import configure_identity
from services.tilores_data.sample import generate_customers

API_KEY = "sk-bench"
RESULTS = Path(__file__).with_name("results-router.md")


def turn(client_id: str) -> router_pb2.ChatRequest:
    question = f"What is the status and credit score of client id {client_id}?"
    return router_pb2.ChatRequest(
        model="offline", messages=[common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content=question)]
    )


async def timed(service: RouterService, requests: list[router_pb2.ChatRequest]) -> list[float]:
    out = []
    for request in requests:
        started = time.perf_counter()
        await service.turn(request, lambda: 10.0).plan()
        out.append((time.perf_counter() - started) * 1000)
    return out


async def measure(mesh: LocalMesh, customers: list, count: int) -> tuple[dict[str, list[float]], float, tuple]:
    configure_identity(mesh.client_tls("service", "router"))  # this process calls the peers as the router does
    addrs = {name: mesh.service_addr(name) for name in ("cache", "tilores_data", "optimizer", "llm_gateway")}
    plain = RouterClients(addrs, 3600.0, near_cache_ttl_s=0.0, prompt_ttl_s=300.0)
    near = RouterClients(addrs, 3600.0, near_cache_ttl_s=300.0, prompt_ttl_s=300.0)
    router, nearby = RouterService(plain, 30.0), RouterService(near, 30.0)
    requests = [turn(c.records[0]["CLIENT_ID"]) for c in customers[1 : count + 1]]
    await timed(router, [turn("2480135")] * 20)  # channels, prompt and model list warm
    rows = {"cold (tilores_data)": await timed(router, requests)}
    rows["cache L1 hit"] = await timed(router, requests)
    await timed(nearby, requests)
    rows["router near-cache hit"] = await timed(nearby, requests)
    await plain.close()
    await near.close()
    mesh.restart("cache")  # its in-process tier is empty; Redis keeps everything
    plain = RouterClients(addrs, 3600.0, near_cache_ttl_s=0.0, prompt_ttl_s=300.0)
    router = RouterService(plain, 30.0)
    await timed(router, [turn("2480135")] * 20)
    rows["cache L2 hit (Redis)"] = await timed(router, requests)
    await plain.close()

    async with grpc.aio.secure_channel(mesh.service_addr("cache"), mesh.client_credentials()) as channel:
        cache = cache_pb2_grpc.CacheServiceStub(channel)
        fresh = [c.records[0]["CLIENT_ID"] for c in customers[count + 1 : 2 * count + 1]]
        reply = await cache.Prewarm(cache_pb2.PrewarmRequest(identifiers=fresh, concurrency=8), timeout=120)
        prewarm_ms = reply.elapsed_ms / max(1, reply.customers_loaded)

    async with grpc.aio.secure_channel(mesh.service_addr("router"), mesh.client_credentials()) as channel:
        stub = router_pb2_grpc.RouterServiceStub(channel)
        sequential, batch = [], []
        for n in range(12):
            ten = [turn(c.records[0]["CLIENT_ID"]) for c in customers[1 + 10 * n : 11 + 10 * n]]
            started = time.perf_counter()
            for request in ten:
                async for _ in stub.Chat(request, timeout=30):
                    pass
            sequential.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            await stub.ChatBatch(router_pb2.ChatBatchRequest(requests=ten, concurrency=10), timeout=30)
            batch.append((time.perf_counter() - started) * 1000)
    return rows, prewarm_ms, (sequential[2:], batch[2:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=200, help="customers per measured path (default 200)")
    args = parser.parse_args(argv)
    customers = list(generate_customers(2 * args.customers + 200))
    with tempfile.TemporaryDirectory(prefix="bench-router-") as tmp:
        mesh = LocalMesh(
            load_topology("deploy/topology.yaml"),
            tmp,
            free_ports=True,
            api_key=API_KEY,
            key_limits=UNMETERED_KEY_LIMITS,
            env={
                "SAMPLE_CUSTOMERS": str(len(customers)),
                "OFFLINE_TOKEN_DELAY_MS": "2",
                "LOG_LEVEL": "WARNING",
            },
        )
        with mesh:
            rows, prewarm_ms, (sequential, batch) = uvloop.run(measure(mesh, customers, args.customers))
    lines = [
        "| path (time to the first model call) | turns | p50 | p99 |",
        "|---|---:|---:|---:|",
        *(
            f"| {name} | {len(v)} | {statistics.median(v):.2f} ms | {percentile(v, 0.99):.2f} ms |"
            for name, v in rows.items()
        ),
    ]
    speedup = statistics.median(sequential) / statistics.median(batch)
    summary = (
        f"Prewarm: {prewarm_ms:.2f} ms per customer ({args.customers} customers, 8 at once; search, 360 view and "
        f"credit report each).\n\nChatBatch of 10 (concurrency 10) versus the same 10 turns one after another, "
        f"offline model with tokens 2 ms apart: {statistics.median(batch):.1f} ms versus "
        f"{statistics.median(sequential):.1f} ms, {speedup:.1f}x faster (medians)."
    )
    table = "\n".join(lines)
    print(table + "\n\n" + summary)
    RESULTS.write_text(
        "# Router benchmark\n\n"
        f"Written by `make bench` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {machine()}.\n"
        "The mesh with Redis on one machine; the router under test runs in the benchmark's process and times "
        "everything before its first model call.\n\n" + table + "\n\n" + summary + "\n"
    )
    print(f"\nwritten to {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
