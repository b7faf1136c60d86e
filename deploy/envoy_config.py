"""Generate the edge Envoy's config from the topology:
`python -m deploy.envoy_config --topology deploy/topology.yaml --out build/envoy.yaml`.

- REST listener: /v1/* and /health -> the ASGI gateway (HTTP/1.1).
- gRPC listener: /tilores_x.v1.<Service>/* -> that service (HTTP/2);
  grpc.health.v1 and reflection of one service with header `x-mesh-service`.
- Streaming routes have no route timeout (it would cut every stream after
  15 s), an idle timeout above the worst time to first token and a hard cap.
- Retries only on connect failure, refused stream and UNAVAILABLE, which
  Envoy sees only before the first message: tokens are never replayed.
- A flood guard per listener (token bucket): 429 with Retry-After on REST,
  RESOURCE_EXHAUSTED on gRPC. Envoy's own REST replies (no healthy gateway,
  overflow, flood guard, unknown path) are OpenAI error JSON, so a chat
  client parses every error the same way.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from deploy.certificates import MOUNTED, IssuedCertificate
from deploy.topology import ServiceSpec, Topology, topology_for_command
from services.runtime.identity import TRUST_DOMAIN, spiffe_id
from services.runtime.request_context import ROUTE_HEADER

HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER_FILTER = {
    "name": "envoy.filters.http.router",
    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
}
HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
# Envoy drops an idle connection to the REST gateway before the gateway does
# (its keep-alive is gateway.__main__.KEEP_ALIVE_S, 75 s). Were it the other
# way round, a request Envoy sends on a connection the gateway is closing
# would be a 503 "connection termination" to a client that did nothing wrong.
REST_UPSTREAM_IDLE_S = 60
# Envoy counts the TLS handshake in a connection's connect timeout. HTTP/1.1
# opens a connection per concurrent request, so a burst of a thousand new
# streams is a thousand handshakes queued on one Python process: seconds,
# not the milliseconds of a gRPC peer's one HTTP/2 connection. A host that
# is down is found by the health checks and outlier detection, not by this.
REST_CONNECT_TIMEOUT_S = 10
# The gateway names each answer's route by its template
# (`/v1/credit-report/{identifier}`) in ROUTE_HEADER; the REST listener logs
# that and never the path, which may hold what a client typed (an e-mail, a
# phone number, a name). A reply Envoy makes itself (429, 503, an unknown
# path) logs no route.


def _access_log(listener: str) -> list[dict]:
    """One JSON line per request. gRPC paths are method names; REST paths
    are logged as their route only."""
    where = {"route": f"%RESP({ROUTE_HEADER.upper()})%"} if listener == "rest" else {"path": "%PATH(NQ:ORIG_OR_PATH)%"}
    return [
        {
            "name": "envoy.access_loggers.stdout",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
                "log_format": {
                    "json_format": {
                        "ts": "%START_TIME%",
                        "service": "envoy",
                        "event": "access",
                        "listener": listener,
                        "method": "%REQ(:METHOD)%",
                        **where,
                        "status": "%RESPONSE_CODE%",
                        "grpc_status": "%GRPC_STATUS%",
                        "flags": "%RESPONSE_FLAGS%",
                        "details": "%RESPONSE_CODE_DETAILS%",
                        "duration_ms": "%DURATION%",
                        "bytes_sent": "%BYTES_SENT%",
                        "upstream": "%UPSTREAM_HOST%",
                        "request_id": "%REQ(X-REQUEST-ID)%",
                        "caller": "%DOWNSTREAM_PEER_URI_SAN%",  # the client certificate's id; "-" without
                    }
                },
            },
        }
    ]


# A retry goes to another replica than the ones that failed the request.
OTHER_HOST = {
    "retry_host_predicate": [
        {
            "name": "envoy.retry_host_predicates.previous_hosts",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
            },
        }
    ],
    "host_selection_retry_max_attempts": 5,
}
# A host that vanishes answers nothing (no refusal), so a request on a
# connection to it waits with no error. Each upstream connection is probed:
# TCP keepalive after 2 s without a packet, 2 probes 1 s apart (the peer's
# kernel answers them however busy the process is), and on HTTP/2 a PING
# every 2 s that must be answered within 2 s. A request written to a
# connection whose host has just vanished is never acknowledged, and TCP
# would retransmit it for many minutes: TCP_USER_TIMEOUT ends the connection
# once sent data has waited 4 s for an acknowledgement (a connect too). A
# dead upstream is found within about 4 s, and requests on it end in an
# error rather than waiting for the stream idle timeout; the gRPC channels
# between services do the same (services/runtime/channels.py). Health
# checks every second take a vanished host out of the balancing within
# about 3 s (two missed checks of 1 s each).
DEAD_PEER_PROBES = {"keepalive_time": 2, "keepalive_interval": 1, "keepalive_probes": 2}
UNACKED_LIMIT_MS = 4_000
UNACKED_LIMIT = {"level": 6, "name": 18, "int_value": UNACKED_LIMIT_MS, "state": "STATE_PREBIND"}  # TCP_USER_TIMEOUT
DEAD_PEER_PING_S = 2
DEAD_PEER_PING_TIMEOUT_S = 2
HEALTH_CHECK_INTERVAL_S = 1

# The REST routes that ask a model and change nothing but records.
MODEL_PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")

RETRY_BEFORE_FIRST_MESSAGE = {
    "retry_on": "connect-failure,refused-stream,unavailable",
    "num_retries": 2,
    "retry_back_off": {"base_interval": "0.05s", "max_interval": "0.5s"},
    **OTHER_HOST,
}


def _address(port: int, host: str = "127.0.0.1") -> dict:
    return {"socket_address": {"address": host, "port_value": port}}


TLS_SOCKET = "envoy.transport_sockets.tls"
TLS_TYPES = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."


def _tls_files(tls: IssuedCertificate) -> dict:
    return {
        "tls_certificates": [
            {"certificate_chain": {"filename": str(tls.cert_file)}, "private_key": {"filename": str(tls.key_file)}}
        ],
        "tls_params": {"tls_minimum_protocol_version": "TLSv1_2"},
    }


def _upstream_tls(spec: ServiceSpec, tls: IssuedCertificate) -> dict:
    """TLS to a service: Envoy shows its certificate (the gRPC services
    require it) and accepts only the service's own (its SPIFFE id, signed by
    the mesh CA)."""
    return {
        "name": TLS_SOCKET,
        "typed_config": {
            "@type": TLS_TYPES + "UpstreamTlsContext",
            "common_tls_context": {
                **_tls_files(tls),
                "alpn_protocols": ["h2"] if spec.protocol == "grpc" else ["http/1.1"],
                "validation_context": {
                    "trusted_ca": {"filename": str(tls.ca_file)},
                    "match_typed_subject_alt_names": [
                        {"san_type": "URI", "matcher": {"exact": spiffe_id("service", spec.name)}}
                    ],
                },
            },
        },
    }


def _downstream_tls(tls: IssuedCertificate) -> dict:
    """TLS on the gRPC listener: a client certificate is checked against the
    mesh CA when shown (a forged one fails the handshake) but not required,
    so a caller without one hears UNAUTHENTICATED from the service."""
    return {
        "name": TLS_SOCKET,
        "typed_config": {
            "@type": TLS_TYPES + "DownstreamTlsContext",
            "require_client_certificate": False,
            "common_tls_context": {
                **_tls_files(tls),
                "alpn_protocols": ["h2"],
                "validation_context": {"trusted_ca": {"filename": str(tls.ca_file)}},
            },
        },
    }


def _cluster(spec: ServiceSpec, endpoints: list[tuple[str, int]], dns: bool, tls: IssuedCertificate | None) -> dict:
    cluster: dict = {
        "name": spec.name,
        # In Kubernetes the headless Service resolves to every ready pod;
        # Envoy re-resolves it every 5 s and balances per request.
        "type": "STRICT_DNS" if dns else "STATIC",
        **({"dns_lookup_family": "V4_ONLY"} if dns else {}),
        "connect_timeout": "2s" if spec.protocol == "grpc" else f"{REST_CONNECT_TIMEOUT_S}s",
        "lb_policy": "LEAST_REQUEST",
        "load_assignment": {
            "cluster_name": spec.name,
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": _address(port, host)}} for host, port in endpoints]}
            ],
        },
        "circuit_breakers": _circuit_breakers(spec),
        "upstream_connection_options": {"tcp_keepalive": DEAD_PEER_PROBES},
        "upstream_bind_config": {"socket_options": [UNACKED_LIMIT]},
        # A host whose health checks fail gets no new requests; the
        # connections it holds are left to the keepalive above, which tells
        # a dead host (no answer) from a busy one (answers the probes).
        "outlier_detection": {
            "consecutive_5xx": 5,
            "consecutive_gateway_failure": 3,
            "enforcing_consecutive_gateway_failure": 100,
            "interval": "10s",
            "base_ejection_time": "30s",
            "max_ejection_percent": 50,
        },
    }
    if spec.protocol == "grpc":
        cluster["typed_extension_protocol_options"] = _http2_options()
    else:
        cluster["typed_extension_protocol_options"] = _http1_options()
    if tls is not None:
        cluster["transport_socket"] = _upstream_tls(spec, tls)
    cluster["health_checks"] = [_health_check(spec)]
    return cluster


def _http1_options() -> dict:
    return {
        HTTP_OPTIONS: {
            "@type": f"type.googleapis.com/{HTTP_OPTIONS}",
            "common_http_protocol_options": {"idle_timeout": f"{REST_UPSTREAM_IDLE_S}s"},
            "explicit_http_config": {"http_protocol_options": {}},
        }
    }


def _circuit_breakers(spec: ServiceSpec) -> dict:
    # The 1,024 default would cap concurrent token streams per cluster.
    requests = 10000 if spec.streaming else 4096
    # Over HTTP/1.1 every open request holds a connection of its own, and
    # waits as pending while it is made.
    connections = 1024 if spec.protocol == "grpc" else requests
    return {
        "thresholds": [
            {
                "priority": "DEFAULT",
                "max_connections": connections,
                "max_pending_requests": connections,
                "max_requests": requests,
                "max_retries": 16,
                "retry_budget": {"budget_percent": {"value": 20.0}, "min_retry_concurrency": 3},
                "track_remaining": True,
            }
        ]
    }


def _http2_options() -> dict:
    return {
        HTTP_OPTIONS: {
            "@type": f"type.googleapis.com/{HTTP_OPTIONS}",
            # Connections end after 10 min so new pods get their share.
            "common_http_protocol_options": {"idle_timeout": "300s", "max_connection_duration": "600s"},
            "explicit_http_config": {
                "http2_protocol_options": {
                    "max_concurrent_streams": 1024,
                    "initial_stream_window_size": 1048576,
                    "initial_connection_window_size": 16777216,
                    "connection_keepalive": {
                        "interval": f"{DEAD_PEER_PING_S}s",
                        "timeout": f"{DEAD_PEER_PING_TIMEOUT_S}s",
                    },
                }
            },
        }
    }


def _health_check(spec: ServiceSpec) -> dict:
    """A gRPC service is checked on its readiness; the REST gateway on
    /health/ready (its own state: no check may wait on a peer, or one
    vanished peer would fail every replica's check at once)."""
    check: dict = {
        "timeout": "1s",
        "interval": f"{HEALTH_CHECK_INTERVAL_S}s",
        "no_traffic_interval": f"{HEALTH_CHECK_INTERVAL_S}s",
        "unhealthy_threshold": 2,
        "healthy_threshold": 1,
    }
    if spec.protocol == "grpc":
        check["grpc_health_check"] = {"service_name": "readiness"}
    else:
        check["http_health_check"] = {"path": "/health/ready"}
    return check


def _stream_route(cluster: str, topology: Topology, streaming: bool) -> dict:
    cap = f"{topology.envoy.max_stream_duration_s}s"
    if streaming:
        return {
            "cluster": cluster,
            "timeout": "0s",
            "idle_timeout": f"{topology.envoy.stream_idle_timeout_s}s",
            "max_stream_duration": {"max_stream_duration": cap, "grpc_timeout_header_max": cap},
            "retry_policy": RETRY_BEFORE_FIRST_MESSAGE,
        }
    return {
        "cluster": cluster,
        "timeout": "30s",
        "max_stream_duration": {"grpc_timeout_header_max": "30s"},
        "retry_policy": RETRY_BEFORE_FIRST_MESSAGE,
    }


def _rate_limit_filter(name: str, topology: Topology) -> dict:
    """One bucket per listener and Envoy process: a guard against floods,
    not a tenant quota (N Envoys admit N times the rate)."""
    envoy = topology.envoy
    everyone = {"numerator": 100, "denominator": "HUNDRED"}
    return {
        "name": "envoy.filters.http.local_ratelimit",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
            "stat_prefix": f"{name}_flood_guard",
            "token_bucket": {
                "max_tokens": envoy.rate_limit_burst,
                "tokens_per_fill": envoy.rate_limit_rps,
                "fill_interval": "1s",
            },
            "filter_enabled": {"runtime_key": f"{name}_flood_guard.enabled", "default_value": everyone},
            "filter_enforced": {"runtime_key": f"{name}_flood_guard.enforced", "default_value": everyone},
            # The bucket refills every second.
            "response_headers_to_add": [
                {"header": {"key": "retry-after", "value": "1"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
            ],
            # gRPC callers see RESOURCE_EXHAUSTED, which no route retries.
            "rate_limited_as_resource_exhausted": True,
        },
    }


def _openai_error(status_filter: dict, message: str, kind: str, code: str | None) -> dict:
    return {
        "filter": {"status_code_filter": status_filter},
        "body_format_override": {
            "json_format": {"error": {"message": message, "type": kind, "param": None, "code": code}},
            "content_type": "application/json",
        },
    }


def _status(op: str, code: int) -> dict:
    return {
        "comparison": {"op": op, "value": {"default_value": code, "runtime_key": f"local_reply.{op.lower()}_{code}"}}
    }


# Envoy's own replies on the REST listener, in the gateway's error shape
# (gateway/openai_errors.py); the first matching mapper wins. The gateway's
# own responses are not local replies and pass through untouched.
OPENAI_LOCAL_REPLIES = {
    "mappers": [
        _openai_error(
            _status("EQ", 429),
            "Too many requests reach this endpoint right now; retry after a second.",
            "rate_limit_error",
            "rate_limit_exceeded",
        ),
        _openai_error(
            _status("EQ", 503),
            "The service is unavailable right now; please retry shortly.",
            "api_error",
            "unavailable",
        ),
        _openai_error(_status("EQ", 504), "The request timed out.", "timeout_error", "deadline_exceeded"),
        _openai_error(_status("EQ", 408), "The request timed out.", "timeout_error", "deadline_exceeded"),
        _openai_error(
            _status("EQ", 404), "Invalid URL (%REQ(:METHOD)% %REQ(:PATH)%)", "invalid_request_error", "unknown_url"
        ),
        _openai_error(_status("GE", 500), "%LOCAL_REPLY_BODY%", "api_error", None),
        _openai_error(_status("GE", 400), "%LOCAL_REPLY_BODY%", "invalid_request_error", None),
    ]
}


def _health_filter() -> dict:
    """`GET /ready` on the REST listener answers from Envoy itself: 200, or
    503 once the listeners drain, so a load balancer and the readiness probe
    stop sending before the pod goes away (the admin port is localhost-only)."""
    return {
        "name": "envoy.filters.http.health_check",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck",
            "pass_through_mode": False,
            "headers": [{"name": ":path", "string_match": {"exact": "/ready"}}],
        },
    }


# One identity or none: a client certificate the mesh CA signed that names
# more than one URI, or a URI that is not one well-formed SPIFFE id of the
# mesh (`…/client/a;URI=…/client/b`), is refused at Envoy before any route,
# as the services refuse it too (services/runtime/identity.py).
ONE_IDENTITY_LUA = """
function envoy_on_request(handle)
  local tls = handle:streamInfo():downstreamSslConnection()
  if tls == nil or not tls:peerCertificatePresented() then
    return
  end
  local uris = tls:uriSanPeerCertificate()
  if #uris == 1 and string.match(uris[1], "^spiffe://%s/[a-z]+/[a-z0-9][a-z0-9_.-]*$") ~= nil then
    return
  end
  handle:respond({[":status"] = "200", ["content-type"] = "application/grpc", ["grpc-status"] = "16",
    ["grpc-message"] = "a client certificate must name exactly one SPIFFE id of the mesh"}, "")
end
"""


def _one_identity_filter() -> dict:
    return {
        "name": "envoy.filters.http.lua",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
            "default_source_code": {"inline_string": ONE_IDENTITY_LUA % TRUST_DOMAIN.replace("-", "%-")},
        },
    }


