"""The edge Envoy on its own, with nothing behind it: what a chat client or
an internal gRPC caller sees when Envoy answers itself. The gateway gone,
an unknown path and the flood guard all come as OpenAI error JSON that the
openai SDK parses; on the gRPC listener the guard is RESOURCE_EXHAUSTED."""

from __future__ import annotations

import http.client
import json
import socket
from dataclasses import replace

import grpc
import openai
import pytest
from tilores_x.v1 import cache_pb2, cache_pb2_grpc

from deploy.edge_envoy import EdgeEnvoy
from deploy.envoy_config import render_envoy_config
from deploy.topology import load_topology

pytestmark = pytest.mark.e2e

BURST = 4


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def edge(tmp_path):
    """A fresh Envoy per test (a fresh bucket): BURST requests at once, then
    one a second; every service's port is closed."""
    topology = load_topology("deploy/topology.yaml")
    topology = replace(topology, envoy=replace(topology.envoy, rate_limit_rps=1, rate_limit_burst=BURST))
    closed = _closed_port()
    config = render_envoy_config(
        topology,
        ports={name: [closed] for name in topology.services},
        listener_ports={"rest": 0, "grpc": 0, "admin": 0},
    )
    envoy = EdgeEnvoy(config, tmp_path, tmp_path / "envoy.log", drain_time_s=1)
    envoy.start(30)
    yield envoy
    assert envoy.stop(10) == 0


def _request(envoy: EdgeEnvoy, method: str, path: str, body: bytes | None = None) -> tuple[int, dict, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", envoy.ports["rest"], timeout=10)
    try:
        headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-edge"}
        connection.request(method, path, body, headers)
        reply = connection.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    finally:
        connection.close()


def _client(envoy: EdgeEnvoy) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"http://127.0.0.1:{envoy.ports['rest']}/v1", api_key="sk-edge", max_retries=0)


QUESTION = [{"role": "user", "content": "What is the credit score of edwina.hawthorne@example.com?"}]


def test_no_gateway_behind_envoy_is_an_openai_503(edge):
    with pytest.raises(openai.InternalServerError) as caught:
        _client(edge).chat.completions.create(model="offline", messages=QUESTION)
    error = caught.value
    assert error.status_code == 503
    assert error.body == {
        "message": "The service is unavailable right now; please retry shortly.",
        "type": "api_error",
        "param": None,
        "code": "unavailable",
    }
    assert error.response.headers["content-type"] == "application/json"


def test_an_unknown_path_is_an_openai_404(edge):
    status, headers, body = _request(edge, "GET", "/v2/models")
    assert status == 404
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {
        "error": {
            "message": "Invalid URL (GET /v2/models)",
            "type": "invalid_request_error",
            "param": None,
            "code": "unknown_url",
        }
    }


def test_the_flood_guard_answers_429_with_retry_after(edge):
    statuses = [_request(edge, "GET", "/v1/models")[0] for _ in range(BURST)]
    assert statuses == [503] * BURST  # admitted, and no gateway answers
    with pytest.raises(openai.RateLimitError) as caught:
        _client(edge).models.list()
    error = caught.value
    assert error.status_code == 429
    assert error.response.headers["retry-after"] == "1"
    assert error.body == {
        "message": "Too many requests reach this endpoint right now; retry after a second.",
        "type": "rate_limit_error",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    # Envoy's own readiness answers even while the guard limits.
    assert _request(edge, "GET", "/ready")[0] == 200


def test_the_flood_guard_on_the_grpc_listener_is_resource_exhausted(edge):
    with grpc.insecure_channel(f"127.0.0.1:{edge.ports['grpc']}") as channel:
        stub = cache_pb2_grpc.CacheServiceStub(channel)
        codes = []
        for _ in range(BURST + 1):
            try:
                stub.Stats(cache_pb2.StatsRequest(), timeout=5)
            except grpc.RpcError as error:
                codes.append(error.code())
    assert codes[:BURST] == [grpc.StatusCode.UNAVAILABLE] * BURST
    assert codes[BURST] == grpc.StatusCode.RESOURCE_EXHAUSTED
