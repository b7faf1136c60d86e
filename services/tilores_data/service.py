"""TiloresDataService servicer: maps RPCs to the entity source (the embedded
store or the Tilores API)."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from tilores_x.v1 import common_pb2, tilores_data_pb2, tilores_data_pb2_grpc

from services.runtime.faults import InvalidArgument, NotFound
from services.tilores_data.entity_source import EntitySource
from services.tilores_data.search_parameters import search_parameters
from services.tilores_data.store import EntityView


def entity_message(view: EntityView) -> common_pb2.Entity:
    entity = common_pb2.Entity(id=view.id, edges=view.edges, hit_score=view.hit_score)
    for data in view.records:
        record = entity.records.add(id=str(data.get("id", "")), source=str(data.get("SOURCE") or ""))
        record.data.update(data)
    for record_id, rules in view.hits.items():
        entity.hits.add(record_id=record_id, rule_ids=rules)
    return entity


MAX_PAGE_SIZE = 1000


class TiloresDataService(tilores_data_pb2_grpc.TiloresDataServiceServicer):
    def __init__(self, source: EntitySource):
        self._source = source

    async def SearchEntities(self, request, context):
        if request.page < 0:
            raise InvalidArgument("page must be 0 (all) or a 1-based page number", field="page")
        if request.page_size < 0:
            raise InvalidArgument("page_size must not be negative", field="page_size")
        if request.page_size > MAX_PAGE_SIZE:
            raise InvalidArgument(f"page_size must be at most {MAX_PAGE_SIZE}", field="page_size")
        parameters = search_parameters(request.parameters, self._source.known_parameters)
        views = await self._source.search(parameters, page=request.page, page_size=request.page_size)
        return tilores_data_pb2.SearchEntitiesResponse(entities=[entity_message(v) for v in views])

    async def GetEntity(self, request, context):
        if not request.entity_id:
            raise InvalidArgument("entity_id is required", field="entity_id")
        view = await self._source.entity(request.entity_id)
        if view is None:
            raise NotFound(f"no entity with id {request.entity_id!r}", field="entity_id")
        return tilores_data_pb2.GetEntityResponse(entity=entity_message(view))

    async def GetEntityByRecord(self, request, context):
        if not request.record_id:
            raise InvalidArgument("record_id is required", field="record_id")
        view = await self._source.entity_by_record(request.record_id)
        if view is None:
            raise NotFound(f"no record with id {request.record_id!r}", field="record_id")
        return tilores_data_pb2.GetEntityByRecordResponse(entity=entity_message(view))


class TiloresDataComponent:
    def __init__(self, source: EntitySource):
        self.source = source

    def register(self, server: grpc.aio.Server) -> Sequence[str]:
        tilores_data_pb2_grpc.add_TiloresDataServiceServicer_to_server(TiloresDataService(self.source), server)
        return [tilores_data_pb2.DESCRIPTOR.services_by_name["TiloresDataService"].full_name]

    async def close(self) -> None:
        await self.source.close()
