"""Failover along a model's chain, retries and circuit breakers, with real
SDKs against emulators that fail on purpose."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from tilores_x.v1 import common_pb2, llm_gateway_pb2, llm_gateway_pb2_grpc

from services.llm_gateway.catalog import CatalogError, ModelCatalog
from services.llm_gateway.failover import FailoverChain
from services.llm_gateway.providers.environment import build_providers
from services.llm_gateway.service import LlmGatewayComponent
from services.runtime.server import start_server
from tests.emulators.anthropic_api import AnthropicEmulator
from tests.emulators.base import Script
from tests.emulators.gemini_api import GeminiEmulator
from tests.emulators.openai_api import OpenAIEmulator
from tests.integration.conftest import CATALOG, free_port_settings

ONLY_TWO = """
models:
  - {id: first, provider: openai, upstream: gpt-4o-mini, fallbacks: [second]}
  - {id: second, provider: anthropic, upstream: claude-3-haiku-20240307}
"""


class Mesh:
    def __init__(self, catalog: str = CATALOG, **chain_options):
        self.catalog = catalog
        self.chain_options = chain_options
        self.openai = OpenAIEmulator(Script(text="from openai"))
        self.anthropic = AnthropicEmulator(Script(text="from anthropic"))
        self.gemini = GeminiEmulator(Script(text="from gemini"))

    async def __aenter__(self):
        for emulator in (self.openai, self.anthropic, self.gemini):
            await emulator.start()
        env = {
            "OPENAI_API_KEY": self.openai.api_key,
            "OPENAI_BASE_URL": self.openai.base_url,
            "ANTHROPIC_API_KEY": self.anthropic.api_key,
            "ANTHROPIC_BASE_URL": self.anthropic.root_url,
            "GEMINI_API_KEY": self.gemini.api_key,
            "GEMINI_BASE_URL": self.gemini.root_url,
        }
        self.chain = FailoverChain(
            ModelCatalog.from_yaml(self.catalog), build_providers(env, 5.0), **self.chain_options
        )
        self.server = await start_server(LlmGatewayComponent(self.chain), free_port_settings("llm"))
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{self.server.port}")
        self.stub = llm_gateway_pb2_grpc.LlmGatewayServiceStub(self.channel)
        return self

    async def __aexit__(self, *exc):
        await self.channel.close()
        await self.server.stop(0)
        for emulator in (self.openai, self.anthropic, self.gemini):
            await emulator.stop()

    async def ask(self, model: str = "gpt-4o-mini", **kwargs) -> tuple[str, list]:
        request = llm_gateway_pb2.GenerateRequest(
            model=model, messages=[common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content="hi")], **kwargs
        )
        events = [e async for e in self.stub.Generate(request, timeout=10)]
        return "".join(e.delta for e in events if e.WhichOneof("event") == "delta"), events

    async def status(self) -> dict:
        reply = await self.stub.GetProviderStatus(llm_gateway_pb2.GetProviderStatusRequest())
        return {p.provider: p for p in reply.providers}


async def test_a_failing_model_is_retried_then_the_next_in_the_chain_answers():
    async with Mesh() as mesh:
        mesh.openai.script = Script(status=500)
        text, events = await mesh.ask()
        assert text == "from anthropic"
        assert (events[-2].finish.model, events[-2].finish.provider) == ("claude-3-haiku", "anthropic")
        assert len(mesh.openai.requests) == 2  # one bounded retry, then failover
        status = await mesh.status()
        assert status["openai"].failures_before_first_token == 2
        assert status["anthropic"].successes == 1


async def test_no_fallback_is_honoured():
    async with Mesh() as mesh:
        mesh.openai.script = Script(status=503)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await mesh.ask(no_fallback=True)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert mesh.anthropic.requests == []


async def test_a_long_retry_after_fails_over_at_once():
    async with Mesh() as mesh:
        mesh.openai.script = Script(status=429, retry_after="30")
        started = asyncio.get_running_loop().time()
        text, _ = await mesh.ask()
        assert text == "from anthropic"
        assert asyncio.get_running_loop().time() - started < 2
        assert len(mesh.openai.requests) == 1


async def test_a_fallback_that_cannot_honour_the_request_is_skipped():
    async with Mesh() as mesh:
        mesh.openai.script = Script(status=500)
        text, events = await mesh.ask(options=common_pb2.GenerationOptions(seed=7))  # Anthropic has no seed
        assert text == "from gemini" and events[-2].finish.model == "gemini-2.5-flash-lite"
        assert mesh.anthropic.requests == []
        assert mesh.gemini.requests[-1]["generationConfig"]["seed"] == 7


async def test_after_the_first_token_nothing_is_retried():
    async with Mesh() as mesh:
        mesh.openai.script = Script(text="one two three four five six", cut_after=3)
        text, events = await mesh.ask()
        assert events[-1].WhichOneof("event") == "error" and text.startswith("one")
        assert mesh.anthropic.requests == [] and len(mesh.openai.requests) == 1
        assert (await mesh.status())["openai"].failures_mid_stream == 1


async def test_an_open_breaker_keeps_requests_away_and_is_visible():
    async with Mesh(breaker_threshold=2, breaker_open_s=60, retries=0) as mesh:
        mesh.openai.script = Script(status=500)
        for _ in range(2):
            text, _ = await mesh.ask()
            assert text == "from anthropic"
        status = await mesh.status()
        assert status["openai"].breaker == llm_gateway_pb2.BREAKER_STATE_OPEN
        assert 55_000 < status["openai"].retry_after_ms <= 60_000
        assert status["anthropic"].breaker == llm_gateway_pb2.BREAKER_STATE_CLOSED
        text, _ = await mesh.ask()
        assert text == "from anthropic"
        assert len(mesh.openai.requests) == 2  # the open breaker sent nothing more


async def test_every_target_open_is_unavailable_with_a_retry_hint():
    async with Mesh(ONLY_TWO, breaker_threshold=1, breaker_open_s=30, retries=0) as mesh:
        mesh.openai.script = Script(status=500)
        mesh.anthropic.script = Script(status=529)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await mesh.ask("first")
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await mesh.ask("first")
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "first: circuit open for openai; second: circuit open for anthropic" in caught.value.details()
        metadata = dict(caught.value.trailing_metadata())
        assert "grpc-status-details-bin" in metadata  # RetryInfo rides along
        assert len(mesh.openai.requests) == 1 and len(mesh.anthropic.requests) == 1


SAME_EMBEDDINGS_TWICE = """
models:
  - {id: text-embedding-3-small, kind: embedding, provider: openai, upstream: text-embedding-3-small,
     dimensions: 1536, max_inputs: 2, fallbacks: [text-embedding-3-small-proxy]}
  - {id: text-embedding-3-small-proxy, kind: embedding, provider: openai_compatible,
     upstream: text-embedding-3-small, dimensions: 1536, max_inputs: 2}