def _listener(
    name: str, address: dict, routes: list[dict], topology: Topology, tls: IssuedCertificate | None = None
) -> dict:
    filters = [_rate_limit_filter(name, topology), ROUTER_FILTER]
    if name == "rest":
        filters.insert(0, _health_filter())  # `/ready` answers even while the guard limits
    elif tls is not None:
        filters.insert(0, _one_identity_filter())
    return {
        "name": name,
        "address": address,
        # `drain_listeners?inboundonly` drains listeners marked inbound.
        "traffic_direction": "INBOUND",
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": HCM,
                            "stat_prefix": name,
                            "codec_type": "AUTO",
                            "stream_idle_timeout": f"{topology.envoy.stream_idle_timeout_s * 2}s",
                            "request_headers_timeout": "10s",
                            "drain_timeout": "10s",
                            "access_log": _access_log(name),
                            # Only Envoy says who the caller is: whatever a
                            # client sent as x-forwarded-client-cert is replaced.
                            "forward_client_cert_details": "SANITIZE_SET" if tls is not None else "SANITIZE",
                            **({"set_current_client_cert_details": {"uri": True}} if tls is not None else {}),
                            **({"local_reply_config": OPENAI_LOCAL_REPLIES} if name == "rest" else {}),
                            "route_config": {
                                "name": name,
                                "virtual_hosts": [{"name": name, "domains": ["*"], "routes": routes}],
                            },
                            "http_filters": filters,
                        },
                    }
                ],
                **({"transport_socket": _downstream_tls(tls)} if tls is not None else {}),
            }
        ],
    }


