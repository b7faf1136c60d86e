"""AccessLogRoute: the access log of customer data over REST, for keys with
the `audit` scope.

  GET /v1/access-log?entity_id=&who=&completion_id=&since=&until=&limit=

Every filter is optional; `since` and `until` are ISO 8601 times (as the
records show `at`) or seconds since the epoch, `limit` 1 to 1000 (default 100). The answer lists records newest first:
who (`key/<id>`, `client/<name>`), the customer's entity id, the action,
the kinds of data, the completion it served, the service that recorded it
and when; `truncated` says whether more match."""

from __future__ import annotations

import grpc
import orjson
from tilores_x.v1 import audit_pb2, audit_pb2_grpc

from gateway.exchange import Exchange
from gateway.json_body import check_integer, check_string
from gateway.openai_errors import OpenAIError, from_grpc
from gateway.plain_json import plain_dict
from gateway.query_params import moment_param, query_params
from gateway.routes import Route

FILTERS = ("entity_id", "who", "completion_id", "since", "until", "limit")
MAX_LIMIT = 1000
MAX_TEXT = 200


class AccessLogRoute:
    def __init__(self, audit: audit_pb2_grpc.AuditServiceStub):
        self._audit = audit

    def routes(self) -> list[Route]:
        return [Route("GET", "/v1/access-log", self.query, "audit")]

    async def query(self, exchange: Exchange) -> None:
        query = query_params(exchange.query, FILTERS)
        limit = query.get("limit", "")
        if limit and not limit.isdigit():
            raise OpenAIError(400, "Invalid 'limit': expected an integer.", param="limit", code="invalid_type")
        request = audit_pb2.QueryAccessRequest(
            entity_id=check_string("entity_id", query.get("entity_id", ""), MAX_TEXT),
            who=check_string("who", query.get("who", ""), MAX_TEXT),
            completion_id=check_string("completion_id", query.get("completion_id", ""), MAX_TEXT),
            since=moment_param(query, "since"),
            until=moment_param(query, "until"),
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
