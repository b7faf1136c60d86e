"""What identities cost one gRPC hop: `python -m bench.identity_cost`
(part of `make bench`).

Starts a real cache service (`python -m services.cache`, in-process tier
only) twice, each a process of its own:

  plaintext   MESH_PLAINTEXT=true: no TLS, no identity, no scope check
  mTLS        its certificate of the mesh CA, MESH_GRANTS: every call comes
              over mutual TLS, the caller's SPIFFE id is read from the
              handshake and its scope checked before the handler runs

and times, from a grpc.aio client in this process that calls as
`service/router` would:

  call        CacheService.Get on one open channel (the steady state: the
              handshake is behind, each call pays the record encryption and
              the identity and scope check)
  connection  a new channel and its first call (TCP, the TLS handshake with
              both certificates, the call)

Per mode: the median latency and the server's CPU time per call or
connection (from /proc), and the client's. Figures only; writes
bench/results-identity.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import uvloop
from tilores_x.v1 import cache_pb2, cache_pb2_grpc

from bench.chat_latency import machine
from deploy.certificates import MeshCertificates
from services.runtime.identity import MeshTls

RESULTS = Path(__file__).with_name("results-identity.md")
TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    """User and system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_S


def start_cache(tmp: Path, env: dict[str, str]) -> tuple[subprocess.Popen, int]:
    port_file = tmp / f"cache-{len(list(tmp.glob('cache-*')))}.port"
    settings = {
        **os.environ,
        "LISTEN_ADDR": "127.0.0.1:0",
        "PORT_FILE": str(port_file),
        "LOG_LEVEL": "WARNING",
        "OTEL_SDK_DISABLED": "true",
        **env,
    }
    settings.pop("REDIS_URL", None)
    process = subprocess.Popen([sys.executable, "-m", "services.cache"], env=settings)
    while not port_file.exists():
        if process.poll() is not None:
            raise SystemExit("the cache service did not start")
        time.sleep(0.05)
    return process, int(port_file.read_text())


def _channel(port: int, tls: MeshTls | None) -> grpc.aio.Channel:
    if tls is None:
        return grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    return grpc.aio.secure_channel(f"127.0.0.1:{port}", tls.channel_credentials())


async def measure(pid: int, port: int, tls: MeshTls | None, calls: int, connections: int) -> dict[str, float]:
    request = cache_pb2.GetRequest(namespace="customer", key="k", tenant="bench")
    async with _channel(port, tls) as channel:
        stub = cache_pb2_grpc.CacheServiceStub(channel)
        for _ in range(200):  # warm: connection, handshake, caches
            await stub.Get(request)
        latencies = []
        server, client = _cpu_s(pid), time.process_time()
        for _ in range(calls):
            started = time.perf_counter()
            await stub.Get(request)
            latencies.append((time.perf_counter() - started) * 1e6)
        call_server, call_client = (_cpu_s(pid) - server) / calls, (time.process_time() - client) / calls
    setups = []
    server, client = _cpu_s(pid), time.process_time()
    for _ in range(connections):
        started = time.perf_counter()
        async with _channel(port, tls) as channel:
            await cache_pb2_grpc.CacheServiceStub(channel).Get(request)
            setups.append((time.perf_counter() - started) * 1e6)
    connection_server = (_cpu_s(pid) - server) / connections
    connection_client = (time.process_time() - client) / connections
    return {
        "call p50 µs": statistics.median(latencies),
        "call server CPU µs": call_server * 1e6,
        "call client CPU µs": call_client * 1e6,
        "connection p50 µs": statistics.median(setups),
        "connection server CPU µs": connection_server * 1e6,
        "connection client CPU µs": connection_client * 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--connections", type=int, default=300)
    args = parser.parse_args(argv)
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-identity-") as name:
        tmp = Path(name)
        certificates = MeshCertificates(tmp / "certs")
        own, caller = certificates.issue("service", "cache"), certificates.issue("service", "router")
        caller_tls = MeshTls.from_files(str(caller.cert_file), str(caller.key_file), str(caller.ca_file))
        modes = {
            "plaintext": ({"MESH_PLAINTEXT": "true"}, None),
            "mTLS": ({**own.env(), "MESH_GRANTS": "service/router=cache.read,cache.write"}, caller_tls),
        }
        for mode, (env, tls) in modes.items():
            process, port = start_cache(tmp, env)
            try:
                rows[mode] = uvloop.run(measure(process.pid, port, tls, args.calls, args.connections))
            finally:
                process.terminate()
                process.wait(timeout=30)
            print(f"{mode}: " + ", ".join(f"{k} {v:.0f}" for k, v in rows[mode].items()), flush=True)
    plain, secure = rows["plaintext"], rows["mTLS"]
    lines = [
        "# What identities cost one gRPC hop",
        "",
        f"`python -m bench.identity_cost` on {machine()}: a real cache service, CacheService.Get from a client",
        f"calling as `service/router`; {args.calls} calls on one open channel, {args.connections} new connections.",
        "",
        "| figure | plaintext | mTLS + identity + scope | mTLS / plaintext |",
        "| --- | ---: | ---: | ---: |",
    ]
    for figure in plain:
        ratio = secure[figure] / plain[figure] if plain[figure] else float("nan")
        lines.append(f"| {figure} | {plain[figure]:.0f} | {secure[figure]:.0f} | {ratio:.2f} |")
    lines += [
        "",
        "The steady state is what a turn pays per hop: connections are opened at start-up and kept",
        "(keepalive, a 5-minute connection age), so the handshake is paid once per peer and process.",
        "",
    ]
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
