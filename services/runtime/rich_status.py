"""Rich gRPC statuses (google.rpc via grpcio-status): a domain fault as a
status with BadRequest and RetryInfo details on the way out, and those
details read back from a failed call on the way in."""

from __future__ import annotations

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from services.runtime.faults import Fault

# A status travels in HTTP/2 trailers, which peers cap (grpc: 16 KiB in all);
# a message that echoes a huge input is cut rather than turned into a
# RESOURCE_EXHAUSTED about metadata size.
MAX_MESSAGE_CHARS = 1024


def _cut(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 3] + "..."


def fault_status(fault: Fault) -> grpc.Status:
    """The gRPC status for a fault, with BadRequest / RetryInfo details."""
    message = _cut(fault.message)
    details = []
    if fault.field:
        bad_request = error_details_pb2.BadRequest(
            field_violations=[error_details_pb2.BadRequest.FieldViolation(field=_cut(fault.field), description=message)]
        )
        details.append(bad_request)
    if fault.retry_after_s is not None:
        delay = duration_pb2.Duration()
        delay.FromMilliseconds(int(fault.retry_after_s * 1000))
        details.append(error_details_pb2.RetryInfo(retry_delay=delay))
    status = status_pb2.Status(code=code_pb2.Code.Value(fault.code), message=message)
    for detail in details:
        status.details.add().Pack(detail)
    return rpc_status.to_status(status)


def status_details(error: grpc.aio.AioRpcError) -> tuple[str | None, float | None]:
    """The field a failed call names (BadRequest) and its retry hint in
    seconds (RetryInfo); None for what it does not carry."""
    param = None
    retry_after = None
    rich = rpc_status.from_call(error) if error.trailing_metadata() else None
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
    return param, retry_after


def has_rich_status(error: grpc.aio.AioRpcError) -> bool:
    """False for a transport failure, whose text is grpc's own."""
    return any(key == "grpc-status-details-bin" for key, _ in error.trailing_metadata() or ())
