"""TiloresDataService over gRPC, the same tests on both backends: the
embedded store, and the Tilores API client talking to the Tilores-compatible
server (over an identical store)."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.json_format import MessageToDict
from tilores_x.v1 import tilores_data_pb2, tilores_data_pb2_grpc

from services.runtime.server import start_server
from services.tilores_data.entity_source import EmbeddedEntitySource
from services.tilores_data.sample import generate_customers
from services.tilores_data.service import TiloresDataComponent
from services.tilores_data.store import EmbeddedEntityStore
from services.tilores_data.tilores_client import TiloresGraphQLClient
from tests.integration.conftest import free_port_settings
from tests.integration.grpc_errors import field_violations
from tests.integration.tilores_api import CLIENT_ID, CLIENT_SECRET, tilores_api

DEMO_EMAIL = "edwina.hawthorne@example.com"


@pytest.fixture(params=["embedded", "tilores"])
async def service(request, tmp_path):
    customers = list(generate_customers(60))
    async with tilores_api(tmp_path, customers=60) as api:
        if request.param == "embedded":
            store = EmbeddedEntityStore(str(tmp_path / "embedded.db"))
            store.add_entities((c.entity_id, c.records) for c in customers)
            source = EmbeddedEntitySource(store)
        else:
            source = TiloresGraphQLClient(api.url, api.token_url, CLIENT_ID, CLIENT_SECRET)
            await source.schema()
        running = await start_server(TiloresDataComponent(source), free_port_settings("tilores_data"))
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
        stub = tilores_data_pb2_grpc.TiloresDataServiceStub(channel)
        stub.customers = customers
        try:
            yield stub
        finally:
            await channel.close()
            await running.stop(0)


def records_of(entity) -> list[dict]:
    return [MessageToDict(r.data) for r in entity.records]


@pytest.mark.parametrize(
    "parameters",
    [
        {"EMAIL": "Edwina.Hawthorne@EXAMPLE.com"},
        {"CLIENT_ID": "2480135"},
        {"PHONE_NUMBER": "+1 (312) 555-0142"},
        {"FIRST_NAME": "Edwina", "LAST_NAME": "Hawthorne"},
    ],
)
async def test_each_identifier_finds_the_whole_customer(service, parameters):
    reply = await service.SearchEntities(tilores_data_pb2.SearchEntitiesRequest(parameters=parameters))
    [entity] = reply.entities
    demo = service.customers[0]
    assert entity.id == demo.entity_id
    assert [r.id for r in entity.records] == [r["id"] for r in demo.records]
    assert records_of(entity)[0]["EMAIL"] == DEMO_EMAIL
    assert entity.hits and entity.hit_score == 1.0


async def test_record_id_search_and_lookups(service):
    demo = service.customers[0]
    contact = demo.records[0]["id"]
    reply = await service.SearchEntities(tilores_data_pb2.SearchEntitiesRequest(parameters={"id": contact}))
    assert [e.id for e in reply.entities] == [demo.entity_id]
    by_id = await service.GetEntity(tilores_data_pb2.GetEntityRequest(entity_id=demo.entity_id))
    by_record = await service.GetEntityByRecord(tilores_data_pb2.GetEntityByRecordRequest(record_id=contact))
    assert by_id.entity == by_record.entity
    assert records_of(by_id.entity)[-1]["CREDIT_RESPONSE"]["CREDIT_BUREAU"] in {"TransUnion", "Equifax", "Experian"}


async def test_no_match_is_an_empty_answer(service):
    reply = await service.SearchEntities(
        tilores_data_pb2.SearchEntitiesRequest(parameters={"EMAIL": "nobody@example.com"})
    )
    assert list(reply.entities) == []


async def test_injection_looking_values_are_plain_data(service):
    for value in ("' OR '1'='1", 'x"}) { __schema { types { name } } } #', "1; DROP TABLE records"):
        reply = await service.SearchEntities(
            tilores_data_pb2.SearchEntitiesRequest(parameters={"EMAIL": value, "CLIENT_ID": value})
        )
        assert list(reply.entities) == []
    reply = await service.SearchEntities(tilores_data_pb2.SearchEntitiesRequest(parameters={"EMAIL": DEMO_EMAIL}))
    assert len(reply.entities) == 1


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (tilores_data_pb2.SearchEntitiesRequest(parameters={"SALESFORCE_ID": "003x"}), "parameters.SALESFORCE_ID"),
        (tilores_data_pb2.SearchEntitiesRequest(), "parameters"),
        (tilores_data_pb2.SearchEntitiesRequest(parameters={"EMAIL": " "}), "parameters"),
        (tilores_data_pb2.SearchEntitiesRequest(parameters={"FIRST_NAME": "Edwina"}), "parameters.LAST_NAME"),
        (tilores_data_pb2.SearchEntitiesRequest(parameters={"CLIENT_ID": "1"}, page=-1), "page"),
    ],
)
async def test_bad_searches_name_the_field(service, request_, field):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await service.SearchEntities(request_)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == [field]


async def test_unknown_ids_are_not_found(service):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await service.GetEntity(tilores_data_pb2.GetEntityRequest(entity_id="no-such-entity"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND and field_violations(caught.value) == ["entity_id"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await service.GetEntityByRecord(tilores_data_pb2.GetEntityByRecordRequest(record_id="003nosuchrecord000"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_paging(service):
    first = service.customers[1].records[0]
    names = {"FIRST_NAME": first["FIRST_NAME"], "LAST_NAME": first["LAST_NAME"]}
    everyone = await service.SearchEntities(tilores_data_pb2.SearchEntitiesRequest(parameters=names))
    page = await service.SearchEntities(tilores_data_pb2.SearchEntitiesRequest(parameters=names, page=1, page_size=1))
    assert [e.id for e in page.entities] == [everyone.entities[0].id]
