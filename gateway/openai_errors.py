"""OpenAI error JSON and the mapping from gRPC statuses to it."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, field
from typing import Any

import grpc
import orjson

from services.runtime.rich_status import has_rich_status, status_details

# gRPC status -> (HTTP status, OpenAI error type)
STATUS_MAP = {
    grpc.StatusCode.INVALID_ARGUMENT: (400, "invalid_request_error"),
    grpc.StatusCode.FAILED_PRECONDITION: (400, "invalid_request_error"),
    grpc.StatusCode.OUT_OF_RANGE: (400, "invalid_request_error"),
    grpc.StatusCode.UNAUTHENTICATED: (401, "authentication_error"),
    grpc.StatusCode.PERMISSION_DENIED: (403, "permission_error"),
    grpc.StatusCode.NOT_FOUND: (404, "invalid_request_error"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (429, "rate_limit_error"),
    grpc.StatusCode.CANCELLED: (499, "api_error"),
    grpc.StatusCode.UNAVAILABLE: (503, "api_error"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (504, "timeout_error"),
}


@dataclass(eq=False)
class OpenAIError(Exception):
    """An error the client sees as `{"error": {...}}` with an HTTP status."""

    status: int
    message: str
    _: KW_ONLY
    type: str = "invalid_request_error"
    param: str | None = None
    code: str | None = None
    retry_after_s: float | None = None
    # Sent with the error (rate-limit figures).
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def json(self) -> bytes:
        return orjson.dumps(self.body())


def from_status(
    code: grpc.StatusCode | str, message: str, param: str | None = None, retry_after_s: float | None = None
) -> OpenAIError:
    """The OpenAI error for a gRPC status (or its name), in one place for
    calls that failed, error events and batch items alike."""
    if isinstance(code, str):
        code = getattr(grpc.StatusCode, code, grpc.StatusCode.INTERNAL)
    status, kind = STATUS_MAP.get(code, (500, "api_error"))
    error_code = code.name.lower()
    if code == grpc.StatusCode.NOT_FOUND and param == "model":
        error_code = "model_not_found"
    return OpenAIError(
        status, message or code.name, type=kind, param=param, code=error_code, retry_after_s=retry_after_s
    )


def from_grpc(error: grpc.aio.AioRpcError) -> OpenAIError:
    """The OpenAI error for a gRPC failure, keeping the field it names."""
    code = error.code()
    message = error.details() or code.name
    param, retry_after = status_details(error)
    if code == grpc.StatusCode.UNAVAILABLE and not has_rich_status(error):
        # A transport failure: grpc's own text names internal addresses.
        message = "The service is unavailable right now; please retry shortly."
    return from_status(code, message, param, retry_after)


def stream_error_body(code: str, message: str) -> dict[str, Any]:
    """The error JSON that ends a stream that failed after it had started
    (framed by gateway/sse.py)."""
    kind = STATUS_MAP.get(getattr(grpc.StatusCode, code, None), (500, "api_error"))[1]
    return {"error": {"message": message or code, "type": kind, "param": None, "code": code.lower()}}
