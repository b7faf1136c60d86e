"""AccessLogRoute: the access log of customer data over REST, for keys with
the `audit` scope.

  GET /v1/access-log?entity_id=&who=&completion_id=&since=&until=&limit=

Every filter is optional; `since` and `until` are seconds since the epoch,
`limit` 1 to 1000 (default 100). The answer lists records newest first:
who (`key/<id>`, `client/<name>`), the customer's entity id, the action,
the kinds of data, the completion it served, the service that recorded it
and when; `truncated` says whether more match."""

from __future__ import annotations

from urllib.parse import parse_qs

import grpc
import orjson
from tilores_x.v1 import audit_pb2, audit_pb2_grpc

from gateway.exchange import Exchange
from gateway.json_body import check_integer, check_number, check_string
from gateway.openai_errors import OpenAIError, from_grpc
from gateway.plain_json import plain_dict
from gateway.routes import Route

FILTERS = ("entity_id", "who", "completion_id", "since", "until", "limit")
MAX_LIMIT = 1000
MAX_TEXT = 200


def _query(text: str) -> dict[str, str]:
    try:
        parsed = parse_qs(text, keep_blank_values=True, strict_parsing=bool(text), max_num_fields=len(FILTERS) + 1)
    except ValueError:
        raise OpenAIError(400, "The query string is malformed.", code="invalid_value") from None
    for name, values in parsed.items():
        if name not in FILTERS:
            raise OpenAIError(
                400, f"Unknown parameter: '{name}' (one of {', '.join(FILTERS)}).", param=name, code="unknown_parameter"
            )
        if len(values) > 1:
            raise OpenAIError(400, f"Invalid '{name}': given more than once.", param=name, code="invalid_value")
    return {name: values[0] for name, values in parsed.items()}


def _number(query: dict[str, str], name: str) -> float:
    text = query.get(name, "")
    if not text:
        return 0.0
    try:
        value = float(text)
    except ValueError:
        raise OpenAIError(
            400, f"Invalid '{name}': expected seconds since the epoch.", param=name, code="invalid_type"
        ) from None
    return check_number(name, value, 0, 1e11)


class AccessLogRoute:
    def __init__(self, audit: audit_pb2_grpc.AuditServiceStub):
        self._audit = audit

    def routes(self) -> list[Route]:
        return [Route("GET", "/v1/access-log", self.query, "audit")]

    async def query(self, exchange: Exchange) -> None:
        query = _query(exchange.query)
        limit = query.get("limit", "")
        if limit and not limit.isdigit():
            raise OpenAIError(400, "Invalid 'limit': expected an integer.", param="limit", code="invalid_type")
        request = audit_pb2.QueryAccessRequest(
            entity_id=check_string("entity_id", query.get("entity_id", ""), MAX_TEXT),
            who=check_string("who", query.get("who", ""), MAX_TEXT),
            completion_id=check_string("completion_id", query.get("completion_id", ""), MAX_TEXT),
            since=_number(query, "since"),
            until=_number(query, "until"),
            limit=check_integer("limit", int(limit), 1, MAX_LIMIT) if limit else 0,
        )
        try:
            reply = await self._audit.QueryAccess(request, timeout=10.0)
        except grpc.aio.AioRpcError as error:
            raise from_grpc(error) from None
        body = {
            "object": "list",
            "data": [plain_dict(record) for record in reply.records],
            "truncated": reply.truncated,
        }
        await exchange.json(200, orjson.dumps(body))
