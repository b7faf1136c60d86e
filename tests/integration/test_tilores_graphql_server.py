"""The Tilores-compatible GraphQL server, spoken to over HTTP as the real
Tilores API is: token endpoint, bearer auth, gqlgen's statuses and
gqlparser's error texts, introspection, and the query shapes the Tilores
SDK and the original assistant send."""

from __future__ import annotations

import aiohttp
import pytest
from graphql import build_client_schema, get_introspection_query

from tests.integration.tilores_api import CLIENT_ID, CLIENT_SECRET, tilores_api

DEMO_EMAIL = "edwina.hawthorne@example.com"


@pytest.fixture
async def api(tmp_path):
    async with tilores_api(tmp_path) as running, aiohttp.ClientSession() as session:
        running.session = session
        async with session.post(
            running.token_url,
            data={"grant_type": "client_credentials", "scope": "tilores/query.search"},
            headers={"Authorization": aiohttp.encode_basic_auth(CLIENT_ID, CLIENT_SECRET)},
        ) as reply:
            assert reply.status == 200
            token = await reply.json()
        assert token["expires_in"] == 3600 and token["token_type"] == "Bearer"
        running.token = token["access_token"]
        yield running


async def gql(api, query: str, variables: dict | None = None, token: str | None = None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token or api.token}"}
    async with api.session.post(api.url, json={"query": query, "variables": variables or {}}, headers=headers) as r:
        return r.status, await r.json()


async def test_token_from_form_body_without_scope(api):
    form = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    async with api.session.post(api.token_url, data=form) as reply:
        assert reply.status == 200
        assert (await reply.json())["access_token"]


async def test_bad_credentials_are_refused_cognito_style(api):
    async with api.session.post(
        api.token_url,
        data={"grant_type": "client_credentials"},
        headers={"Authorization": aiohttp.encode_basic_auth(CLIENT_ID, "wrong")},
    ) as reply:
        assert reply.status == 400
        assert await reply.json() == {"error": "invalid_client"}


async def test_graphql_without_a_valid_token_is_401(api):
    async with api.session.post(api.url, json={"query": "{ metrics { assemblyStatus { state } } }"}) as reply:
        assert reply.status == 401
        assert await reply.json() == {"message": "Unauthorized"}
    status, body = await gql(api, "{ metrics { assemblyStatus { state } } }", token="forged")
    assert (status, body) == (401, {"message": "Unauthorized"})


async def test_a_body_that_is_not_json_is_400(api):
    async with api.session.post(
        api.url, data=b"{not json", headers={"Authorization": f"Bearer {api.token}", "Content-Type": "application/json"}
    ) as reply:
        assert reply.status == 400
        body = await reply.json()
    assert body["data"] is None and body["errors"][0]["message"].startswith("json body could not be decoded")


async def test_unknown_field_is_422_with_gqlparser_text(api):
    query = "query s($params: SearchParams!) { search(input: {parameters: $params}) { entities { records { %s } } } }"
    status, body = await gql(api, query % "SALESFORCE_ID", {"params": {"EMAIL": DEMO_EMAIL}})
    assert status == 422 and body["data"] is None
    [error] = body["errors"]
    assert error["message"] == 'Cannot query field "SALESFORCE_ID" on type "Record".'
    assert error["extensions"] == {"code": "GRAPHQL_VALIDATION_FAILED"}
    assert error["locations"][0]["line"] == 1


async def test_bare_credit_response_is_422(api):
    status, body = await gql(
        api, '{ search(input: {parameters: {EMAIL: "x@example.com"}}) { entities { records { CREDIT_RESPONSE } } } }'
    )
    assert status == 422
    assert body["errors"][0]["message"] == (
        'Field "CREDIT_RESPONSE" of type "CreditResponse" must have a selection of subfields. '
        'Did you mean "CREDIT_RESPONSE { ... }"?'
    )


async def test_scalar_with_selection_is_422(api):
    status, body = await gql(
        api, '{ search(input: {parameters: {EMAIL: "x@example.com"}}) { entities { records { EMAIL { x } } } } }'
    )
    assert status == 422
    assert (
        body["errors"][0]["message"] == 'Field "EMAIL" must not have a selection since type "String" has no subfields.'
    )


