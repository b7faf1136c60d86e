"""What a gRPC error tells its caller beyond the code."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


def field_violations(error: grpc.aio.AioRpcError) -> list[str]:
    """The fields a google.rpc.BadRequest detail names."""
    status = rpc_status.from_call(error)
    fields = []
    for detail in status.details if status else ():
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            fields += [v.field for v in bad.field_violations]
    return fields
