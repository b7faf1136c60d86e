"""The request id of the call being served, carried across hops in gRPC
metadata under `x-request-id`."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from contextvars import ContextVar

# A call's metadata as grpc gives it: (key, value) pairs.
Metadata = Iterable[tuple[str, str | bytes]]

REQUEST_ID_HEADER = "x-request-id"
# The REST route (its template) an answer came from: Envoy logs it instead
# of the path, which may hold what a client typed.
ROUTE_HEADER = "x-mesh-route"
REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="")


def new_request_id() -> str:
    return uuid.uuid4().hex


# Initial metadata of a streamed answer: how long the model provider took to
# its first chunk, so each hop can tell its own time from the model's, and
# the catalog model that answers (after any failover), which every chunk the
# client sees names.
PROVIDER_TTFT_HEADER = "x-provider-ttft-ms"
ANSWERING_MODEL_HEADER = "x-mesh-model"


def answering_model(metadata: Metadata | None) -> str:
    """The model named in a call's initial metadata; "" when absent."""
    for key, value in metadata or ():
        if key == ANSWERING_MODEL_HEADER:
            return value if isinstance(value, str) else value.decode()
    return ""


def provider_ttft_ms(metadata: Metadata | None) -> float:
    """The provider's time to first chunk from a call's initial metadata;
    0 when absent (an answer no model was asked for)."""
    for key, value in metadata or ():
        if key == PROVIDER_TTFT_HEADER:
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 0.0
