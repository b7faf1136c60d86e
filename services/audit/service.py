"""AuditService servicer: appends access records (stamped with the
verified service that sent them) and answers queries. Who looked is the
record's own `who` only from a caller granted `principals.forward` (it
records for the principals it serves); anyone else records as itself."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

import grpc
from tilores_x.v1 import audit_pb2, audit_pb2_grpc

from services.audit.access_log import MAX_LIMIT, AccessLog, AccessQuery, page_cursor, page_token
from services.runtime.access import FORWARD_SCOPE, Grants
from services.runtime.access_ledger import access_message, access_of
from services.runtime.faults import InvalidArgument
from services.runtime.identity import CALLER
from services.runtime.principal import Principal

MAX_RECORDS = 1000


class AuditService(audit_pb2_grpc.AuditServiceServicer):
    def __init__(self, log: AccessLog, grants: Grants | None = None):
        self._log = log
        self._grants = grants

    async def RecordAccess(
        self, request: audit_pb2.RecordAccessRequest, context: grpc.aio.ServicerContext
    ) -> audit_pb2.RecordAccessResponse:
        if len(request.records) > MAX_RECORDS:
            raise InvalidArgument(f"records: at most {MAX_RECORDS} in one request", field="records")
        entries = [access_of(r) for r in request.records]
        for n, entry in enumerate(entries):
            problem = entry.problem()
            if problem:
                raise InvalidArgument(f"records[{n}].{problem}", field=f"records[{n}].{problem.split()[0].rstrip(':')}")
        caller = CALLER.get()
        # Who touched the data is the verified caller, not what it says.
        recorded_by = caller.name if caller is not None else ""
        if caller is not None and self._grants is not None and not self._grants.allows(caller, FORWARD_SCOPE):
            own = Principal.of_caller(caller.name)
            entries = [replace(entry, who=own.who, tenant=own.tenant) for entry in entries]
        appended = await asyncio.to_thread(self._log.append, entries, recorded_by)
        return audit_pb2.RecordAccessResponse(appended=appended)

    async def QueryAccess(
        self, request: audit_pb2.QueryAccessRequest, context: grpc.aio.ServicerContext
    ) -> audit_pb2.QueryAccessResponse:
        if request.limit < 0 or request.limit > MAX_LIMIT:
            raise InvalidArgument(f"limit: 1 to {MAX_LIMIT} (0: 100)", field="limit")
        if request.since < 0 or request.until < 0:
            raise InvalidArgument("since and until are seconds since the epoch", field="since")
        query = AccessQuery(
            entity_id=request.entity_id,
            who=request.who,
            completion_id=request.completion_id,
            since=request.since,
            until=request.until,
            limit=request.limit,
            older_than=page_cursor(request.page_token),
        )
        page = await asyncio.to_thread(self._log.query, query)
        return audit_pb2.QueryAccessResponse(
            records=[access_message(r) for r in page.records],
            truncated=page.truncated,
            next_page_token=page_token(page.older_than) if page.older_than else "",
        )


class AuditComponent:
    def __init__(self, log: AccessLog, grants: Grants | None = None):
        self.log = log
        self.grants = grants

    def register(self, server: grpc.aio.Server) -> Sequence[str]:
        audit_pb2_grpc.add_AuditServiceServicer_to_server(AuditService(self.log, self.grants), server)
        return [audit_pb2.DESCRIPTOR.services_by_name["AuditService"].full_name]

    async def close(self) -> None:
        self.log.close()
