"""Long-lived client channels to peer services."""

from __future__ import annotations

import json
from typing import Any

import grpc

from services.runtime.identity import member_host, mesh_tls
from services.runtime.limits import MAX_GRPC_MESSAGE_BYTES
from services.runtime.principal import PRINCIPAL, PRINCIPAL_HEADER, PURPOSE, PURPOSE_HEADER
from services.runtime.request_context import REQUEST_ID, REQUEST_ID_HEADER
from services.runtime.rpc_spans import client_interceptors

# Retry UNAVAILABLE before any response (a peer restarting or draining), and
# spread calls over every address a `dns:///` name resolves to.
_SERVICE_CONFIG = json.dumps(
    {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [
            {
                "name": [{}],
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "0.5s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ],
    }
)

# A peer whose host vanished answers nothing: calls on its connection would
# wait for their deadlines, and round_robin would keep picking it. A PING
# every 2 s, unanswered for 2 s, closes the connection (and sent data left
# unacknowledged as long does too: TCP_USER_TIMEOUT): calls on it fail
# UNAVAILABLE and are retried on another replica, and new calls go there.
KEEPALIVE_MS = 2_000
KEEPALIVE_TIMEOUT_MS = 2_000

CHANNEL_OPTIONS = (
    ("grpc.keepalive_time_ms", KEEPALIVE_MS),
    ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.tcp_user_timeout_ms", KEEPALIVE_MS + KEEPALIVE_TIMEOUT_MS),
    ("grpc.enable_retries", 1),
    ("grpc.service_config", _SERVICE_CONFIG),
    # grpc's defaults (1 s, then x1.6 up to 120 s) leave a restarted peer
    # unused for seconds after it answers; a reconnect attempt is one cheap
    # TCP connect, so try every 100 ms at first and at least twice a second.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
    ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_GRPC_MESSAGE_BYTES),
)


def open_channel(addr: str, peer: str) -> grpc.aio.Channel:
    """One channel per peer, opened at start-up and reused for every call,
    with this process's certificate when it has one, to a server that must
    prove it is `service/<peer>`; every call carries the request id, the
    principal and the purpose of the request being served."""
    interceptors = [_RequestIdUnaryUnary(), _RequestIdUnaryStream(), *client_interceptors()]
    tls = mesh_tls()
    if tls is None:
        return grpc.aio.insecure_channel(addr, options=CHANNEL_OPTIONS, interceptors=interceptors)
    # Mutual TLS: the peer proves it is the service meant (its certificate
    # names it), and this process proves who it is.
    options = (*CHANNEL_OPTIONS, ("grpc.ssl_target_name_override", member_host("service", peer)))
    return grpc.aio.secure_channel(addr, tls.channel_credentials(), options=options, interceptors=interceptors)


def _with_request_id(details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
    """The served request's id, principal and purpose travel on with every call."""
    request_id = REQUEST_ID.get()
    principal = PRINCIPAL.get()
    metadata = tuple(details.metadata or ())
    added = []
    if request_id and not any(key == REQUEST_ID_HEADER for key, _ in metadata):
        added.append((REQUEST_ID_HEADER, request_id))
    if principal is not None and not any(key == PRINCIPAL_HEADER for key, _ in metadata):
        added.append((PRINCIPAL_HEADER, principal.header()))
    purpose = PURPOSE.get()
    if purpose and not any(key == PURPOSE_HEADER for key, _ in metadata):
        added.append((PURPOSE_HEADER, purpose))
    if not added:
        return details
    return grpc.aio.ClientCallDetails(
        details.method,
        details.timeout,
        grpc.aio.Metadata(*metadata, *added),
        details.credentials,
        details.wait_for_ready,
    )


class _RequestIdUnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(_with_request_id(client_call_details), request)


class _RequestIdUnaryStream(grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(_with_request_id(client_call_details), request)
