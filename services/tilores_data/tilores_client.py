"""TiloresGraphQLClient: the production backend, the real Tilores GraphQL API.

Every call is `POST <api_url>` with a bearer token from ClientCredentials.
Errors map to faults: 422 (and 400) -> InvalidArgument with the server's
message; 401 -> one new token and one more try, then Unauthenticated;
5xx, connection errors and timeouts -> bounded retries with jittered
exponential backoff, then Unavailable. GraphQL errors in a 200 answer (a
resolver refusing, e.g. a missing privilege) -> PermissionDenied or
Unavailable with their message.

Settings (`from_env`), both naming schemes of Tilores deployments:
  TILORES_API_URL | TILORES_GRAPHQL_API_URL     GraphQL endpoint
  TILORES_TOKEN_URL | TILORES_OAUTH_TOKEN_URL   OAuth2 token endpoint
  TILORES_CLIENT_ID, TILORES_CLIENT_SECRET      client credentials
  TILORES_SCOPE            scope sent with Basic auth (default: submit,
                           search and entity); empty sends none
  TILORES_CREDENTIALS_IN   "header" (HTTP Basic, default) or "body"
  TILORES_TIMEOUT_S        per-request timeout in seconds (default 5);
                           TILORES_TIMEOUT in milliseconds is honoured too
  TILORES_RETRIES          retries after a 5xx or timeout (default 2)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import aiohttp
import orjson
from graphql import GraphQLSchema, IntrospectionQuery, build_client_schema, get_introspection_query
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from services.runtime.faults import InvalidArgument, PermissionDenied, Unauthenticated, Unavailable
from services.runtime.settings import SettingsError
from services.tilores_data.credentials import DEFAULT_SCOPE, ClientCredentials
from services.tilores_data.store import EntityView
from services.tilores_data.tilores_schema import search_parameters, selection

ENTITY_FIELDS = "id edges hits hitScore records {{ {records} }}"
SEARCH = """query search($params: SearchParams!, $page: Int, $pageSize: Int) {{
  search(input: {{parameters: $params, page: $page, pageSize: $pageSize}}) {{ entities {{ {entity} }} }}
}}"""
ENTITY = """query entity($id: ID!) {{ entity(input: {{id: $id}}) {{ entity {{ {entity} }} }} }}"""
ENTITY_BY_RECORD = """query entityByRecord($id: ID!) {{
  entityByRecord(input: {{id: $id}}) {{ entity {{ {entity} }} }}
}}"""
EDGES = """query get_edges($entityID: ID!) { entity(input: {id: $entityID}) { entity { edges } } }"""
INSIGHTS = """query insights($id: ID!) {{
  entity(input: {{id: $id}}) {{ entity {{ recordInsights {{ {selection} }} }} }}
}}"""
SUBMIT = """mutation submit($records: [RecordInput!]!) { submit(input: {records: $records}) { recordsAdded } }"""


class _Retryable(Exception):
    def __init__(self, fault: Unavailable):
        super().__init__(fault.message)
        self.fault = fault


class TiloresGraphQLClient:
    def __init__(
        self,
        api_url: str,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        scope: str | None = DEFAULT_SCOPE,
        credentials_in_body: bool = False,
        timeout_s: float = 5.0,
        retries: int = 2,
        session: aiohttp.ClientSession | None = None,
    ):
        self._api_url = api_url
        self._session = session or aiohttp.ClientSession()
        self._owns_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._retries = retries
        self.credentials = ClientCredentials(
            self._session, token_url, client_id, client_secret, scope=scope, in_body=credentials_in_body,
            timeout_s=timeout_s,
        )  # fmt: skip
        self._schema: GraphQLSchema | None = None
        self._entity_selection: str | None = None
        self.known_parameters: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TiloresGraphQLClient | None:
        """A client when a Tilores API URL is configured, else None."""

        def get(*names: str) -> str:
            return next((env[n].strip() for n in names if (env.get(n) or "").strip()), "")

        api_url = get("TILORES_API_URL", "TILORES_GRAPHQL_API_URL")
        if not api_url:
            return None
        token_url = get("TILORES_TOKEN_URL", "TILORES_OAUTH_TOKEN_URL")
        for name, value in (
            ("TILORES_TOKEN_URL", token_url),
            ("TILORES_CLIENT_ID", get("TILORES_CLIENT_ID")),
            ("TILORES_CLIENT_SECRET", get("TILORES_CLIENT_SECRET")),
        ):
            if not value:
                raise SettingsError(f"{name}: required when TILORES_API_URL is set")
        where = get("TILORES_CREDENTIALS_IN") or "header"
        if where not in ("header", "body"):
            raise SettingsError(f"TILORES_CREDENTIALS_IN: expected 'header' or 'body', got {where!r}")
        try:
            timeout_s = float(get("TILORES_TIMEOUT_S") or 0) or float(get("TILORES_TIMEOUT") or 5000) / 1000
            retries = int(get("TILORES_RETRIES") or 2)
        except ValueError as error:
            raise SettingsError(f"TILORES_TIMEOUT_S / TILORES_RETRIES: {error}") from None
        scope = env.get("TILORES_SCOPE")
        return cls(
            api_url,
            token_url,
            get("TILORES_CLIENT_ID"),
            get("TILORES_CLIENT_SECRET"),
            scope=DEFAULT_SCOPE if scope is None else (scope.strip() or None),
            credentials_in_body=where == "body",
            timeout_s=timeout_s,
            retries=retries,
        )

    async def close(self) -> None:
        if self._owns_session:
            await self._session.close()

    # The GraphQL exchange.

    async def query(self, text: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The `data` of one GraphQL request."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._retries + 1),
            wait=wait_random_exponential(multiplier=0.1, max=1.0),
            retry=retry_if_exception_type(_Retryable),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._authorised(text, variables or {})
        except _Retryable as error:
            raise error.fault from None
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _authorised(self, text: str, variables: dict[str, Any]) -> dict[str, Any]:
        token = await self.credentials.token()
        status, body = await self._post(token, text, variables)
        if status == 401:
            # Expired or revoked early: one new token, one more try.
            self.credentials.invalidate(token)
            status, body = await self._post(await self.credentials.token(), text, variables)
            if status == 401:
                raise Unauthenticated("the Tilores API refused a fresh token")
        return _data(status, body)

    async def _post(self, token: str, text: str, variables: dict[str, Any]) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        payload = orjson.dumps({"query": text, "variables": variables})
        try:
            async with self._session.post(self._api_url, data=payload, headers=headers, timeout=self._timeout) as reply:
                raw = await reply.read()
                status = reply.status
        except TimeoutError:
            raise _Retryable(Unavailable("the Tilores API timed out")) from None
        except aiohttp.ClientError as error:
            raise _Retryable(Unavailable(f"the Tilores API is unreachable ({type(error).__name__})")) from None
        if status >= 500 or status == 429:
            raise _Retryable(Unavailable(f"the Tilores API answered HTTP {status}"))
        try:
            return status, orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            raise Unavailable(f"the Tilores API answered HTTP {status} with a body that is not JSON") from None

    # Schema discovery.

    backend = "tilores_api"

    async def ping(self) -> None:
        """The cheapest authorised query: the assembly status."""
        await self.query("{ metrics { assemblyStatus { state } } }")

    async def schema(self) -> GraphQLSchema:
        """The instance's schema, from introspection (read once)."""
        if self._schema is None:
            data = await self.query(get_introspection_query(descriptions=True))
            schema = build_client_schema(cast(IntrospectionQuery, data))
            self._entity_selection = ENTITY_FIELDS.format(records=selection(schema))
            self.known_parameters = search_parameters(schema)
            self._schema = schema
        return self._schema

    async def _entity_fields(self) -> str:
        await self.schema()
        return self._entity_selection or ""

    # The EntitySource surface.

    async def search(self, parameters: dict[str, str], page: int = 0, page_size: int = 0) -> list[EntityView]:
        entity = await self._entity_fields()
        variables: dict[str, Any] = {"params": parameters}
        if page:
            variables |= {"page": page, "pageSize": page_size or 10}
        data = await self.query(SEARCH.format(entity=entity), variables)
        return [_view(e) for e in data["search"]["entities"]]

    async def entity(self, entity_id: str) -> EntityView | None:
        data = await self.query(ENTITY.format(entity=await self._entity_fields()), {"id": entity_id})
        found = data["entity"]["entity"]
        return _view(found) if found else None

    async def entity_by_record(self, record_id: str) -> EntityView | None:
        data = await self.query(ENTITY_BY_RECORD.format(entity=await self._entity_fields()), {"id": record_id})
        found = data["entityByRecord"]["entity"]
        return _view(found) if found else None

    async def edges(self, entity_id: str) -> list[str] | None:
        data = await self.query(EDGES, {"entityID": entity_id})
        found = data["entity"]["entity"]
        return found["edges"] if found else None

    async def record_insights(self, entity_id: str, selection_text: str) -> dict[str, Any] | None:
        """An entity's recordInsights block, e.g.
        `first_name: frequencyDistribution(field: "FIRST_NAME", top: 1) { value }`."""
        data = await self.query(INSIGHTS.format(selection=selection_text), {"id": entity_id})
        found = data["entity"]["entity"]
        return found["recordInsights"] if found else None

    async def submit(self, records: list[dict[str, Any]]) -> int:
        data = await self.query(SUBMIT, {"records": records})
        return int(data["submit"]["recordsAdded"])

    async def field_shares(self) -> dict[str, float] | None:
        return None  # the API has no aggregate over all entities


