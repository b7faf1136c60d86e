"""Time to first token and client CPU per streamed request for the ways
llm_gateway could read an OpenAI-format stream: `python -m bench.provider_paths`.

  sdk parsed   openai SDK, `create(stream=True)`, parsed chunk objects
  sdk typed    openai SDK `with_streaming_response.create()`, SSE lines
               parsed with orjson
  llm_gateway  the gateway's OpenAIFormatProvider: the body encoded once
               with orjson and posted through the SDK client's `post`
  aiohttp      bare aiohttp + orjson, below the SDK

The emulator runs in its own process (TTFT 50 ms, 20 tokens 5 ms apart);
CPU time is this process's own (user + system) divided by the number of
requests, so it includes the event loop's wake-ups between tokens. Figures
only.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import openai
import orjson
import uvloop

from services.llm_gateway.providers.environment import build_providers
from services.llm_gateway.providers.events import GenerationRequest
from services.runtime.conversation import Message
from tests.emulators.openai_api import OpenAIEmulator

SYSTEM = "Answer from the data. " * 40
QUESTION = "status?"
MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def first_text(texts: AsyncIterator[str | None], started: float) -> float:
    """Seconds to the first non-empty text; the stream is read to its end."""
    first = 0.0
    async for text in texts:
        if text and not first:
            first = time.perf_counter() - started
    return first


async def line_texts(lines: AsyncIterator) -> AsyncIterator[str | None]:
    async for line in lines:
        if line[:5] in ("data:", b"data:") and line[5:].strip() not in ("[DONE]", b"[DONE]"):
            for choice in orjson.loads(line[5:]).get("choices") or ():
                yield (choice.get("delta") or {}).get("content")


async def sdk_parsed(client: openai.AsyncOpenAI) -> float:
    started = time.perf_counter()
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )

    async def texts():
        async for chunk in stream:
            for choice in chunk.choices:
                yield choice.delta.content

    return await first_text(texts(), started)


async def sdk_typed(client: openai.AsyncOpenAI) -> float:
    started = time.perf_counter()
    async with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    ) as response:
        return await first_text(line_texts(response.iter_lines()), started)


async def gateway_provider(provider) -> float:
    started = time.perf_counter()
    request = GenerationRequest(
        upstream_model="gpt-4o-mini", messages=[Message("system", SYSTEM), Message("user", QUESTION)]
    )

    async def texts():
        async for event in provider.stream(request):
            yield event if type(event) is str else None

    return await first_text(texts(), started)


async def bare(session: aiohttp.ClientSession, url: str) -> float:
    started = time.perf_counter()
    body = orjson.dumps(
        {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
    )
    headers = {"Authorization": f"Bearer {OpenAIEmulator.api_key}", "Content-Type": "application/json"}
    async with session.post(url, data=body, headers=headers) as response:
        return await first_text(line_texts(response.content), started)


async def measure(upstream: str, requests: int, rounds: int) -> None:
    client = openai.AsyncOpenAI(
        api_key=OpenAIEmulator.api_key, base_url=upstream, max_retries=0, http_client=openai.DefaultAioHttpClient()
    )
    provider = build_providers({"OPENAI_API_KEY": OpenAIEmulator.api_key, "OPENAI_BASE_URL": upstream}, 30.0)["openai"]
    session = aiohttp.ClientSession()
    paths: dict[str, Callable[[], Awaitable[float]]] = {
        "sdk parsed": lambda: sdk_parsed(client),
        "sdk typed": lambda: sdk_typed(client),
        "llm_gateway": lambda: gateway_provider(provider),
        "aiohttp": lambda: bare(session, f"{upstream}/chat/completions"),
    }
    cpu: dict[str, list[float]] = {name: [] for name in paths}
    ttft: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(rounds):  # interleaved rounds, so noise hits every path alike
        for name, path in paths.items():
            for _ in range(5):
                await path()
            started = cpu_s()
            for _ in range(requests):
                ttft[name].append(await path() * 1000)
            cpu[name].append((cpu_s() - started) / requests * 1000)
    await client.close()
    await provider.close()
    await session.close()
    base_cpu = statistics.median(cpu["aiohttp"])
    base_ttft = statistics.median(ttft["aiohttp"])
    print(f"per streamed request (20 chunks), medians of {rounds} rounds of {requests}:")
    print(f"  {'path':<12} {'TTFT p50':>9} {'vs aiohttp':>11} {'CPU':>9} {'vs aiohttp':>11}")
    for name in paths:
        t, c = statistics.median(ttft[name]), statistics.median(cpu[name])
        print(f"  {name:<12} {t:6.2f} ms {t - base_ttft:+8.2f} ms {c:6.2f} ms {c - base_cpu:+8.2f} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        url_file = Path(tmp) / "url"
        emulator = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.emulators.openai_api",
                "--url-file",
                str(url_file),
                "--words",
                "20",
                "--first-token-ms",
                "50",
                "--chunk-delay-ms",
                "5",
            ]
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