def _overload_manager() -> dict:
    """Bounds open client connections (Envoy has no limit by default)."""
    return {
        "resource_monitors": [
            {
                "name": "envoy.resource_monitors.global_downstream_max_connections",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3."
                    "DownstreamConnectionsConfig",
                    "max_active_downstream_connections": 50000,
                },
            }
        ]
    }


# What Envoy's gRPC port also forwards to the service an `x-mesh-service`
# header names: health, process info and reflection.
SERVICE_ADMIN_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/tilores_x.v1.ProcessService/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)


def _rest_routes(topology: Topology) -> list[dict]:
    rest = topology.rest_service
    rest_routes = [
        {"match": {"prefix": "/v1/"}, "route": _stream_route(rest.name, topology, True)},
        {"match": {"path": "/health"}, "route": {"cluster": rest.name, "timeout": "5s"}},
        # Liveness too; /health/detailed stays on the gateway's own port (an SRE's).
        {"match": {"path": "/health/ready"}, "route": {"cluster": rest.name, "timeout": "5s"}},
        {"match": {"path": "/health/live"}, "route": {"cluster": rest.name, "timeout": "5s"}},
        {"match": {"path": "/openapi.json"}, "route": {"cluster": rest.name, "timeout": "5s"}},
        # The operations console: a page and its assets; its data comes from /v1/ with an admin key.
        {"match": {"path": "/console"}, "route": {"cluster": rest.name, "timeout": "5s"}},
        {"match": {"prefix": "/console/"}, "route": {"cluster": rest.name, "timeout": "5s"}},
    ]
    rest_routes[0]["route"]["retry_policy"] = {
        "retry_on": "connect-failure,refused-stream",
        "num_retries": 2,
        **OTHER_HOST,
    }
    # A model call whose gateway vanished before answering (its connection
    # ends with no response begun) goes to another replica: a chat asked
    # twice costs a second look, which the access log records, where an
    # error would have the client ask again anyway. Nothing that changes
    # state (prompts, feedback, keys) is sent twice; a stream that has
    # begun is never replayed (Envoy retries only before the response).
    model_routes = [
        {
            "match": {"path": path},
            "route": {
                **_stream_route(rest.name, topology, True),
                "retry_policy": {"retry_on": "connect-failure,refused-stream,reset", "num_retries": 2, **OTHER_HOST},
            },
        }
        for path in MODEL_PATHS
    ]
    return [*model_routes, *rest_routes]