def _data(status: int, body: Any) -> dict[str, Any]:
    errors = body.get("errors") if isinstance(body, dict) else None
    message = "; ".join(str(e.get("message", "")) for e in errors or () if isinstance(e, dict)) or f"HTTP {status}"
    if status in (400, 422):
        raise InvalidArgument(f"the Tilores API rejected the query: {message}")
    if status in (401, 403):
        raise Unauthenticated(f"the Tilores API refused the token (HTTP {status})")
    if status != 200 or not isinstance(body, dict):
        raise Unavailable(f"the Tilores API answered HTTP {status}")
    if errors:
        if "access denied" in message:
            raise PermissionDenied(f"the Tilores API refused: {message}")
        raise Unavailable(f"the Tilores API failed: {message}")
    if not isinstance(body.get("data"), dict):
        raise Unavailable("the Tilores API answered without data")
    data: dict[str, Any] = body["data"]
    return data


def _view(entity: dict[str, Any]) -> EntityView:
    hits = entity.get("hits") or {}
    return EntityView(
        id=entity["id"],
        records=[_without_nulls(r) for r in entity.get("records") or ()],
        edges=list(entity.get("edges") or ()),
        hits={k: list(v) for k, v in hits.items()} if isinstance(hits, dict) else {},
        hit_score=float(entity.get("hitScore") or 0.0),
    )


def _without_nulls(value: Any) -> Any:
    """A record as stored: GraphQL answers every selected field, null when
    the record has no value; the embedded store keeps only values."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value if v is not None]
    return value
