"""What tracing costs one gRPC hop: `python -m bench.rpc_spans` (part of
`make bench`).

A grpc.aio server and client in this process on loopback, with the server
behind the runtime's request interceptor, time

  unary    one CacheService.Stats call, and
  stream   one LlmGatewayService.Generate call of 100 messages, read to the end

in these modes, each in a process of its own:

  none              no spans (OTEL_SDK_DISABLED=true)
  runtime           the runtime's own spans (services/runtime/rpc_spans.py),
                    as a service makes them with no exporter: ids carried,
                    nothing recorded
  runtime, recorded the same, recorded (an exporter is configured)
  library           opentelemetry-instrumentation-grpc's aio interceptors on
                    both sides instead, recorded

Recorded spans go to no exporter here, so export costs are not counted.
Prints medians; figures only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import grpc
import uvloop
from tilores_x.v1 import cache_pb2, cache_pb2_grpc, llm_gateway_pb2, llm_gateway_pb2_grpc

from services.runtime import rpc_spans
from services.runtime.interceptors import RequestInterceptor
from services.runtime.telemetry import configure_tracing

MESSAGES = 100
MODES = {
    "none": {"OTEL_SDK_DISABLED": "true"},
    "runtime": {},
    "runtime, recorded": {"OTEL_TRACES_SAMPLER": "parentbased_always_on"},
    "library": {"OTEL_TRACES_SAMPLER": "parentbased_always_on"},
}


class _Cache(cache_pb2_grpc.CacheServiceServicer):
    async def Stats(self, request, context):
        return cache_pb2.StatsResponse()


class _Tokens(llm_gateway_pb2_grpc.LlmGatewayServiceServicer):
    async def Generate(self, request, context):
        for _ in range(MESSAGES):
            yield llm_gateway_pb2.GenerateResponse(delta="token ")


def _interceptors(mode: str) -> tuple[list, list]:
    """Extra server interceptors and the client's, per mode."""
    if mode == "library":
        from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor  # noqa: PLC0415

        return [aio_server_interceptor()], list(aio_client_interceptors())
    return [], rpc_spans.client_interceptors()


async def _measure(mode: str, calls: int) -> tuple[float, float]:
    server_extra, client = _interceptors(mode)
    if mode == "library":
        os.environ["OTEL_SDK_DISABLED"] = "true"  # the runtime's own spans off; the library's stay
    server = grpc.aio.server(interceptors=[*server_extra, RequestInterceptor()])
    cache_pb2_grpc.add_CacheServiceServicer_to_server(_Cache(), server)
    llm_gateway_pb2_grpc.add_LlmGatewayServiceServicer_to_server(_Tokens(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}", interceptors=client)
    cache = cache_pb2_grpc.CacheServiceStub(channel)
    llm = llm_gateway_pb2_grpc.LlmGatewayServiceStub(channel)

    async def stream() -> None:
        async for _ in llm.Generate(llm_gateway_pb2.GenerateRequest(model="offline")):
            pass

    try:
        for _ in range(200):
            await cache.Stats(cache_pb2.StatsRequest())
            await stream()
        unary, streamed = [], []
        for _ in range(calls):
            started = time.perf_counter()
            await cache.Stats(cache_pb2.StatsRequest())
            unary.append(time.perf_counter() - started)
        for _ in range(calls // 10):
            started = time.perf_counter()
            await stream()
            streamed.append(time.perf_counter() - started)
    finally:
        await channel.close()
        await server.stop(0)
    return statistics.median(unary) * 1000, statistics.median(streamed) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=3000, help="unary calls per mode (streams: a tenth)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the modes, to see the noise")
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)  # one measurement, in a child
    args = parser.parse_args(argv)
    if args.mode:
        configure_tracing("bench")  # as a service starts: provider and sampler from the environment
        unary, streamed = uvloop.run(_measure(args.mode, args.calls))
        print(f"| {args.mode} | {unary:.3f} ms | {streamed:.2f} ms |", flush=True)
        return 0
    print(f"| mode | unary call p50 | stream of {MESSAGES} p50 |\n|---|---:|---:|", flush=True)
    for _ in range(args.rounds):
        for mode, env in MODES.items():
            command = [sys.executable, "-m", "bench.rpc_spans", "--mode", mode, "--calls", str(args.calls)]
            subprocess.run(command, env={**os.environ, "OTEL_TRACES_EXPORTER": "none", **env}, check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
