"""AccessLedger: a service's records of the customers it looked at, on
their way to the audit service (AuditService.RecordAccess), off the hot
path through an Outbox: queued before the data is answered, retried while
the audit service is away, drained on shutdown. Who, tenant, why and the
request id come from the call being served."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import grpc
from tilores_x.v1 import audit_pb2, audit_pb2_grpc

from services.runtime.customer_access import CustomerAccess
from services.runtime.moment_wire import seconds_of, timestamp_of
from services.runtime.outbox import Outbox, RetryLater
from services.runtime.principal import PRINCIPAL, PURPOSE
from services.runtime.request_context import REQUEST_ID
from services.runtime.spool import Spool

log = logging.getLogger("access")
RETRY_ON = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}
)
DRAIN_S = 5.0
# What one RecordAccess call carries: the audit service takes 1,000 records.
MAX_RECORDS_PER_CALL = 1000
MAX_POSTS_PER_CALL = 100


def access_message(entry: CustomerAccess) -> audit_pb2.AccessRecord:
    return audit_pb2.AccessRecord(
        at=timestamp_of(entry.at or None),  # 0: not recorded yet
        who=entry.who,
        tenant=entry.tenant or None,
        recorded_by=entry.recorded_by,
        entity_id=entry.entity_id,
        action=entry.action,
        field_kinds=list(entry.field_kinds),
        completion_id=entry.completion_id or None,
        request_id=entry.request_id or None,
    )


def access_of(message: audit_pb2.AccessRecord) -> CustomerAccess:
    return CustomerAccess(
        who=message.who,
        entity_id=message.entity_id,
        action=message.action,
        field_kinds=tuple(message.field_kinds),
        tenant=message.tenant,
        completion_id=message.completion_id,
        request_id=message.request_id,
        recorded_by=message.recorded_by,
        at=seconds_of(message.at),
    )


# Records wait this long for others before a call goes: a call per many
# turns under load for a record on file 50 ms later (on disk meanwhile).
SEND_LINGER_S = 0.05


def _encoded(post: list[CustomerAccess]) -> bytes:
    return audit_pb2.RecordAccessRequest(records=[access_message(e) for e in post]).SerializeToString()


def _decoded(payload: bytes) -> list[CustomerAccess]:
    return [access_of(record) for record in audit_pb2.RecordAccessRequest.FromString(payload).records]


class AccessLedger:
    def __init__(self, audit: audit_pb2_grpc.AuditServiceStub, capacity: int = 100_000, spool: Spool | None = None):
        """With a `spool`, records wait on disk until the audit service has
        them, and what a killed process left is sent when it starts again."""
        self._audit = audit
        self.outbox: Outbox[list[CustomerAccess]] = Outbox(
            self._send,
            name="access_records",
            capacity=capacity,
            senders=2,
            batch=MAX_POSTS_PER_CALL,
            spool=spool,
            encode=_encoded,
            decode=_decoded,
            linger_s=SEND_LINGER_S,
        )
        self.outbox.recover()

    def record(self, entity_ids: Iterable[str], action: str, field_kinds: Iterable[str] = ()) -> None:
        """One record per customer, for the call being served; never waits."""
        principal = PRINCIPAL.get()
        kinds = tuple(sorted(set(field_kinds)))
        entries = [
            CustomerAccess(
                who=principal.who if principal is not None else "anonymous",
                entity_id=entity_id,
                action=action,
                field_kinds=kinds,
                tenant=principal.tenant if principal is not None else "",
                completion_id=PURPOSE.get(),
                request_id=REQUEST_ID.get(),
            )
            for entity_id in dict.fromkeys(entity_ids)
            if entity_id
        ]
        if entries:
            self.outbox.post(entries)

    async def _send(self, posts: list[list[CustomerAccess]]) -> None:
        """Every post that piled up, in calls of at most MAX_RECORDS_PER_CALL
        records; a retry sends them all again, and the log writes a record
        of a request it already holds no second time (AccessLog.append)."""
        entries = [entry for post in posts for entry in post]
        for start in range(0, len(entries), MAX_RECORDS_PER_CALL):
            chunk = entries[start : start + MAX_RECORDS_PER_CALL]
            request = audit_pb2.RecordAccessRequest(records=[access_message(e) for e in chunk])
            try:
                await self._audit.RecordAccess(request, timeout=2.0)
            except grpc.aio.AioRpcError as error:
                if error.code() in RETRY_ON:
                    raise RetryLater(error.code().name) from None
                log.error("access.refused", extra={"fields": {"code": error.code().name, "records": len(chunk)}})
                raise

    async def close(self) -> None:
        await self.outbox.drain(DRAIN_S)
