"""Every provider through llm_gateway, each driven by its official SDK
against a local emulator of its API: the same behaviour whichever answers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import grpc
import orjson
import pytest
from tilores_x.v1 import common_pb2, llm_gateway_pb2, llm_gateway_pb2_grpc

from services.llm_gateway.catalog import ModelCatalog
from services.llm_gateway.failover import FailoverChain
from services.llm_gateway.providers.environment import build_providers
from services.llm_gateway.service import LlmGatewayComponent
from services.runtime.server import start_server
from tests.emulators.anthropic_api import AnthropicEmulator
from tests.emulators.base import Emulator, Script
from tests.emulators.gemini_api import GeminiEmulator
from tests.emulators.openai_api import OpenAIEmulator
from tests.integration.conftest import CATALOG, free_port_settings

REPLY = "Edwina Hawthorne is Active with a TransUnion score of 712."


@dataclass
class Case:
    model: str
    provider: str
    emulator: type[Emulator]

    def env(self, emulator: Emulator) -> dict[str, str]:
        key, url = emulator.api_key, emulator.root_url
        return {
            "openai": {"OPENAI_API_KEY": key, "OPENAI_BASE_URL": url + "/v1"},
            "groq": {"GROQ_API_KEY": key, "GROQ_BASE_URL": url},
            "anthropic": {"ANTHROPIC_API_KEY": key, "ANTHROPIC_BASE_URL": url},
            "gemini": {"GEMINI_API_KEY": key, "GEMINI_BASE_URL": url},
        }[self.provider]


CASES = [
    Case("gpt-4o-mini", "openai", OpenAIEmulator),
    Case("llama-3.3-70b-versatile", "groq", OpenAIEmulator),
    Case("claude-3-haiku", "anthropic", AnthropicEmulator),
    Case("gemini-2.5-flash", "gemini", GeminiEmulator),
]


@dataclass
class Gateway:
    stub: llm_gateway_pb2_grpc.LlmGatewayServiceStub
    emulator: Emulator
    case: Case
    chain: FailoverChain


@pytest.fixture(params=CASES, ids=[c.provider for c in CASES])
async def gateway(request):
    case: Case = request.param
    emulator = case.emulator(Script(text=REPLY))
    await emulator.start()
    chain = FailoverChain(ModelCatalog.from_yaml(CATALOG), build_providers(case.env(emulator), timeout_s=5.0))
    server = await start_server(LlmGatewayComponent(chain), free_port_settings("llm"))
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    yield Gateway(llm_gateway_pb2_grpc.LlmGatewayServiceStub(channel), emulator, case, chain)
    await channel.close()
    await server.stop(0)
    await emulator.stop()


def generate_request(model: str, **kwargs) -> llm_gateway_pb2.GenerateRequest:
    return llm_gateway_pb2.GenerateRequest(
        model=model,
        messages=[
            common_pb2.ChatMessage(role=common_pb2.ROLE_SYSTEM, content="Answer from the data."),
            common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content="status of edwina?"),
        ],
        no_fallback=True,
        **kwargs,
    )


async def run(gateway: Gateway, **kwargs) -> list:
    return [e async for e in gateway.stub.Generate(generate_request(gateway.case.model, **kwargs), timeout=10)]


def kinds(events) -> list[str]:
    return [e.WhichOneof("event") for e in events]


def sampling(gateway: Gateway) -> dict:
    """Sampling options the provider takes (Anthropic has dropped them)."""
    if gateway.case.provider == "anthropic":
        return {}
    return {"temperature": 0.2}


async def test_text_streams_then_usage_then_finish(gateway):
    events = await run(gateway, max_tokens=64, **sampling(gateway))
    assert "".join(e.delta for e in events if e.WhichOneof("event") == "delta") == REPLY
    assert kinds(events)[-2:] == ["finish", "usage"]
    usage = events[-1].usage
    assert usage.completion_tokens == len(REPLY.split(" "))
    assert usage.prompt_tokens > 0 and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    finish = events[-2].finish
    assert (finish.reason, finish.model, finish.provider) == (
        common_pb2.FINISH_REASON_STOP,
        gateway.case.model,
        gateway.case.provider,
    )


async def test_system_prompt_and_parameters_reach_the_provider_in_its_own_shape(gateway):
    anthropic = gateway.case.provider == "anthropic"
    options = (
        common_pb2.GenerationOptions(stop=["END"])
        if anthropic
        else common_pb2.GenerationOptions(top_p=0.9, stop=["END"])
    )
    await run(gateway, max_tokens=64, options=options, **sampling(gateway))
    sent = gateway.emulator.requests[-1]
    provider = gateway.case.provider
    if provider in ("openai", "groq"):
        assert [m["role"] for m in sent["messages"]] == ["system", "user"]
        assert (sent["temperature"], sent["top_p"], sent["max_tokens"], sent["stop"]) == (0.2, 0.9, 64, ["END"])
    elif provider == "anthropic":
        assert sent["system"] == "Answer from the data."
        assert [m["role"] for m in sent["messages"]] == ["user"]
        assert (sent["max_tokens"], sent["stop_sequences"]) == (64, ["END"])
        assert "temperature" not in sent and "top_p" not in sent
    else:
        assert sent["systemInstruction"]["parts"][0]["text"] == "Answer from the data."
        assert [c["role"] for c in sent["contents"]] == ["user"]
        config = sent["generationConfig"]
        assert (config["temperature"], config["topP"], config["maxOutputTokens"], config["stopSequences"]) == (
            0.2,
            0.9,
            64,
            ["END"],
        )


TOOL = common_pb2.Tool(
    name="get_credit_report",
    description="Credit report of a customer",
    parameters_json='{"type":"object","properties":{"client_id":{"type":"string"}},"required":["client_id"]}',
)
CALLS = [
    ("call_1", "get_credit_report", '{"client_id": "2480135", "bureaus": ["TransUnion", "Equifax"]}'),
    ("call_2", "get_credit_report", '{"client_id": "7654321"}'),
]


async def test_parallel_tool_calls_stream_as_deltas_that_reassemble_exactly(gateway):
    gateway.emulator.script = Script(text="", tool_calls=CALLS)
    events = await run(gateway, tools=[TOOL])
    calls: dict[int, dict] = {}
    for event in events:
        if event.WhichOneof("event") == "tool_call":
            delta = event.tool_call
            call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            call["id"] = call["id"] or delta.id
            call["name"] = call["name"] or delta.name
            call["arguments"] += delta.arguments
    got = [(c["id"], c["name"], orjson.loads(c["arguments"])) for _, c in sorted(calls.items())]
    assert got == [(i, n, orjson.loads(a)) for i, n, a in CALLS]
    assert events[-2].finish.reason == common_pb2.FINISH_REASON_TOOL_CALLS
    assert kinds(events)[-1] == "usage"


async def test_tool_results_go_back_in_the_providers_format(gateway):
    history = [
        common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content="credit of 2480135?"),
        common_pb2.ChatMessage(
            role=common_pb2.ROLE_ASSISTANT,
            tool_calls=[
                common_pb2.ToolCall(id="call_1", name="get_credit_report", arguments='{"client_id": "2480135"}')
            ],
        ),
        common_pb2.ChatMessage(role=common_pb2.ROLE_TOOL, tool_call_id="call_1", content='{"score": 712}'),
    ]
    request = llm_gateway_pb2.GenerateRequest(
        model=gateway.case.model, messages=history, tools=[TOOL], no_fallback=True
    )
    events = [e async for e in gateway.stub.Generate(request, timeout=10)]
    assert events[-2].finish.reason == common_pb2.FINISH_REASON_STOP
    sent = gateway.emulator.requests[-1]
    provider = gateway.case.provider
    if provider in ("openai", "groq"):
        assert sent["messages"][1]["tool_calls"][0]["function"]["name"] == "get_credit_report"
        assert sent["messages"][2] == {"role": "tool", "tool_call_id": "call_1", "content": '{"score": 712}'}
    elif provider == "anthropic":
        assert sent["messages"][1]["content"] == [
            {"type": "tool_use", "id": "call_1", "name": "get_credit_report", "input": {"client_id": "2480135"}}
        ]
        assert sent["messages"][2]["content"] == [
            {"type": "tool_result", "tool_use_id": "call_1", "content": '{"score": 712}'}
        ]
    else:
        assert sent["contents"][1]["parts"][0]["functionCall"]["args"] == {"client_id": "2480135"}
        assert sent["contents"][2]["parts"][0]["functionResponse"] == {
            "id": "call_1",
            "name": "get_credit_report",
            "response": {"score": 712},
        }


@pytest.mark.parametrize(
    ("finish", "reason"),
    [("length", common_pb2.FINISH_REASON_LENGTH), ("content_filter", common_pb2.FINISH_REASON_CONTENT_FILTER)],
)
async def test_finish_reasons_map_to_openais(gateway, finish, reason):
    # Each emulator says it in its API's words: max_tokens / MAX_TOKENS,
    # refusal / SAFETY / content_filter.
    gateway.emulator.script = Script(text=REPLY, finish=finish)
    events = await run(gateway, max_tokens=5)
    assert events[-2].finish.reason == reason


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (429, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (500, grpc.StatusCode.UNAVAILABLE),
        (503, grpc.StatusCode.UNAVAILABLE),
        (400, grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
async def test_errors_before_the_first_token_are_statuses(gateway, status, code):
    gateway.emulator.script = Script(status=status)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await run(gateway)
    assert caught.value.code() == code
    assert gateway.emulator.api_key not in (caught.value.details() or "")


async def test_retry_after_is_honoured_before_retrying(gateway):
    gateway.emulator.queue = [Script(status=429, retry_after="0.3")]
    started = asyncio.get_running_loop().time()
    events = await run(gateway)
    assert asyncio.get_running_loop().time() - started >= 0.3
    assert "".join(e.delta for e in events if e.WhichOneof("event") == "delta") == REPLY
    assert len(gateway.emulator.requests) == 2


@pytest.mark.parametrize("fault", ["cut", "malformed"])
async def test_a_failure_after_tokens_ends_with_an_error_event(gateway, fault):
    gateway.emulator.script = Script(
        text=REPLY, cut_after=4 if fault == "cut" else None, malformed_after=4 if fault == "malformed" else None
    )
    events = await run(gateway)
    assert kinds(events)[0] == "delta" and kinds(events)[-1] == "error" and "finish" not in kinds(events)
    assert events[-1].error.code == "UNAVAILABLE"
    assert gateway.chain.counters[gateway.case.provider].failures_mid_stream == 1


async def test_slow_first_token_within_the_deadline_is_fine(gateway):
    gateway.emulator.script = Script(text=REPLY, first_token_delay_s=0.3)
    events = await run(gateway)
    assert events[-2].finish.reason == common_pb2.FINISH_REASON_STOP


async def test_a_hanging_provider_runs_into_the_callers_deadline(gateway):
    gateway.emulator.script = Script(hang=True)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        [e async for e in gateway.stub.Generate(generate_request(gateway.case.model), timeout=0.5)]
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    for _ in range(100):  # the upstream request is closed, not left hanging
        if gateway.emulator.disconnects:
            break
        await asyncio.sleep(0.02)
    assert gateway.emulator.disconnects == 1


async def test_cancel_closes_the_upstream_stream(gateway):
    gateway.emulator.script = Script(text=REPLY, chunk_delay_s=0.05)
    call = gateway.stub.Generate(generate_request(gateway.case.model), timeout=10)
    assert (await call.read()).WhichOneof("event") == "delta"
    call.cancel()
    for _ in range(100):
        if gateway.emulator.disconnects:
            break
        await asyncio.sleep(0.02)
    assert gateway.emulator.disconnects == 1 and gateway.emulator.completed_streams == 0
