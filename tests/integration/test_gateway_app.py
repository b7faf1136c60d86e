"""The ASGI gateway against real in-process gRPC services."""

import orjson
import pytest

from gateway.app import GatewayApp
from gateway.settings import GatewaySettings
from tests.integration.asgi_call import call_asgi

KEY = "sk-integration"
QUESTION = b'{"model":"offline","stream":true,"messages":[{"role":"user","content":"status of client id 2480135"}]}'


async def call_app(app, method: str, path: str, body: bytes = b"", key: str | None = KEY, hang_up_after_s=None):
    status, _, payload = await call_asgi(app, method, path, body, key=key, hang_up_after_s=hang_up_after_s)
    return status, payload


async def make_app(mesh, **overrides) -> GatewayApp:
    settings = GatewaySettings(
        router_addr=mesh.addr("router"),
        llm_gateway_addr=mesh.addr("llm_gateway"),
        api_keys=(KEY,),
        chat_timeout_s=20.0,
        **overrides,
    )
    app = GatewayApp(settings)
    await app.startup()
    return app


async def test_pings_keep_the_stream_alive_until_the_first_token(slow_mesh):
    app = await make_app(slow_mesh, heartbeat_s=0.005)
    status, payload = await call_app(app, "POST", "/v1/chat/completions", QUESTION)
    await app.shutdown()
    assert status == 200
    assert payload.startswith(b": ping\n\n")
    assert payload.endswith(b"data: [DONE]\n\n")
    events = [orjson.loads(e[6:]) for e in payload.split(b"\n\n") if e.startswith(b"data: {")]
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events if e["choices"])
    assert "Edwina Hawthorne" in text and "Account status: Active" in text


COMPLETION = b'{"model":"offline","stream":true,"max_tokens":400,"prompt":"status of client id 2480135"}'


@pytest.mark.parametrize(("path", "body"), [("/v1/chat/completions", QUESTION), ("/v1/completions", COMPLETION)])
async def test_every_stream_is_framed_alike_with_pings_and_no_proxy_buffering(slow_mesh, path, body):
    app = await make_app(slow_mesh, heartbeat_s=0.005)
    status, headers, payload = await call_asgi(app, "POST", path, body, key=KEY)
    await app.shutdown()
    assert status == 200
    assert (headers["content-type"], headers["x-accel-buffering"]) == ("text/event-stream; charset=utf-8", "no")
    assert payload.startswith(b": ping\n\n") and payload.endswith(b"data: [DONE]\n\n")
    events = [orjson.loads(e[6:]) for e in payload.split(b"\n\n") if e.startswith(b"data: {")]
    choices = [e["choices"][0] for e in events if e["choices"]]
    text = "".join(c.get("text") or c.get("delta", {}).get("content") or "" for c in choices)
    assert "Edwina Hawthorne" in text


async def test_router_down_is_503_without_internal_addresses(mesh):
    app = await make_app(mesh)
    await mesh.servers["router"].server.stop(0)
    status, payload = await call_app(app, "POST", "/v1/chat/completions", QUESTION)
    await app.shutdown()
    assert status == 503
    assert orjson.loads(payload) == {
        "error": {
            "message": "The service is unavailable right now; please retry shortly.",
            "type": "api_error",
            "param": None,
            "code": "unavailable",
        }
    }


async def test_readiness_follows_the_router_connection_without_asking_a_router(mesh):
    """What Envoy and the kubelet ask: a working connection to some router,
    known from the channel itself (a call could wait on a vanished router)."""
    app = await make_app(mesh)
    ready = await call_app(app, "GET", "/health/ready", key=None)
    await mesh.servers["router"].server.stop(0)
    gone = [await call_app(app, "GET", "/health/ready", key=None) for _ in range(3)]
    await app.shutdown()
    assert ready == (200, b'{"status":"ready"}')
    status, payload = gone[-1]
    assert status == 503 and orjson.loads(payload)["status"] == "unavailable", gone
    assert orjson.loads(payload)["router"] in ("TRANSIENT_FAILURE", "CONNECTING", "IDLE")


async def test_hang_up_ends_the_request_quietly(slow_mesh):
    app = await make_app(slow_mesh)
    status, payload = await call_app(app, "POST", "/v1/chat/completions", QUESTION, hang_up_after_s=0.2)
    await app.shutdown()
    assert status == 200
    assert b"[DONE]" not in payload  # cut short, and nothing pretends otherwise


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [("GET", "/v1/chat/completions", 405, "method_not_allowed"), ("POST", "/v1/nothing", 404, "unknown_url")],
)
async def test_wrong_routes(mesh, method, path, status, code):
    app = await make_app(mesh)
    got_status, payload = await call_app(app, method, path)
    await app.shutdown()
    assert (got_status, orjson.loads(payload)["error"]["code"]) == (status, code)
