"""TiloresGraphQLServer: a Tilores-compatible GraphQL API over the embedded
entity store, with the real service's transport behaviour, so the Tilores
client is tested against the wire format it meets in production and a
developer can try it locally:

  POST /oauth2/token   OAuth2 client credentials (HTTP Basic or form body,
                       scope optional) -> {"access_token", "expires_in": 3600,
                       "token_type": "Bearer"}; bad credentials 400
                       {"error": "invalid_client"}
  POST /               GraphQL; 401 {"message": "Unauthorized"} without a
                       valid bearer token; 400 for a body that is not JSON;
                       422 {"errors": [...], "data": null} for parse,
                       validation and variable errors with gqlparser's
                       message texts; resolver errors 200 with errors[]

Run it: `python -m services.tilores_data.graphql_server --db FILE --port 8090`
(`--delay-ms N` adds N ms before every answer, to try the client against a
remote API's latency).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLResolveInfo,
    GraphQLSchema,
    OperationDefinitionNode,
    execute_sync,
    parse,
    validate,
)
from graphql.error import GraphQLSyntaxError
from graphql.execution.values import get_variable_values

from services.tilores_data.entity_quality import consistency, link_score
from services.tilores_data.record_insights import InsightError, RecordInsights
from services.tilores_data.seed import seed
from services.tilores_data.store import EmbeddedEntityStore, EntityView
from services.tilores_data.tilores_schema import fields_of, tilores_schema

TOKEN_LIFETIME_S = 3600
_UNKNOWN_FIELD = re.compile(r"Variable '\$(\w+)' has invalid value: .*?unknown field '(\w+)'")


@dataclass
class ServerFaults:
    """Faults a test may inject: a delay before every GraphQL answer and
    statuses returned, one per request, before normal answers resume."""

    delay_s: float = 0.0
    statuses: list[int] = field(default_factory=list)


class TiloresGraphQLServer:
    def __init__(
        self,
        store: EmbeddedEntityStore,
        client_id: str,
        client_secret: str,
        token_lifetime_s: int = TOKEN_LIFETIME_S,
        schema: GraphQLSchema | None = None,
    ):
        self.store = store
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_lifetime_s = token_lifetime_s
        self.schema = schema or tilores_schema()
        self.faults = ServerFaults()
        self.tokens_issued = 0
        self.graphql_requests = 0
        self._tokens: dict[str, float] = {}
        _bind_resolvers(self.schema)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/oauth2/token", self._token)
        app.router.add_route("*", "/", self._graphql)
        return app

    def revoke_tokens(self) -> None:
        """Every issued token becomes invalid, as after a key rotation."""
        self._tokens.clear()

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                client_id, _, client_secret = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                return web.json_response({"error": "invalid_client"}, status=400)
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        if not (
            secrets.compare_digest(str(client_id or ""), self.client_id)
            and secrets.compare_digest(str(client_secret or ""), self.client_secret)
        ):
            return web.json_response({"error": "invalid_client"}, status=400)
        token = secrets.token_urlsafe(32)
        self._tokens[token] = time.monotonic() + self.token_lifetime_s
        self.tokens_issued += 1
        return web.json_response({"access_token": token, "expires_in": self.token_lifetime_s, "token_type": "Bearer"})

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return False
        expires = self._tokens.get(header[7:])
        return expires is not None and expires > time.monotonic()

    async def _graphql(self, request: web.Request) -> web.Response:
        if request.method != "POST":
            return web.json_response({"message": "Not Found"}, status=404)
        if not self._authorized(request):
            return web.json_response({"message": "Unauthorized"}, status=401)
        self.graphql_requests += 1
        if self.faults.delay_s:
            await asyncio.sleep(self.faults.delay_s)
        if self.faults.statuses:
            status = self.faults.statuses.pop(0)
            return web.json_response({"message": "Internal Server Error"}, status=status)
        if request.content_type != "application/json":
            return _errors(400, [{"message": "transport not supported"}])
        try:
            body = orjson.loads(await request.read())
            query, variables = body["query"], body.get("variables") or {}
            operation_name = body.get("operationName")
            if not isinstance(query, str) or not isinstance(variables, dict):
                raise TypeError("query must be a string and variables an object")
        except (orjson.JSONDecodeError, KeyError, TypeError) as error:
            return _errors(400, [{"message": f"json body could not be decoded: {error}"}])
        status, payload = self.run(query, variables, operation_name)
        return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")

    def run(
        self, query: str, variables: dict[str, Any], operation_name: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        """One GraphQL request: (HTTP status, response body)."""
        try:
            document = parse(query)
        except GraphQLSyntaxError as error:
            return 422, {"errors": [_error(error, "GRAPHQL_PARSE_FAILED")], "data": None}
        problems = validate(self.schema, document)
        if problems:
            return 422, {"errors": [_error(e, "GRAPHQL_VALIDATION_FAILED") for e in problems], "data": None}
        operation = _operation(document, operation_name)
        if operation is None:
            message = "operation not found" if operation_name else "an operation name is required"
            return 422, {"errors": [{"message": message, "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}}]}
        coerced = get_variable_values(self.schema, operation.variable_definitions or (), variables)
        if isinstance(coerced, list):
            return 422, {"errors": [_variable_error(e) for e in coerced], "data": None}
        result = execute_sync(
            self.schema, document, root_value=self, variable_values=variables, operation_name=operation_name
        )
        payload: dict[str, Any] = {"data": result.data}
        if result.errors:
            payload["errors"] = [_error(e, None) for e in result.errors]
        return 200, payload


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name:
        return next((o for o in operations if o.name and o.name.value == name), None)
    return operations[0] if len(operations) == 1 else None


def _gqlparser_text(message: str) -> str:
    # graphql-core quotes names with ' where gqlparser (the real server) uses ".
    return message.replace("'", '"')


def _error(error: GraphQLError, code: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"message": _gqlparser_text(error.message) if code else error.message}
    if error.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    if error.path:
        out["path"] = list(error.path)
    if code:
        out["extensions"] = {"code": code}
    return out


def _variable_error(error: GraphQLError) -> dict[str, Any]:
    match = _UNKNOWN_FIELD.search(error.message)
    if match:
        # gqlparser reports an unknown key as "unknown field" at its path.
        return {
            "message": "unknown field",
            "path": ["variable", match.group(1), match.group(2)],
            "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"},
        }
    return _error(error, "GRAPHQL_VALIDATION_FAILED")


def _errors(status: int, errors: list[dict[str, Any]]) -> web.Response:
    return web.Response(
        body=orjson.dumps({"errors": errors, "data": None}), status=status, content_type="application/json"
    )


# Resolvers. The root value is the server; entities are EntityView.


def _considered(view: EntityView, conditions: list[dict[str, Any]] | None) -> EntityView:
    if not conditions:
        return view
    records = RecordInsights(view.records).filter(conditions).records
    kept = {str(r.get("id")) for r in records}
    edges = [e for e in view.edges if set(e.split(":")[:2]) <= kept]
    hits = {rid: rules for rid, rules in view.hits.items() if rid in kept}
    return EntityView(view.id, records, edges, hits, view.hit_score)


def _search(server: TiloresGraphQLServer, info: GraphQLResolveInfo[Any], input: dict[str, Any]) -> dict[str, Any]:
    parameters = {
        k: str(v) for k, v in (input.get("parameters") or {}).items() if v is not None and k != "CREDIT_RESPONSE"
    }
    page, size = input.get("page"), input.get("pageSize")
    if page is not None and page < 1:
        raise GraphQLError("page must be 1 or more")
    if size is not None and size < 1:
        raise GraphQLError("pageSize must be 1 or more")
    views = server.store.search(parameters, page=page or 0, page_size=size or 0) if parameters else []
    return {"entities": [_considered(v, input.get("considerRecords")) for v in views]}


def _entity(server: TiloresGraphQLServer, info: GraphQLResolveInfo[Any], input: dict[str, Any]) -> dict[str, Any]:
    view = server.store.get_entity(input["id"])
    return {"entity": _considered(view, input.get("considerRecords")) if view else None}


def _entity_by_record(
    server: TiloresGraphQLServer, info: GraphQLResolveInfo[Any], input: dict[str, Any]
) -> dict[str, Any]:
    view = server.store.get_entity_by_record(input["id"])
    return {"entity": _considered(view, input.get("considerRecords")) if view else None}


def _submit(server: TiloresGraphQLServer, info: GraphQLResolveInfo[Any], input: dict[str, Any]) -> dict[str, Any]:
    records = [{k: v for k, v in r.items() if v is not None} for r in input["records"]]
    return {"recordsAdded": server.store.submit_records(records)}


def _edge_insights(view: EntityView, info: GraphQLResolveInfo[Any]) -> dict[str, Any]:
    rules = RecordInsights([{"rule": e.rsplit(":", 1)[-1]} for e in view.edges])
    return {
        "count": len(view.edges),
        "frequencyDistribution": lambda info, top=None, direction="DESC": rules.frequency_distribution(
            "rule", top=top, direction=direction
        ),
    }


ENTITY_FIELDS: dict[str, Callable[..., Any]] = {
    "id": lambda view, info: view.id,
    "records": lambda view, info: view.records,
    "edges": lambda view, info: view.edges,
    "duplicates": lambda view, info: {},
    "hits": lambda view, info: view.hits,
    "score": lambda view, info: link_score(view.records, view.edges),
    "consistency": lambda view, info: consistency(view.records),
    "hitScore": lambda view, info: view.hit_score,
    "edgeInsights": _edge_insights,
    "recordInsights": lambda view, info: RecordInsights(view.records),
}

_SNAKE = re.compile(r"(?<!^)(?=[A-Z])")


def _insight_resolver(name: str) -> Callable[..., Any]:
    method = _SNAKE.sub("_", name).lower()

    def resolve(insights: RecordInsights, info: GraphQLResolveInfo[Any], **arguments: Any) -> Any:
        kwargs = {_SNAKE.sub("_", k).lower(): v for k, v in arguments.items() if v is not None}
        attribute = getattr(insights, method)
        try:
            return attribute(**kwargs) if callable(attribute) else attribute
        except InsightError as error:
            raise GraphQLError(str(error)) from None

    return resolve


def _bind_resolvers(schema: GraphQLSchema) -> None:
    query, mutation = fields_of(schema, "Query"), fields_of(schema, "Mutation")
    query["search"].resolve = _search
    query["entity"].resolve = _entity
    query["entityByRecord"].resolve = _entity_by_record
    # Submitted records are assembled before submit returns.
    query["metrics"].resolve = lambda root, info: {"assemblyStatus": {"state": "READY", "estimatedTimeRemaining": 0}}
    mutation["submit"].resolve = _submit
    for name, resolve in ENTITY_FIELDS.items():
        fields_of(schema, "Entity")[name].resolve = resolve
    for name, insight_field in fields_of(schema, "RecordInsights").items():
        insight_field.resolve = _insight_resolver(name)
    fields_of(schema, "EdgeInsights")["frequencyDistribution"].resolve = lambda obj, info, **kw: obj[
        "frequencyDistribution"
    ](info, **kw)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default=".data/tilores.db", help="embedded store file (seeded when missing)")
    parser.add_argument("--customers", type=int, default=1000, help="sample customers for a new store")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--client-id", default="local-client")
    parser.add_argument("--client-secret", default="local-secret")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="added before every GraphQL answer")
    args = parser.parse_args(argv)
    if not Path(args.db).exists():
        Path(args.db).parent.mkdir(parents=True, exist_ok=True)
        seed(args.db, args.customers)
    server = TiloresGraphQLServer(EmbeddedEntityStore(args.db), args.client_id, args.client_secret)
    server.faults.delay_s = args.delay_ms / 1000
    print(
        f"Tilores-compatible GraphQL API on http://{args.host}:{args.port}/ "
        f"(token: http://{args.host}:{args.port}/oauth2/token, client id {args.client_id!r})",
        flush=True,
    )
    web.run_app(server.app(), host=args.host, port=args.port, print=None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
