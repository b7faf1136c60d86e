"""Where a streamed answer's CPU goes: `python -m bench.mesh_profile`.

Starts the OpenAI-API emulator and the whole mesh as `make bench` does,
keeps `--concurrency` streams of one question going for `--seconds`, and
prints the CPU each process spent per answer. With `--py-spy` it also
records every Python service with py-spy (a sampling profiler that reads a
running process without changing it) and prints each one's functions by
own time and by time inside them. Time in gRPC's Cython layer, its poller
thread and uvloop shows as `Runner.run` and `Thread.run`: py-spy sees no
Python frames there. A tool for finding the next cost, not a benchmark:
nothing here is written to the results.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import uvloop

from bench.chat_latency import API_KEY, GENERAL, QUESTION, CpuMeter, body, emulated_mesh, sse_request
from deploy.local_mesh import LocalMesh


async def drive(mesh: LocalMesh, question: str, concurrency: int, seconds: float) -> int:
    """Answers completed while `concurrency` streams ran for `seconds`."""
    connector = aiohttp.TCPConnector(limit=0, ssl=mesh.ssl_context())
    async with aiohttp.ClientSession(connector=connector) as session:
        url = f"{mesh.rest_url}/v1/chat/completions"
        for _ in range(10):
            await sse_request(session, url, API_KEY, body(question))
        stop = time.monotonic() + seconds
        done = 0

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < stop:
                await sse_request(session, url, API_KEY, body(question))
                done += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done


def summary(raw: Path, top: int) -> str:
    """A py-spy raw profile as functions by own and by inclusive samples."""
    own: collections.Counter = collections.Counter()
    inside: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples = int(count)
        total += samples
        frames = stack.split(";")
        own[frames[-1]] += samples
        for frame in set(frames):
            inside[frame] += samples
    lines = [f"{total} samples; own time:"]
    lines += [f"  {100 * n / total:5.1f}%  {frame[:140]}" for frame, n in own.most_common(top)]
    lines.append("inside:")
    lines += [f"  {100 * n / total:5.1f}%  {frame[:140]}" for frame, n in inside.most_common(top * 2)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--customer", action="store_true", help="a warm customer question instead of a general one")
    parser.add_argument("--py-spy", action="store_true", help="record each Python service with py-spy")
    parser.add_argument("--top", type=int, default=15, help="functions shown per process (default 15)")
    args = parser.parse_args(argv)
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if args.py_spy and not Path(spy).exists():
        parser.error("py-spy is not installed: pip install py-spy")
    question = QUESTION if args.customer else GENERAL
    with emulated_mesh(20, 5.0, 50.0) as (mesh, _upstream), tempfile.TemporaryDirectory(prefix="py-spy-") as tmp:
        pids = {name: p.pid for name, p in mesh.processes.items() if name != "redis"}
        profiles = {name: Path(tmp) / f"{name}.txt" for name in pids if name != "envoy"}
        spies = []
        for name, path in profiles.items() if args.py_spy else ():
            command = [spy, "record", "-p", str(pids[name]), "-d", str(int(args.seconds)), "-r", "200",
                       "--format", "raw", "-o", str(path), "--nonblocking"]  # fmt: skip
            spies.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        meter = CpuMeter(pids)
        before = meter.snapshot()
        answers = uvloop.run(drive(mesh, question, args.concurrency, args.seconds))
        after = meter.snapshot()
        for process in spies:
            process.wait()
        per_answer = {name: (after[name] - before[name]) * 1000 / max(1, answers) for name in pids}
        print(f"{answers} answers in {args.seconds:g} s ({answers / args.seconds:.0f}/s) at concurrency "
              f"{args.concurrency}; CPU per answer, ms:")  # fmt: skip
        for name, ms in per_answer.items():
            print(f"  {name:<14} {ms:6.2f}")
        print(f"  {'whole mesh':<14} {sum(per_answer.values()):6.2f}")
        for name, path in profiles.items():
            if path.exists():
                print(f"\n== {name}: " + summary(path, args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
