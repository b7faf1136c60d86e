"""One trace per chat request across every hop: the gateway's HTTP span,
the router, cache, tilores_data, optimizer and llm_gateway calls, the
GenAI span of the model call and the provider's HTTP request; collected by
an in-memory exporter from real servers on loopback."""

from __future__ import annotations

import asyncio

import grpc
import orjson
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from tilores_x.v1 import tilores_data_pb2, tilores_data_pb2_grpc

from gateway.app import GatewayApp
from gateway.settings import GatewaySettings
from services.runtime.channels import open_channel
from services.runtime.telemetry import instrument_http_clients
from tests.emulators.base import Script
from tests.emulators.openai_api import OpenAIEmulator
from tests.integration.asgi_call import call_asgi
from tests.integration.conftest import openai_providers, start_mesh, stop_mesh

KEY = "sk-tracing"
_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)  # once per process, as in a service's main()
    instrument_http_clients()
    return _EXPORTER


async def test_one_trace_id_across_every_hop(tmp_path, spans):
    emulator = OpenAIEmulator(
        Script(text="Edwina Hawthorne's account is active and her lowest latest score is 712.", chunk_delay_s=0.005)
    )
    await emulator.start()
    mesh = await start_mesh(tmp_path, providers=openai_providers(emulator))
    app = GatewayApp(
        GatewaySettings(
            router_addr=mesh.addr("router"),
            llm_gateway_addr=mesh.addr("llm_gateway"),
            optimizer_addr=mesh.addr("optimizer"),
            api_keys=(KEY,),
            chat_timeout_s=20.0,
        )
    )
    await app.startup()
    spans.clear()
    try:
        question = "What is the credit score of client id 2480135?"
        body = orjson.dumps(
            {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": question}]}
        )
        status, headers, payload = await call_asgi(app, "POST", "/v1/chat/completions", body, key=KEY)
        assert status == 200
        assert payload.endswith(b"data: [DONE]\n\n")
        assert float(headers["x-mesh-added-ms"]) >= 0

        def names() -> set[str]:
            return {s.name for s in spans.get_finished_spans()}

        # The turn's outcome reaches the optimizer just after the answer.
        for _ in range(100):
            if "tilores_x.v1.OptimizerService/RecordOutcomes" in names():
                break
            await asyncio.sleep(0.05)
    finally:
        await app.shutdown()
        await stop_mesh(mesh)
        await emulator.stop()

    finished = spans.get_finished_spans()
    roots = [s for s in finished if s.parent is None]
    assert [r.name for r in roots] == ["POST /v1/chat/completions"], [r.name for r in roots]
    trace_id = roots[0].context.trace_id
    assert {s.context.trace_id for s in finished} == {trace_id}

    server_spans = {s.name: s for s in finished if s.kind == SpanKind.SERVER}
    servers = {s.name for s in finished if s.kind == SpanKind.SERVER}
    for hop in (
        "tilores_x.v1.RouterService/Chat",
        "tilores_x.v1.CacheService/Get",
        "tilores_x.v1.TiloresDataService/SearchEntities",
        "tilores_x.v1.TiloresDataService/GetCustomer360",
        "tilores_x.v1.OptimizerService/GetPrompt",
        "tilores_x.v1.OptimizerService/RecordOutcomes",
        "tilores_x.v1.LlmGatewayService/Generate",
    ):
        assert hop in servers, (hop, sorted(servers))

    # The model call: one GenAI span, a child of llm_gateway's Generate, with
    # the provider's HTTP request beneath it.
    genai = [s for s in finished if s.name == "chat gpt-4o-mini"]
    assert len(genai) == 1
    llm = genai[0]
    assert llm.kind == SpanKind.CLIENT
    assert llm.parent.span_id == server_spans["tilores_x.v1.LlmGatewayService/Generate"].context.span_id
    attributes = dict(llm.attributes)
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert attributes["gen_ai.usage.input_tokens"] > 0
    assert attributes["gen_ai.usage.output_tokens"] > 0
    http = [s for s in finished if s.parent is not None and s.parent.span_id == llm.context.span_id]
    assert len(http) == 1 and http[0].kind == SpanKind.CLIENT
    assert http[0].attributes.get("http.request.method", http[0].attributes.get("http.method")) == "POST"
    # The provider saw the same trace in its `traceparent` header.
    assert f"{trace_id:032x}" in emulator.headers[-1]["traceparent"]

    # No span per token or per SSE event: the answer had many tokens, the
    # trace has one span per call.
    assert payload.count(b'"content"') > 2
    chat_spans = {s.kind: s for s in finished if s.name == "tilores_x.v1.RouterService/Chat"}
    assert set(chat_spans) == {SpanKind.CLIENT, SpanKind.SERVER}
    # The server span continues the caller's client span across the hop.
    assert chat_spans[SpanKind.SERVER].parent.span_id == chat_spans[SpanKind.CLIENT].context.span_id
    assert chat_spans[SpanKind.SERVER].parent.is_remote
    assert dict(chat_spans[SpanKind.SERVER].attributes) == {
        "rpc.system": "grpc",
        "rpc.service": "tilores_x.v1.RouterService",
        "rpc.method": "Chat",
        "rpc.grpc.status_code": 0,
    }
    assert not [s for s in finished if "send" in s.name.split()]


async def test_a_failed_call_is_an_error_for_the_caller_and_not_for_the_server(mesh, spans):
    spans.clear()
    channel = open_channel(mesh.addr("tilores_data"), "tilores_data")
    try:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await tilores_data_pb2_grpc.TiloresDataServiceStub(channel).SearchEntities(
                tilores_data_pb2.SearchEntitiesRequest(parameters={"SHOE_SIZE": "44"}), timeout=5
            )
    finally:
        await channel.close()
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    search = {s.kind: s for s in spans.get_finished_spans() if s.name.endswith("/SearchEntities")}
    assert set(search) == {SpanKind.CLIENT, SpanKind.SERVER}
    assert search[SpanKind.CLIENT].status.status_code == StatusCode.ERROR
    # INVALID_ARGUMENT is the caller's mistake, not a failure of the server.
    assert search[SpanKind.SERVER].status.status_code == StatusCode.UNSET
    for span in search.values():
        assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]


async def test_health_checks_make_no_spans(mesh, spans):
    spans.clear()
    channel = mesh.channel("router")
    reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    assert not [s for s in spans.get_finished_spans() if "Health" in s.name]
