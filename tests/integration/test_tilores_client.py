"""TiloresGraphQLClient against the Tilores-compatible server on loopback:
the token lifecycle, the queries, and every error mapping."""

from __future__ import annotations

import pytest

from services.runtime.faults import InvalidArgument, Unauthenticated, Unavailable
from services.runtime.settings import SettingsError
from services.tilores_data.tilores_client import TiloresGraphQLClient
from tests.integration.tilores_api import CLIENT_ID, CLIENT_SECRET, tilores_api

DEMO_EMAIL = "edwina.hawthorne@example.com"


def client_for(api, **options) -> TiloresGraphQLClient:
    return TiloresGraphQLClient(api.url, api.token_url, CLIENT_ID, CLIENT_SECRET, **options)


@pytest.fixture
async def api(tmp_path):
    async with tilores_api(tmp_path) as running:
        yield running


@pytest.fixture
async def client(api):
    client = client_for(api, timeout_s=2.0)
    yield client
    await client.close()


async def test_search_reads_whole_records_including_credit_reports(api, client):
    [entity] = await client.search({"EMAIL": DEMO_EMAIL})
    demo = api.customers[0]
    assert entity.id == demo.entity_id
    assert entity.records == demo.records  # every field, nested credit data included, nothing added
    assert entity.hit_score == 1.0 and all(rules == ["R1EXACT"] for rules in entity.hits.values())
    assert len(client.known_parameters) == 163  # learned by introspection


async def test_entity_entity_by_record_and_edges(api, client):
    demo = api.customers[0]
    by_id = await client.entity(demo.entity_id)
    by_record = await client.entity_by_record(demo.records[0]["id"])
    assert by_id == by_record and by_id.records == demo.records
    assert await client.edges(demo.entity_id) == by_id.edges
    assert await client.entity("no-such-entity") is None
    assert await client.entity_by_record("003nosuchrecord000") is None
    assert await client.edges("no-such-entity") is None


async def test_paging(api, client):
    first, last = api.customers[1].records[0]["FIRST_NAME"], api.customers[1].records[0]["LAST_NAME"]
    everyone = await client.search({"FIRST_NAME": first, "LAST_NAME": last})
    page = await client.search({"FIRST_NAME": first, "LAST_NAME": last}, page=1, page_size=1)
    assert len(page) == 1 and page[0].id == everyone[0].id


async def test_golden_record_insights(api, client):
    insights = await client.record_insights(
        api.customers[0].entity_id,
        'firstName: frequencyDistribution(field: "FIRST_NAME", top: 1) { value } '
        'status: valuesDistinct(field: "STATUS")',
    )
    assert insights == {"firstName": [{"value": "Edwina"}], "status": ["Active"]}


async def test_submit_then_find(api, client):
    record = {
        "id": "CALL-0000000000001",
        "SOURCE": "calls",
        "PHONE_EXTERNAL": "+1 312 555 0142",
        "CALL_TYPE": "Inbound",
    }
    assert await client.submit([record]) == 1
    entity = await client.entity_by_record("CALL-0000000000001")
    assert entity.id == api.customers[0].entity_id


async def test_token_is_fetched_once_and_reused(api, client):
    for _ in range(3):
        await client.search({"CLIENT_ID": "2480135"})
    assert client.credentials.fetches == 1 and api.server.tokens_issued == 1


async def test_token_is_refreshed_before_it_expires(tmp_path):
    # A 30 s token is inside the 60 s refresh margin: every call fetches anew
    # rather than risk a token expiring in flight.
    async with tilores_api(tmp_path, token_lifetime_s=30) as api:
        client = client_for(api)
        try:
            await client.search({"CLIENT_ID": "2480135"})
            await client.search({"CLIENT_ID": "2480135"})
        finally:
            await client.close()
        assert api.server.tokens_issued >= 3  # introspection + two searches


async def test_a_revoked_token_costs_one_reauthentication(api, client):
    await client.search({"CLIENT_ID": "2480135"})
    api.server.revoke_tokens()
    [entity] = await client.search({"CLIENT_ID": "2480135"})
    assert entity.id == api.customers[0].entity_id
    assert client.credentials.fetches == 2