async def test_unknown_variable_key_is_422_unknown_field(api):
    status, body = await gql(
        api,
        "query s($params: SearchParams!) { search(input: {parameters: $params}) { entities { id } } }",
        {"params": {"EMAIL": DEMO_EMAIL, "MONTHLY_PAYMENT": "10"}},
    )
    assert status == 422
    assert body["errors"] == [
        {"message": "unknown field", "path": ["variable", "params", "MONTHLY_PAYMENT"],
         "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}}
    ]  # fmt: skip


async def test_parse_error_is_422(api):
    status, body = await gql(api, "{ search(")
    assert status == 422 and body["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"


async def test_introspection_builds_the_sdk_schema(api):
    status, body = await gql(api, get_introspection_query(descriptions=True))
    assert status == 200
    schema = build_client_schema(body["data"])
    assert len(schema.type_map["Record"].fields) == 163
    assert len(schema.type_map["SearchParams"].fields) == 163
    assert len(schema.type_map["RecordInput"].fields) == 162
    assert str(schema.type_map["Record"].fields["ACTIVE"].type) == "Boolean"
    status, body = await gql(api, "{ __schema { types { name fields { name } } } }")
    names = {t["name"] for t in body["data"]["__schema"]["types"]}
    assert {"Record", "CreditResponse", "RecordInsights", "Entity"} <= names


async def test_sdk_search_with_every_parameter_null(api):
    """The SDK dumps SearchParams with .dict(): all 163 keys, unset ones null."""
    status, body = await gql(api, get_introspection_query())
    names = [
        f["name"] for t in body["data"]["__schema"]["types"] if t["name"] == "SearchParams" for f in t["inputFields"]
    ]
    params = dict.fromkeys(names) | {"EMAIL": DEMO_EMAIL.upper()}
    query = (
        "query search($params: SearchParams!) { search(input: {parameters: $params}) "
        "{ entities { id hits hitScore records { id EMAIL FIRST_NAME } } } }"
    )
    status, body = await gql(api, query, {"params": params})
    assert status == 200
    [entity] = body["data"]["search"]["entities"]
    assert entity["id"] == api.customers[0].entity_id
    assert len(entity["records"]) == len(api.customers[0].records)  # every record, not just the matching ones
    assert set(entity["hits"]) <= {r["id"] for r in entity["records"]} and entity["hitScore"] == 1.0
    assert all(rules == ["R1EXACT"] for rules in entity["hits"].values())
    status, body = await gql(api, query, {"params": dict.fromkeys(names)})
    assert (status, body) == (200, {"data": {"search": {"entities": []}}})


async def test_inlined_literal_search_then_entity_queries(api):
    """The original assistant inlines search parameters, then reads the entity."""
    status, body = await gql(
        api,
        'query SearchCustomer { search(input: { parameters: { EMAIL: "'
        + DEMO_EMAIL
        + '" } }) { entities { id records { id } } } }',
    )
    entity_id = body["data"]["search"]["entities"][0]["id"]
    status, body = await gql(
        api,
        """query GetFullCreditData($id: ID!) { entity(input: { id: $id }) { entity { id records {
          id STATUS FIRST_NAME CLIENT_ID CREDIT_RESPONSE { CREDIT_BUREAU CreditReportFirstIssuedDate
          CREDIT_SCORE { Value ModelNameType CreditRepositorySourceType }
          CREDIT_LIABILITY { AccountType CreditLimitAmount CreditBalance LateCount { Days30 Days60 Days90 } }
          CREDIT_SUMMARY { BorrowerID Name DATA_SET { ID Name Value } } } } } } }""",
        {"id": entity_id},
    )
    assert status == 200
    records = body["data"]["entity"]["entity"]["records"]
    scores = {
        r["CREDIT_RESPONSE"]["CREDIT_BUREAU"]: r["CREDIT_RESPONSE"]["CREDIT_SCORE"][0]["Value"]
        for r in records
        if r["CREDIT_RESPONSE"]
    }
    assert scores == {"TransUnion": "712", "Equifax": "705", "Experian": "698"}
    assert {r["STATUS"] for r in records if r["STATUS"]} == {"Active"}


async def test_unknown_ids_give_null_entity(api):
    status, body = await gql(api, 'query { entity(input: {id: "no-such-entity"}) { entity { id } } }')
    assert (status, body) == (200, {"data": {"entity": {"entity": None}}})
    status, body = await gql(api, 'query { entityByRecord(input: {id: "003nosuchrecord000"}) { entity { id } } }')
    assert (status, body) == (200, {"data": {"entityByRecord": {"entity": None}}})


async def test_entity_by_record_and_edges(api):
    contact = api.customers[0].records[0]["id"]
    _, body = await gql(
        api, "query q($id: ID!) { entityByRecord(input: { id: $id }) { entity { id edges } } }", {"id": contact}
    )
    entity = body["data"]["entityByRecord"]["entity"]
    assert entity["id"] == api.customers[0].entity_id
    ids = {r["id"] for r in api.customers[0].records}
    for edge in entity["edges"]:
        a, b, rule = edge.split(":")
        assert a in ids and b in ids and rule.startswith("R")


async def test_golden_record_through_record_insights(api):
    query = """query q($id: ID!) { entity(input: {id: $id}) { entity { recordInsights {
        firstName: frequencyDistribution(field: "FIRST_NAME", top: 1) { value frequency percentage }
        emails: valuesDistinct(field: "EMAIL")
        bureaus: valuesDistinct(field: "CREDIT_RESPONSE.CREDIT_BUREAU")
        score: values(field: "CREDIT_RESPONSE.CREDIT_SCORE.0.Value")
        nothing: valuesDistinct(field: "STARTING_CREDIT_SCORE")
        count
        newest(field: "TRANSACTION_CREATED_DATE") { TRANSACTION_CREATED_DATE }
    } } } }"""
    status, body = await gql(api, query, {"id": api.customers[0].entity_id})
    assert status == 200, body
    insights = body["data"]["entity"]["entity"]["recordInsights"]
    [first] = insights["firstName"]
    assert first["value"] == "Edwina" and 0 < first["percentage"] <= 1
    assert insights["emails"] == [DEMO_EMAIL]
    assert sorted(insights["bureaus"]) == ["Equifax", "Experian", "TransUnion"]
    assert {"698", "705", "712"} <= set(insights["score"]) and len(insights["score"]) == 6  # two pulls each
    assert insights["nothing"] == []  # an unknown field is empty, not an error
    assert insights["count"] == len(api.customers[0].records)
    dates = [r["TRANSACTION_CREATED_DATE"] for r in api.customers[0].records if r.get("TRANSACTION_CREATED_DATE")]
    assert insights["newest"]["TRANSACTION_CREATED_DATE"] == max(dates)


async def test_submit_links_new_records_into_the_entity(api):
    mutation = "mutation s($records: [RecordInput!]!) { submit(input: {records: $records}) { recordsAdded } }"
    record = {
        "id": "TKT-000000000000001",
        "SOURCE": "zoho_tickets",
        "ZOHO_EMAIL": DEMO_EMAIL,
        "SUBJECT": "Billing question",
    }
    status, body = await gql(api, mutation, {"records": [record]})
    assert (status, body) == (200, {"data": {"submit": {"recordsAdded": 1}}})
    status, body = await gql(
        api, 'query { entityByRecord(input: {id: "TKT-000000000000001"}) { entity { id edges } } }'
    )
    entity = body["data"]["entityByRecord"]["entity"]
    assert entity["id"] == api.customers[0].entity_id
    assert any(e.endswith(":TKT-000000000000001:R1EXACT") for e in entity["edges"])
    status, body = await gql(api, "{ metrics { assemblyStatus { state } } }")
    assert body == {"data": {"metrics": {"assemblyStatus": {"state": "READY"}}}}


async def test_paging_is_one_based_with_default_size_ten(api):
    query = 'query { search(input: {parameters: {LAST_NAME: "%s", FIRST_NAME: "%s"}, page: 1}) { entities { id } } }'
    first = api.customers[1].records[0]
    status, body = await gql(api, query % (first["LAST_NAME"], first["FIRST_NAME"]))
    assert status == 200 and 1 <= len(body["data"]["search"]["entities"]) <= 10


async def test_injection_looking_values_are_plain_data(api):
    query = "query s($params: SearchParams!) { search(input: {parameters: $params}) { entities { id } } }"
    for value in ("' OR 1=1 --", '"}) { __schema { types { name } } } #', "x@example.com; DROP TABLE records"):
        status, body = await gql(api, query, {"params": {"EMAIL": value, "CLIENT_ID": value}})
        assert (status, body) == (200, {"data": {"search": {"entities": []}}})
    status, body = await gql(api, query, {"params": {"EMAIL": DEMO_EMAIL}})
    assert len(body["data"]["search"]["entities"]) == 1


async def test_consider_records_hides_records_and_their_edges(api):
    query = """query q($id: ID!) { entity(input: {id: $id, considerRecords: [{field: "SOURCE", equals: "transaction"}]})
        { entity { records { id SOURCE } edges } } }"""
    _, body = await gql(api, query, {"id": api.customers[0].entity_id})
    entity = body["data"]["entity"]["entity"]
    kept = {r["id"] for r in entity["records"]}
    assert kept and {r["SOURCE"] for r in entity["records"]} == {"Transaction"}  # case ignored
    assert all(set(edge.split(":")[:2]) <= kept for edge in entity["edges"])


async def test_search_rules_and_paging_arguments_are_accepted(api):
    query = (
        'query { search(input: {parameters: {CLIENT_ID: "2480135"}, searchRules: "default", page: 1, pageSize: 5})'
        " { entities { id } } }"
    )
    status, body = await gql(api, query)
    assert status == 200 and [e["id"] for e in body["data"]["search"]["entities"]] == [api.customers[0].entity_id]
