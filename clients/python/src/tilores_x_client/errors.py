"""What a failed call raises: a few named exceptions, each with the gRPC
status, the server's message, the field it named (google.rpc.BadRequest)
and how long it asked the caller to wait (google.rpc.RetryInfo)."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


class MeshError(Exception):
    """A call the mesh refused or could not answer."""

    def __init__(
        self, code: grpc.StatusCode, message: str, field: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{code.name}: {message}" + (f" (field: {field})" if field else ""))
        self.code = code
        self.message = message
        self.field = field
        self.retry_after = retry_after


class InvalidArgument(MeshError):
    """The request is wrong; `field` names the part to blame. Do not retry as it is."""


class NotFound(MeshError):
    """Nobody or nothing by that name: a customer, a model, a prompt, a completion."""


class NotAllowed(MeshError):
    """No verified certificate (UNAUTHENTICATED) or one without the scope (PERMISSION_DENIED)."""


class RateLimited(MeshError):
    """Over a limit (RESOURCE_EXHAUSTED); wait `retry_after` seconds when it is set."""


class Unavailable(MeshError):
    """The mesh could not answer (UNAVAILABLE), after the client's own retries; nothing was done."""


class DeadlineExceeded(MeshError):
    """No whole answer within the call's deadline; a streamed answer may have been cut."""


_BY_CODE: dict[grpc.StatusCode, type[MeshError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.UNAUTHENTICATED: NotAllowed,
    grpc.StatusCode.PERMISSION_DENIED: NotAllowed,
    grpc.StatusCode.RESOURCE_EXHAUSTED: RateLimited,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
}


def mesh_error(
    code: grpc.StatusCode, message: str, field: str | None = None, retry_after: float | None = None
) -> MeshError:
    """The named exception for a status."""
    return _BY_CODE.get(code, MeshError)(code, message, field, retry_after)


def from_rpc_error(error: grpc.aio.AioRpcError) -> MeshError:
    """The named exception for a failed call, with the details it carries."""
    field = None
    retry_after = None
    status = rpc_status.from_call(error) if error.trailing_metadata() else None
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            if bad_request.field_violations:
                field = bad_request.field_violations[0].field
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            retry_after = info.retry_delay.ToMilliseconds() / 1000
    return mesh_error(error.code(), error.details() or "", field, retry_after)


def from_stream_error(code: str, message: str) -> MeshError:
    """The named exception for a failure the answer stream reported after it began."""
    try:
        status = grpc.StatusCode[code]
    except KeyError:
        status = grpc.StatusCode.UNKNOWN
    return mesh_error(status, message)
