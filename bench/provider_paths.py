"""Client CPU per streamed request for the ways llm_gateway could read an
OpenAI-format stream: `python -m bench.provider_paths`.

  sdk parsed   openai SDK, `create(stream=True)`, parsed chunk objects
  sdk raw      openai SDK raw streaming response over its aiohttp
               transport, SSE lines parsed with orjson (what llm_gateway does)
  aiohttp      bare aiohttp + orjson, below the SDK

The emulator runs in its own process; CPU time is this process's own
(user + system), divided by the number of requests. Figures only.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import openai
import orjson
import uvloop

from tests.emulators.openai_api import OpenAIEmulator

MESSAGES = [{"role": "system", "content": "Answer from the data. " * 40}, {"role": "user", "content": "status?"}]


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def sdk_parsed(client: openai.AsyncOpenAI) -> int:
    chunks = 0
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    async for chunk in stream:
        for choice in chunk.choices:
            chunks += bool(choice.delta.content)
    return chunks


async def sdk_raw(client: openai.AsyncOpenAI) -> int:
    chunks = 0
    async with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    ) as response:
        async for line in response.iter_lines():
            if line.startswith("data:") and line[5:].strip() != "[DONE]":
                for choice in orjson.loads(line[5:]).get("choices") or ():
                    chunks += bool((choice.get("delta") or {}).get("content"))
    return chunks


async def bare(session: aiohttp.ClientSession, url: str) -> int:
    chunks = 0
    body = orjson.dumps(
        {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
    )
    headers = {"Authorization": f"Bearer {OpenAIEmulator.api_key}", "Content-Type": "application/json"}
    async with session.post(url, data=body, headers=headers) as response:
        async for line in response.content:
            if line.startswith(b"data:") and line[5:].strip() != b"[DONE]":
                for choice in orjson.loads(line[5:]).get("choices") or ():
                    chunks += bool((choice.get("delta") or {}).get("content"))
    return chunks


async def measure(upstream: str, requests: int, rounds: int) -> None:
    client = openai.AsyncOpenAI(
        api_key=OpenAIEmulator.api_key, base_url=upstream, max_retries=0, http_client=openai.DefaultAioHttpClient()
    )
    session = aiohttp.ClientSession()
    paths = {
        "sdk parsed": lambda: sdk_parsed(client),
        "sdk raw": lambda: sdk_raw(client),
        "aiohttp": lambda: bare(session, f"{upstream}/chat/completions"),
    }
    results: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(rounds):  # interleaved rounds, so noise hits every path alike
        for name, path in paths.items():
            for _ in range(20):
                await path()
            started = cpu_s()
            for _ in range(requests):
                assert await path() == 20
            results[name].append((cpu_s() - started) / requests * 1000)
    await client.close()
    await session.close()
    base = statistics.median(results["sdk raw"])
    print(f"client CPU per streamed request (20 chunks), median of {rounds} rounds of {requests}:")
    for name, values in results.items():
        median = statistics.median(values)
        print(f"  {name:<11} {median:6.2f} ms   x{median / base:.2f} of sdk raw")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        url_file = Path(tmp) / "url"
        emulator = subprocess.Popen(
            [sys.executable, "-m", "tests.emulators.openai_api", "--url-file", str(url_file), "--words", "20"]
        )
        try:
            while not url_file.exists():
                time.sleep(0.02)
            uvloop.run(measure(url_file.read_text(), args.requests, args.rounds))
        finally:
            emulator.terminate()
            emulator.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
