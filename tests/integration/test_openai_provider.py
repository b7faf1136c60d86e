"""llm_gateway with the official openai SDK against the local OpenAI emulator."""

import asyncio

import grpc
import pytest
from tilores_x.v1 import common_pb2, llm_gateway_pb2, llm_gateway_pb2_grpc

from services.llm_gateway.catalog import ModelCatalog
from services.llm_gateway.providers.offline import OfflineProvider
from services.llm_gateway.providers.openai_compatible import OpenAICompatibleProvider
from services.llm_gateway.service import LlmGatewayComponent
from services.runtime.server import start_server
from tests.emulators.openai_api import OpenAIEmulator
from tests.integration.conftest import CATALOG, free_port_settings


@pytest.fixture
async def emulator():
    emulator = OpenAIEmulator(reply="Edwina Hawthorne is Active with a TransUnion score of 712.")
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
async def llm(emulator):
    providers = {
        "offline": OfflineProvider(),
        "openai": OpenAICompatibleProvider(api_key=emulator.api_key, base_url=emulator.base_url, timeout_s=10),
    }
    server = await start_server(
        LlmGatewayComponent(ModelCatalog.from_yaml(CATALOG), providers), free_port_settings("llm")
    )
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    yield llm_gateway_pb2_grpc.LlmGatewayServiceStub(channel)
    await channel.close()
    await server.stop(0)


def request(**kwargs) -> llm_gateway_pb2.GenerateRequest:
    return llm_gateway_pb2.GenerateRequest(
        model="gpt-4o-mini",
        messages=[
            common_pb2.ChatMessage(role=common_pb2.ROLE_SYSTEM, content="Answer from the data."),
            common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content="status of edwina?"),
        ],
        **kwargs,
    )


async def test_streams_the_providers_deltas_then_usage_and_finish(llm, emulator):
    events = [e async for e in llm.Generate(request(temperature=0.2, max_tokens=64), timeout=10)]
    deltas = [e.delta for e in events if e.WhichOneof("event") == "delta"]
    assert "".join(deltas) == emulator.reply
    words = len(emulator.reply.split(" "))
    assert events[-2].usage.completion_tokens == words  # as the provider counted them
    assert events[-2].usage.total_tokens == events[-2].usage.prompt_tokens + words
    assert events[-1].finish.reason == common_pb2.FINISH_REASON_STOP
    sent = emulator.requests[-1]
    assert sent["model"] == "gpt-4o-mini" and sent["temperature"] == 0.2 and sent["max_tokens"] == 64
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]
    assert sent["stream_options"] == {"include_usage": True}


async def test_rate_limit_before_the_first_token_is_a_status_with_retry_info(llm, emulator):
    emulator.mode = "rate_limit"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        [e async for e in llm.Generate(request(), timeout=10)]
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "rate limited" in caught.value.details()


async def test_server_error_is_unavailable(llm, emulator):
    emulator.mode = "server_error"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        [e async for e in llm.Generate(request(), timeout=10)]
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_wrong_api_key_is_a_precondition_and_never_echoed(emulator):
    provider = OpenAICompatibleProvider(api_key="sk-wrong-secret", base_url=emulator.base_url, timeout_s=5)
    component = LlmGatewayComponent(ModelCatalog.from_yaml(CATALOG), {"openai": provider})
    server = await start_server(component, free_port_settings("llm"))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            [e async for e in llm_gateway_pb2_grpc.LlmGatewayServiceStub(channel).Generate(request(), timeout=10)]
    await server.stop(0)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "sk-wrong-secret" not in caught.value.details()


async def test_drop_after_tokens_ends_with_an_error_event(llm, emulator):
    emulator.mode = "drop"
    events = [e async for e in llm.Generate(request(), timeout=10)]
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[0] == "delta" and kinds[-1] == "error" and "finish" not in kinds
    text = "".join(e.delta for e in events if e.WhichOneof("event") == "delta")
    assert emulator.reply.startswith(text) and len(text.split()) == 3
    assert events[-1].error.code in ("UNAVAILABLE", "DEADLINE_EXCEEDED")


async def test_cancel_closes_the_upstream_http_stream(llm, emulator):
    emulator.chunk_delay_s = 0.05
    call = llm.Generate(request(), timeout=10)
    first = await call.read()
    assert first.WhichOneof("event") == "delta"
    call.cancel()
    for _ in range(100):
        if emulator.disconnects:
            break
        await asyncio.sleep(0.02)
    assert emulator.disconnects == 1
    assert emulator.completed_streams == 0


async def test_unconfigured_provider_is_listed_as_unavailable():
    component = LlmGatewayComponent(ModelCatalog.from_yaml(CATALOG), {"offline": OfflineProvider()})
    server = await start_server(component, free_port_settings("llm"))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = llm_gateway_pb2_grpc.LlmGatewayServiceStub(channel)
        models = {m.id: m for m in (await stub.ListModels(llm_gateway_pb2.ListModelsRequest())).models}
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            [e async for e in stub.Generate(request(), timeout=5)]
    await server.stop(0)
    assert models["offline"].available
    assert not models["gpt-4o-mini"].available
    assert models["gpt-4o-mini"].unavailable_reason == "provider openai is not configured"
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