def _grpc_routes(topology: Topology) -> list[dict]:
    grpc_routes = []
    for spec in topology.services.values():
        if spec.protocol != "grpc":
            continue
        grpc_routes.append(
            {
                "match": {"prefix": f"/{spec.grpc_service}/", "grpc": {}},
                "route": _stream_route(spec.name, topology, spec.streaming),
            }
        )
        for prefix in SERVICE_ADMIN_PREFIXES:
            grpc_routes.append(
                {
                    "match": {
                        "prefix": prefix,
                        "grpc": {},
                        "headers": [{"name": "x-mesh-service", "string_match": {"exact": spec.name}}],
                    },
                    "route": {"cluster": spec.name, "timeout": "0s" if "Reflection" in prefix else "5s"},
                }
            )
    return grpc_routes


def _endpoints(
    spec: ServiceSpec, topology: Topology, ports: dict[str, list[int]], kubernetes: bool
) -> list[tuple[str, int]]:
    """Where a service's replicas listen: its headless Service in Kubernetes,
    else each replica's port on loopback."""
    if kubernetes:
        return [(f"{spec.k8s_name}-headless.{topology.kubernetes.namespace}.svc.cluster.local", spec.port)]
    return [("127.0.0.1", port) for port in ports.get(spec.name) or [spec.port]]


