"""TiloresDataService servicer: maps RPCs to the entity source (the embedded
store or the Tilores API) and the domain modules."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict
from tilores_x.v1 import tilores_data_pb2, tilores_data_pb2_grpc

from services.runtime.access_ledger import AccessLedger
from services.runtime.faults import Fault, InvalidArgument, NotFound
from services.runtime.limits import DEFAULT_SEARCH_CONCURRENCY, MAX_BATCH, MAX_SEARCH_CONCURRENCY
from services.tilores_data.credit_report import assess, bureau_summaries
from services.tilores_data.customer360 import RULE_REASONS, build_customer360
from services.tilores_data.entity_source import EntitySource
from services.tilores_data.field_catalog import ALL, FIELD_CATEGORIES, OTHER, describe_fields, pii_kind
from services.tilores_data.record_input import checked_records
from services.tilores_data.search_parameters import search_parameters
from services.tilores_data.store import EntityView
from services.tilores_data.wire import credit_report_message, customer360_message, entity_message, record_message

MAX_PAGE_SIZE = 1000


def field_kinds(records: Iterable[dict[str, Any]]) -> set[str]:
    """The kinds of personal data these records carry."""
    return {
        kind
        for record in records
        for name, value in record.items()
        if value not in (None, "") and (kind := pii_kind(name))
    }


class TiloresDataService(tilores_data_pb2_grpc.TiloresDataServiceServicer):
    def __init__(self, source: EntitySource, ledger: AccessLedger | None = None):
        self._source = source
        self._ledger = ledger

    def _looked_at(self, views: Sequence[EntityView], method: str, kinds: set[str] | None = None) -> None:
        """On record before the data leaves: who read which customers."""
        if self._ledger is not None and views:
            self._ledger.record(
                [v.id for v in views],
                f"TiloresDataService.{method}",
                field_kinds(r for v in views for r in v.records) if kinds is None else kinds,
            )

    async def _search(
        self,
        request: tilores_data_pb2.SearchEntitiesRequest,
        into: tilores_data_pb2.SearchEntitiesResponse,
        prefix: str = "",
    ) -> list[EntityView]:
        if request.page < 0:
            raise InvalidArgument("page must be 0 (all) or a 1-based page number", field=f"{prefix}page")
        if request.page_size < 0 or request.page_size > MAX_PAGE_SIZE:
            raise InvalidArgument(f"page_size must be 0..{MAX_PAGE_SIZE}", field=f"{prefix}page_size")
        try:
            parameters = search_parameters(request.parameters, self._source.known_parameters)
        except InvalidArgument as error:
            raise InvalidArgument(error.message, field=f"{prefix}{error.field}") from None
        views = await self._source.search(parameters, page=request.page, page_size=request.page_size)
        into.entities.extend(entity_message(v) for v in views)
        return views

    async def SearchEntities(self, request: Any, context: Any) -> tilores_data_pb2.SearchEntitiesResponse:
        reply = tilores_data_pb2.SearchEntitiesResponse()
        self._looked_at(await self._search(request, reply), "SearchEntities")
        return reply

    async def GetEntity(self, request: Any, context: Any) -> tilores_data_pb2.GetEntityResponse:
        if not request.entity_id:
            raise InvalidArgument("entity_id is required", field="entity_id")
        view = await self._source.entity(request.entity_id)
        if view is None:
            raise NotFound(f"no entity with id {request.entity_id!r}", field="entity_id")
        self._looked_at([view], "GetEntity")
        return tilores_data_pb2.GetEntityResponse(entity=entity_message(view))

    async def GetEntityByRecord(self, request: Any, context: Any) -> tilores_data_pb2.GetEntityByRecordResponse:
        if not request.record_id:
            raise InvalidArgument("record_id is required", field="record_id")
        view = await self._source.entity_by_record(request.record_id)
        if view is None:
            raise NotFound(f"no record with id {request.record_id!r}", field="record_id")
        self._looked_at([view], "GetEntityByRecord")
        return tilores_data_pb2.GetEntityByRecordResponse(entity=entity_message(view))

    async def _customer(self, request: Any) -> EntityView:
        ref = request.customer
        which = ref.WhichOneof("ref")
        if which is None or not getattr(ref, which):
            raise InvalidArgument("customer.entity_id or customer.record_id is required", field="customer")
        if which == "entity_id":
            view = await self._source.entity(ref.entity_id)
        else:
            view = await self._source.entity_by_record(ref.record_id)
        if view is None:
            raise NotFound(f"no customer with {which} {getattr(ref, which)!r}", field=f"customer.{which}")
        return view

    async def GetRelationships(self, request: Any, context: Any) -> tilores_data_pb2.GetRelationshipsResponse:
        view = await self._customer(request)
        self._looked_at([view], "GetRelationships")
        by_id = {str(r.get("id")): r for r in view.records}
        reply = tilores_data_pb2.GetRelationshipsResponse(entity_id=view.id)
        for edge in view.edges:
            a, b, rule = edge.rsplit(":", 2)
            relationship = reply.relationships.add(edge=edge, rule_id=rule, reason=RULE_REASONS.get(rule, rule))
            if a in by_id:
                relationship.record_a.CopyFrom(record_message(by_id[a]))
            if b in by_id:
                relationship.record_b.CopyFrom(record_message(by_id[b]))
        return reply

    async def GetCustomer360(self, request: Any, context: Any) -> tilores_data_pb2.GetCustomer360Response:
        view = await self._customer(request)
        self._looked_at([view], "GetCustomer360")
        return customer360_message(build_customer360(view))

    async def GetCreditReport(self, request: Any, context: Any) -> tilores_data_pb2.GetCreditReportResponse:
        view = await self._customer(request)
        self._looked_at([view], "GetCreditReport", {"credit"})
        summaries = bureau_summaries(view.records)
        return credit_report_message(view.id, summaries, assess(summaries))

    async def CheckBackend(self, request: Any, context: Any) -> tilores_data_pb2.CheckBackendResponse:
        started = time.perf_counter()
        try:
            await self._source.ping()
        except Exception as error:  # a probe reports every failure rather than raising it
            detail = f"{error.code}: {error.message}" if isinstance(error, Fault) else type(error).__name__
            return tilores_data_pb2.CheckBackendResponse(
                backend=self._source.backend,
                reachable=False,
                latency_ms=(time.perf_counter() - started) * 1000,
                detail=detail,
            )
        return tilores_data_pb2.CheckBackendResponse(
            backend=self._source.backend, reachable=True, latency_ms=(time.perf_counter() - started) * 1000
        )

    async def ListFields(self, request: Any, context: Any) -> tilores_data_pb2.ListFieldsResponse:
        category = "" if request.category == ALL else request.category
        if category and category not in (*FIELD_CATEGORIES, OTHER):
            raise InvalidArgument(
                f"unknown category {request.category!r}; one of {', '.join((ALL, *FIELD_CATEGORIES, OTHER))}",
                field="category",
            )
        carried: set[str] = set()
        if request.entity_id:
            view = await self._source.entity(request.entity_id)
            if view is None:
                raise NotFound(f"no entity with id {request.entity_id!r}", field="entity_id")
            carried = {k for r in view.records for k, v in r.items() if v not in (None, "")}
            self._looked_at([view], "ListFields", set())  # which fields a customer has, not their values
        schema = await self._source.schema()
        shares = await self._source.field_shares()
        reply = tilores_data_pb2.ListFieldsResponse()
        for field in describe_fields(schema):
            if category and field.category != category:
                continue
            info = reply.fields.add(
                name=field.name,
                category=field.category,
                type=field.type,
                present=field.name in carried,
                pii_kind=field.pii_kind,
            )
            if shares is not None:
                info.share = shares.get(field.name, 0.0)
        return reply

    async def BatchSearch(self, request: Any, context: Any) -> tilores_data_pb2.BatchSearchResponse:
        if not request.searches:
            raise InvalidArgument("searches must not be empty", field="searches")
        if len(request.searches) > MAX_BATCH:
            raise InvalidArgument(
                f"at most {MAX_BATCH} searches per batch, got {len(request.searches)}", field="searches"
            )
        if not 0 <= request.concurrency <= MAX_SEARCH_CONCURRENCY:
            raise InvalidArgument(f"concurrency must be 0..{MAX_SEARCH_CONCURRENCY}", field="concurrency")
        gate = asyncio.Semaphore(request.concurrency or DEFAULT_SEARCH_CONCURRENCY)
        reply = tilores_data_pb2.BatchSearchResponse()
        results = [reply.results.add() for _ in request.searches]  # filled in place, in request order

        async def one(n: int, search: Any) -> None:
            async with gate:
                try:
                    self._looked_at(await self._search(search, results[n].response, f"searches[{n}]."), "BatchSearch")
                except Fault as fault:
                    results[n].error.CopyFrom(
                        tilores_data_pb2.BatchSearchError(
                            code=fault.code, message=fault.message, field=fault.field or ""
                        )
                    )

        await asyncio.gather(*(one(n, s) for n, s in enumerate(request.searches)))
        return reply

    async def SubmitRecords(self, request: Any, context: Any) -> tilores_data_pb2.SubmitRecordsResponse:
        records = checked_records([MessageToDict(r) for r in request.records], await self._source.schema())
        added = await self._source.submit(records)
        if self._ledger is not None:
            # The customers the records joined (or made), by what they wrote.
            written = [await self._source.entity_by_record(str(r["id"])) for r in records if r.get("id")]
            views = [v for v in written if v is not None]
            self._looked_at(views, "SubmitRecords", field_kinds(records))
        return tilores_data_pb2.SubmitRecordsResponse(records_added=added)


class TiloresDataComponent:
    def __init__(
        self,
        source: EntitySource,
        ledger: AccessLedger | None = None,
        on_close: Callable[[], Awaitable[None]] | None = None,
    ):
        self.source = source
        self.ledger = ledger
        self._on_close = on_close

    def register(self, server: grpc.aio.Server) -> Sequence[str]:
        tilores_data_pb2_grpc.add_TiloresDataServiceServicer_to_server(
            TiloresDataService(self.source, self.ledger), server
        )
        return [tilores_data_pb2.DESCRIPTOR.services_by_name["TiloresDataService"].full_name]

    async def close(self) -> None:
        if self.ledger is not None:
            await self.ledger.close()
        if self._on_close is not None:
            await self._on_close()
        await self.source.close()
