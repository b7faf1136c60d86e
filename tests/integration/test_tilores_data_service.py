"""TiloresDataService over gRPC, the same tests on both backends: the
embedded store, and the Tilores API client talking to the Tilores-compatible
server (over an identical store)."""

from __future__ import annotations

import grpc
import orjson
import pytest
from google.protobuf.struct_pb2 import Struct
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
    return [orjson.loads(r.data_json) for r in entity.records]


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


def customer(entity_id: str = "", record_id: str = "") -> tilores_data_pb2.CustomerRef:
    return (
        tilores_data_pb2.CustomerRef(entity_id=entity_id)
        if entity_id
        else tilores_data_pb2.CustomerRef(record_id=record_id)
    )


def without_credit(customers):
    return next(c for c in customers if not any("CREDIT_RESPONSE" in r for r in c.records))


async def test_customer_360_cites_a_record_for_every_value(service):
    demo = service.customers[0]
    reply = await service.GetCustomer360(tilores_data_pb2.GetCustomer360Request(customer=customer(demo.entity_id)))
    assert reply.customer_name == "Edwina Hawthorne"
    sections = {s.name: {f.label: f for f in s.facts} for s in reply.sections}
    assert [s.name for s in reply.sections][:3] == ["identity", "contact", "status"]
    assert sections["contact"]["Email"].value == DEMO_EMAIL
    assert sections["contact"]["Phone (E.164)"].value == "+13125550142"
    assert sections["status"]["Account status"].value == "Active"
    assert sections["identity"]["Date of birth"].pii_kind == "date_of_birth"
    scores = {
        label.split(" credit score")[0]: f.value for label, f in sections["credit"].items() if " credit score" in label
    }
    assert scores == {"TransUnion": "712", "Equifax": "705", "Experian": "698"}
    record_ids = {r["id"] for r in demo.records}
    assert all(f.record_id in record_ids for s in reply.sections for f in s.facts)
    assert reply.insights.primary_identifier == "client id 2480135"
    assert reply.insights.has_email and reply.insights.has_phone and reply.insights.has_financial_data
    assert 0 < reply.insights.data_quality <= 1 and "date_of_birth" in reply.insights.pii_kinds
    by_record = await service.GetCustomer360(
        tilores_data_pb2.GetCustomer360Request(customer=customer(record_id=demo.records[0]["id"]))
    )
    assert by_record == reply


async def test_credit_report_and_assessment(service):
    demo = service.customers[0]
    reply = await service.GetCreditReport(tilores_data_pb2.GetCreditReportRequest(customer=customer(demo.entity_id)))
    latest = {b.bureau: b.latest.value for b in reply.bureaus}
    assert latest == {"Equifax": 705, "Experian": 698, "TransUnion": 712}
    assert all(len(b.scores) == 2 and b.HasField("score_change") for b in reply.bureaus)
    assert all(b.HasField("utilization_percent") for b in reply.bureaus)
    assert reply.assessment.status == tilores_data_pb2.CREDIT_STATUS_SCORED
    assert (reply.assessment.score, reply.assessment.band, reply.assessment.risk_level) == (698, "Good", "Moderate")
    assert any("Utilization" in advice for advice in reply.assessment.recommendations)


async def test_no_score_on_file_is_insufficient_data_never_a_number(service):
    plain = without_credit(service.customers)
    reply = await service.GetCreditReport(tilores_data_pb2.GetCreditReportRequest(customer=customer(plain.entity_id)))
    assert list(reply.bureaus) == []
    assert reply.assessment.status == tilores_data_pb2.CREDIT_STATUS_INSUFFICIENT_DATA
    assert (reply.assessment.score, reply.assessment.band, reply.assessment.risk_level) == (0, "", "")
    view = await service.GetCustomer360(tilores_data_pb2.GetCustomer360Request(customer=customer(plain.entity_id)))
    credit = next(s for s in view.sections if s.name == "credit")
    assert [f.value for f in credit.facts] == ["insufficient data: no bureau score on file"]


async def test_relationships_carry_the_records_they_join(service):
    demo = service.customers[0]
    reply = await service.GetRelationships(tilores_data_pb2.GetRelationshipsRequest(customer=customer(demo.entity_id)))
    assert reply.relationships
    for relationship in reply.relationships:
        a, b, rule = relationship.edge.split(":")
        assert (relationship.record_a.id, relationship.record_b.id, relationship.rule_id) == (a, b, rule)
        assert relationship.reason


