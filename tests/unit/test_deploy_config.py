"""Topology validation and the generated Envoy config (checked by Envoy)."""

import re
import subprocess

import pytest

from deploy.edge_envoy import envoy_binary
from deploy.envoy_config import HTTP_OPTIONS, dump, render_envoy_config
from deploy.topology import TopologyError, load_topology, parse_topology
from gateway.__main__ import KEEP_ALIVE_S
from services.llm_gateway.catalog import CatalogError, ModelCatalog
from services.runtime.faults import NotFound


def test_shipped_topology_starts_peers_first():
    topology = load_topology("deploy/topology.yaml")
    order = topology.start_order()
    assert order.index("router") > max(order.index(p) for p in ("cache", "tilores_data", "optimizer", "llm_gateway"))
    assert order[-1] == "gateway"


BASE = """
envoy: {rest_port: 8080, grpc_port: 9090, admin_port: 9901}
services:
  router: {port: 1, grpc_service: tilores_x.v1.RouterService, peers: [cache]}
  cache: {port: 2, grpc_service: tilores_x.v1.CacheService}
  gateway: {port: 3, protocol: http, peers: [router]}
"""


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("port: 2,", "port: 70000,"), "services.cache.port"),
        (("peers: [cache]", "peers: [nothing]"), "services.router.peers"),
        (("rest_port: 8080", "rest_port: eighty"), "envoy.rest_port"),
        (("protocol: http", "protocol: smtp"), "services.gateway.protocol"),
        (("grpc_service: tilores_x.v1.CacheService", "grpc_servic: x"), "services.cache.grpc_servic"),
        (("peers: [cache]", "peers: [gateway]"), "dependency cycle"),
        (("rest_port: 8080", "rest_port: 8080, rate_limit_rps: 0"), "envoy.rate_limit_rps"),
        (("rest_port: 8080", "rest_port: 8080, rate_limit_rps: 10, rate_limit_burst: 5"), "envoy.rate_limit_burst"),
        (("port: 2,", "port: 2, secrets: [{name: Bad_Name}],"), "services.cache.secrets[0].name"),
        (("port: 2,", "port: 2, secrets: [{name: keys, optional: maybe}],"), "services.cache.secrets[0].optional"),
        (("port: 2,", "port: 2, secrets: [{name: keys, mount: /x}],"), "services.cache.secrets[0].mount"),
        (("port: 2,", "port: 2, redis: yes please,"), "services.cache.redis"),
    ],
)
def test_bad_topology_names_the_field(change, message):
    with pytest.raises(TopologyError, match=re.escape(message)):
        parse_topology(BASE.replace(*change))


def test_secrets_and_redis_use_are_read_from_the_topology():
    topology = parse_topology(
        BASE.replace("port: 2,", "port: 2, redis: true, secrets: [{name: cache-keys, optional: true}],")
    )
    cache = topology.services["cache"]
    assert cache.redis and cache.secrets == (("cache-keys", True),)
    assert not topology.services["router"].redis and topology.services["router"].secrets == ()


def test_generated_config_passes_envoy_validation(tmp_path):
    config = render_envoy_config(load_topology("deploy/topology.yaml"))
    path = tmp_path / "envoy.yaml"
    path.write_text(dump(config))
    result = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(path), "--disable-hot-restart"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_streaming_routes_never_time_out_and_retry_only_before_the_first_message():
    config = render_envoy_config(load_topology("deploy/topology.yaml"))
    listeners = {listener["name"]: listener for listener in config["static_resources"]["listeners"]}

    def routes(name):
        hcm = listeners[name]["filter_chains"][0]["filters"][0]["typed_config"]
        return hcm["route_config"]["virtual_hosts"][0]["routes"]

    by_prefix = {r["match"].get("prefix"): r["route"] for r in routes("grpc") if "headers" not in r["match"]}
    for service in ("RouterService", "LlmGatewayService"):
        route = by_prefix[f"/tilores_x.v1.{service}/"]
        assert route["timeout"] == "0s"
        assert route["idle_timeout"] == "120s"
        assert route["retry_policy"]["retry_on"] == "connect-failure,refused-stream,unavailable"
        assert route["retry_policy"]["retry_host_predicate"][0]["name"] == "envoy.retry_host_predicates.previous_hosts"
    rest = {r["match"].get("path", r["match"].get("prefix")): r["route"] for r in routes("rest")}
    assert rest["/v1/"]["timeout"] == "0s"
    assert rest["/v1/"]["retry_policy"]["retry_on"] == "connect-failure,refused-stream"
    # A model call whose gateway vanished before answering is asked of another.
    for path in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings"):
        assert rest[path]["timeout"] == "0s"
        assert rest[path]["retry_policy"]["retry_on"] == "connect-failure,refused-stream,reset"
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
    assert clusters["router"]["circuit_breakers"]["thresholds"][0]["max_requests"] == 10000
    assert config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"


def test_envoy_closes_an_idle_connection_to_the_gateway_before_the_gateway_does():
    # Otherwise a request sent as the gateway closes the connection is a 503.
    config = render_envoy_config(load_topology("deploy/topology.yaml"))
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
    options = clusters["gateway"]["typed_extension_protocol_options"][HTTP_OPTIONS]
    assert "http_protocol_options" in options["explicit_http_config"]
    idle = options["common_http_protocol_options"]["idle_timeout"]
    assert idle.endswith("s") and 0 < float(idle[:-1]) < KEEP_ALIVE_S


def test_a_burst_of_streams_to_the_rest_gateway_is_not_cut_by_connection_limits():
    # HTTP/1.1: a connection and a TLS handshake per open stream.
    config = render_envoy_config(load_topology("deploy/topology.yaml"))
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
    limits = clusters["gateway"]["circuit_breakers"]["thresholds"][0]
    assert limits["max_connections"] == limits["max_pending_requests"] == limits["max_requests"] == 10000
    assert clusters["gateway"]["connect_timeout"] == "10s" and clusters["router"]["connect_timeout"] == "2s"


def test_model_catalog_rejects_bad_entries_by_name():
    with pytest.raises(CatalogError, match=r"models\[1\]\.provider"):
        ModelCatalog.from_yaml("models:\n  - {id: a, provider: offline}\n  - {id: b}\n")
    with pytest.raises(CatalogError, match="duplicate id 'a'"):
        ModelCatalog.from_yaml("models:\n  - {id: a, provider: offline}\n  - {id: a, provider: openai}\n")
    catalog = ModelCatalog.from_yaml("models:\n  - {id: a, provider: offline}\n")
    with pytest.raises(NotFound) as caught:
        catalog.get("b")
    assert caught.value.field == "model"