def render_envoy_config(
    topology: Topology,
    ports: dict[str, list[int]] | None = None,
    listener_ports: dict[str, int] | None = None,
    *,
    kubernetes: bool = False,
    tls: IssuedCertificate | None = None,
) -> dict:
    """Envoy bootstrap for the topology.

    Local (default): STATIC clusters on 127.0.0.1; `ports` gives each
    service's replica ports (default: its topology port) and
    `listener_ports` Envoy's own (`rest`, `grpc`, `admin`; 0 lets the kernel
    choose). With `kubernetes`: listeners on every interface, STRICT_DNS
    clusters on each service's headless Service; admin stays on localhost;
    TLS with the certificate mounted from the Envoy's Secret. `tls`: Envoy's
    certificate in the mesh (None: plaintext, for Envoy on its own)."""
    if kubernetes:
        tls = MOUNTED
    listener_ports = listener_ports or {}
    listen_host = "0.0.0.0" if kubernetes else "127.0.0.1"
    return {
        "admin": {"address": _address(listener_ports.get("admin", topology.envoy.admin_port))},
        "overload_manager": _overload_manager(),
        "static_resources": {
            "listeners": [
                _listener(
                    "rest",
                    _address(listener_ports.get("rest", topology.envoy.rest_port), listen_host),
                    _rest_routes(topology),
                    topology,
                ),
                _listener(
                    "grpc",
                    _address(listener_ports.get("grpc", topology.envoy.grpc_port), listen_host),
                    _grpc_routes(topology),
                    topology,
                    tls,
                ),
            ],
            "clusters": [
                _cluster(spec, _endpoints(spec, topology, ports or {}, kubernetes), kubernetes, tls)
                for spec in topology.services.values()
            ],
        },
    }


class ConfigDumper(yaml.SafeDumper):
    """YAML for people: shared pieces written out in full (no `&id001`
    anchors), multi-line strings as literal blocks."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


ConfigDumper.add_representer(str, _text)


def dump(config: dict) -> str:
    return yaml.dump(config, Dumper=ConfigDumper, sort_keys=False, width=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--topology", default="deploy/topology.yaml")
    parser.add_argument("--out", required=True)
    parser.add_argument("--kubernetes", action="store_true", help="STRICT_DNS clusters on the headless Services")
    args = parser.parse_args(argv)
    topology = topology_for_command(args.topology)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(dump(render_envoy_config(topology, kubernetes=args.kubernetes)))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
