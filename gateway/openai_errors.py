"""OpenAI error JSON and the mapping from gRPC statuses to it."""

from __future__ import annotations

import grpc
import orjson
from google.rpc import error_details_pb2
from grpc_status import rpc_status

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


class OpenAIError(Exception):
    """An error the client sees as `{"error": {...}}` with an HTTP status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        retry_after_s: float | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.retry_after_s = retry_after_s

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def json(self) -> bytes:
        return orjson.dumps(self.body())


def from_grpc(error: grpc.aio.AioRpcError) -> OpenAIError:
    """The OpenAI error for a gRPC failure, keeping the field it names."""
    code = error.code()
    status, kind = STATUS_MAP.get(code, (500, "api_error"))
    message = error.details() or code.name
    param = None
    retry_after = None
    rich = rpc_status.from_call(error) if error.trailing_metadata() else None
    if rich is None and code == grpc.StatusCode.UNAVAILABLE:
        # A transport failure: grpc's own text names internal addresses.
        message = "The service is unavailable right now; please retry shortly."
    for detail in rich.details if rich else ():
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            if bad.field_violations:
                param = bad.field_violations[0].field
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            retry_after = info.retry_delay.ToMilliseconds() / 1000
    error_code = code.name.lower()
    if code == grpc.StatusCode.NOT_FOUND and param == "model":
        error_code = "model_not_found"
    return OpenAIError(status, message, type=kind, param=param, code=error_code, retry_after_s=retry_after)


def stream_error_event(code: str, message: str) -> bytes:
    """The SSE event that ends a stream that failed after it had started."""
    kind = STATUS_MAP.get(getattr(grpc.StatusCode, code, None), (500, "api_error"))[1]
    body = {"error": {"message": message or code, "type": kind, "param": None, "code": code.lower()}}
    return b"data: " + orjson.dumps(body) + b"\n\n"