"""


async def test_an_embedding_model_fails_over_to_the_same_model_served_elsewhere():
    primary, proxy = OpenAIEmulator(Script(status=503)), OpenAIEmulator()
    for emulator in (primary, proxy):
        await emulator.start()
    env = {
        "OPENAI_API_KEY": primary.api_key, "OPENAI_BASE_URL": primary.base_url,
        "OPENAI_COMPATIBLE_API_KEY": proxy.api_key, "OPENAI_COMPATIBLE_BASE_URL": proxy.base_url,
    }  # fmt: skip
    chain = FailoverChain(ModelCatalog.from_yaml(SAME_EMBEDDINGS_TWICE), build_providers(env, 5.0))
    try:
        model, vectors, tokens = await chain.embed("text-embedding-3-small", ["a b", "c", "d e f"], [], 0, 10.0)
        assert model == "text-embedding-3-small-proxy" and len(vectors) == 3 and tokens == 6
        assert len(primary.requests) == 2  # one bounded retry, then the proxy
        assert [len(r["input"]) for r in proxy.requests] == [2, 1]  # max_inputs a call
        assert chain.counters["openai"].fallbacks == 1
        primary.script = Script()
        model, again, _ = await chain.embed("text-embedding-3-small", ["a b", "c", "d e f"], [], 0, 10.0)
        assert model == "text-embedding-3-small" and again == vectors  # the same vectors either way
    finally:
        for provider in chain.providers.values():
            if hasattr(provider, "close"):
                await provider.close()
        for emulator in (primary, proxy):
            await emulator.stop()


def test_an_embedding_model_may_not_fall_back_to_another_models_vectors():
    other = SAME_EMBEDDINGS_TWICE.replace("upstream: text-embedding-3-small, dimensions", "upstream: other, dimensions")
    with pytest.raises(CatalogError, match="falls back only to the same model served elsewhere"):
        ModelCatalog.from_yaml(other)