@pytest.mark.parametrize("rpc", ["GetCustomer360", "GetCreditReport", "GetRelationships"])
async def test_customer_lookups_name_the_field(service, rpc):
    request_type = getattr(tilores_data_pb2, f"{rpc}Request")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await getattr(service, rpc)(request_type())
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and field_violations(caught.value) == ["customer"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await getattr(service, rpc)(request_type(customer=customer(record_id="003nosuchrecord000")))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert field_violations(caught.value) == ["customer.record_id"]


async def test_list_fields(service, request):
    demo = service.customers[0]
    reply = await service.ListFields(tilores_data_pb2.ListFieldsRequest(entity_id=demo.entity_id))
    fields = {f.name: f for f in reply.fields}
    assert len(fields) == 163
    assert fields["EMAIL"].category == "contact" and fields["EMAIL"].present
    assert fields["CREDIT_RESPONSE"].category == "credit" and fields["CREDIT_RESPONSE"].type == "CreditResponse"
    assert fields["ACTIVE"].type == "Boolean"
    assert fields["CVV"].pii_kind == "cvv" and not fields["CVV"].present
    if request.node.callspec.params["service"] == "embedded":
        assert fields["EMAIL"].share == 1.0 and fields["CVV"].share == 0.0
    else:
        assert not fields["EMAIL"].HasField("share")  # the Tilores API cannot count
    card = await service.ListFields(tilores_data_pb2.ListFieldsRequest(category="card"))
    assert {f.category for f in card.fields} == {"card"} and len(card.fields) == 10
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await service.ListFields(tilores_data_pb2.ListFieldsRequest(category="favourites"))
    assert field_violations(caught.value) == ["category"]


async def test_batch_search_reports_each_failure_in_place(service):
    searches = [
        tilores_data_pb2.SearchEntitiesRequest(parameters={"CLIENT_ID": c.records[0]["CLIENT_ID"]})
        for c in service.customers[:9]
    ]
    searches.insert(4, tilores_data_pb2.SearchEntitiesRequest(parameters={"SALESFORCE_ID": "003x"}))
    reply = await service.BatchSearch(tilores_data_pb2.BatchSearchRequest(searches=searches, concurrency=4))
    assert len(reply.results) == 10
    bad = reply.results[4]
    assert bad.WhichOneof("outcome") == "error"
    assert (bad.error.code, bad.error.field) == ("INVALID_ARGUMENT", "searches[4].parameters.SALESFORCE_ID")
    found = [r.response.entities[0].id for n, r in enumerate(reply.results) if n != 4]
    assert found == [c.entity_id for c in service.customers[:9]]


async def test_oversized_batch_names_the_limit(service):
    search = tilores_data_pb2.SearchEntitiesRequest(parameters={"CLIENT_ID": "2480135"})
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await service.BatchSearch(tilores_data_pb2.BatchSearchRequest(searches=[search] * 101))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "at most 100" in caught.value.details() and field_violations(caught.value) == ["searches"]


async def test_submitted_records_join_their_customer(service):
    record = Struct()
    record.update({"id": "TKT-0000000000042", "SOURCE": "zoho_tickets", "ZOHO_EMAIL": DEMO_EMAIL, "SUBJECT": "Refund"})
    reply = await service.SubmitRecords(tilores_data_pb2.SubmitRecordsRequest(records=[record]))
    assert reply.records_added == 1
    found = await service.GetEntityByRecord(tilores_data_pb2.GetEntityByRecordRequest(record_id="TKT-0000000000042"))
    assert found.entity.id == service.customers[0].entity_id


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"id": "X1", "SALESFORCE_ID": "003x"}, "records[0].SALESFORCE_ID"),
        ({"id": "X1", "ACTIVE": "yes"}, "records[0].ACTIVE"),
        ({"id": "X1", "CLIENT_ID": 2480135}, "records[0].CLIENT_ID"),
        ({"EMAIL": "a@example.com"}, "records[0].id"),
    ],
)
async def test_bad_records_name_the_field(service, data, field):
    record = Struct()
    record.update(data)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await service.SubmitRecords(tilores_data_pb2.SubmitRecordsRequest(records=[record]))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and field_violations(caught.value) == [field]