async def test_credentials_in_the_form_body(api):
    client = client_for(api, credentials_in_body=True, scope=None)
    try:
        assert len(await client.search({"EMAIL": DEMO_EMAIL})) == 1
    finally:
        await client.close()


async def test_wrong_secret_is_unauthenticated(api):
    client = TiloresGraphQLClient(api.url, api.token_url, CLIENT_ID, "wrong")
    try:
        with pytest.raises(Unauthenticated, match="refused the client credentials"):
            await client.search({"EMAIL": DEMO_EMAIL})
    finally:
        await client.close()


async def test_422_is_invalid_argument_with_the_servers_message(client):
    with pytest.raises(InvalidArgument) as caught:
        await client.query('{ search(input: {parameters: {EMAIL: "x"}}) { entities { records { SALESFORCE_ID } } } }')
    assert 'Cannot query field "SALESFORCE_ID" on type "Record".' in caught.value.message
    with pytest.raises(InvalidArgument, match="unknown field"):
        await client.search({"EMAIL": DEMO_EMAIL, "MONTHLY_PAYMENT": "1"})


async def test_5xx_is_retried(api, client):
    await client.schema()
    api.server.faults.statuses = [503, 502]
    [entity] = await client.search({"EMAIL": DEMO_EMAIL})
    assert entity.id == api.customers[0].entity_id


async def test_persistent_5xx_is_unavailable_after_bounded_retries(api):
    client = client_for(api, retries=2)
    try:
        await client.schema()
        before = api.server.graphql_requests
        api.server.faults.statuses = [500] * 10
        with pytest.raises(Unavailable, match="HTTP 500"):
            await client.search({"EMAIL": DEMO_EMAIL})
        assert api.server.graphql_requests - before == 3
    finally:
        await client.close()


async def test_timeout_is_unavailable(api):
    client = client_for(api, timeout_s=1.5, retries=1)  # roomy enough for introspection on a busy machine
    try:
        await client.schema()
        api.server.faults.delay_s = 4.0
        with pytest.raises(Unavailable, match="timed out"):
            await client.search({"EMAIL": DEMO_EMAIL})
    finally:
        await client.close()


async def test_unreachable_api_is_unavailable():
    client = TiloresGraphQLClient("http://127.0.0.1:9/", "http://127.0.0.1:9/oauth2/token", "a", "b", retries=0)
    try:
        with pytest.raises(Unavailable, match="token endpoint is unreachable"):
            await client.search({"EMAIL": DEMO_EMAIL})
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("env", "style"),
    [
        (
            {"TILORES_API_URL": "http://a/", "TILORES_TOKEN_URL": "http://t/", "TILORES_CLIENT_ID": "i",
             "TILORES_CLIENT_SECRET": "s"},
            "header",
        ),
        (
            {"TILORES_GRAPHQL_API_URL": "http://a/", "TILORES_OAUTH_TOKEN_URL": "http://t/", "TILORES_CLIENT_ID": "i",
             "TILORES_CLIENT_SECRET": "s", "TILORES_CREDENTIALS_IN": "body", "TILORES_TIMEOUT": "30000"},
            "body",
        ),
    ],
)  # fmt: skip
async def test_both_environment_naming_schemes(env, style):
    client = TiloresGraphQLClient.from_env(env)
    try:
        assert client._api_url == "http://a/"
        assert client.credentials._token_url == "http://t/"
        assert client.credentials._in_body is (style == "body")
    finally:
        await client.close()


def test_no_api_url_means_the_embedded_store():
    assert TiloresGraphQLClient.from_env({}) is None


def test_missing_settings_are_named():
    with pytest.raises(SettingsError, match="TILORES_CLIENT_SECRET"):
        TiloresGraphQLClient.from_env(
            {"TILORES_API_URL": "http://a/", "TILORES_TOKEN_URL": "t", "TILORES_CLIENT_ID": "i"}
        )
