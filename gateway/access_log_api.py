"""AccessLogRoutes: the access log of customer data over REST, for keys with
the `audit` scope.

  GET  /v1/access-log?customer=&entity_id=&who=&completion_id=&since=&until=&limit=&cursor=
  POST /v1/customer-names   {"entity_ids": [...]} (at most 100)

Every filter is optional. `customer` is an e-mail, client id, phone number
or Salesforce contact id (the router finds whom it names; that look goes on
the log too) or an entity id; `since` and `until` are ISO 8601 times (as
the records show `at`) or seconds since the epoch; `limit` 1 to 1000
(default 100). The answer lists records newest first: who (`key/<id>`,
`client/<name>`), the customer's entity id, the action, the kinds of data,
the completion it served, the service that recorded it and when;
`truncated` says whether more match and `next_cursor` fetches them.
`/v1/customer-names` names the customers of entity ids, each look on
record as well."""

from __future__ import annotations

import re
from typing import Any

import grpc
import orjson
from tilores_x.v1 import audit_pb2, audit_pb2_grpc, router_pb2, router_pb2_grpc

from gateway.exchange import Exchange
from gateway.json_body import check_integer, check_string, field, json_object
from gateway.openai_errors import OpenAIError, from_grpc
from gateway.plain_json import plain_dict
from gateway.query_params import moment_param, query_params
from gateway.routes import Route

FILTERS = ("customer", "entity_id", "who", "completion_id", "since", "until", "limit", "cursor")
MAX_LIMIT = 1000
MAX_TEXT = 200
MAX_NAMED = 100
# An entity id as Tilores writes one (a UUID); anything else is an identifier to look up.
ENTITY_ID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class AccessLogRoutes:
    def __init__(self, audit: audit_pb2_grpc.AuditServiceStub, router: router_pb2_grpc.RouterServiceStub):
        self._audit = audit
        self._router = router

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/v1/access-log", self.query, "audit"),
            Route("POST", "/v1/customer-names", self.names, "audit"),
        ]

    async def query(self, exchange: Exchange) -> None:
        query = query_params(exchange.query, FILTERS)
        limit = query.get("limit", "")
        if limit and (not limit.isdigit() or len(limit) > 6):
            raise OpenAIError(400, "Invalid 'limit': expected an integer.", param="limit", code="invalid_type")
        entity_id = check_string("entity_id", query.get("entity_id", ""), MAX_TEXT)
        customer = check_string("customer", query.get("customer", "").strip(), MAX_TEXT)
        customers = None
        if customer:
            if entity_id:
                raise OpenAIError(400, "Give 'customer' or 'entity_id', not both.", param="customer")
            customers = await self._customers_of(customer)
            if len(customers) > 1:
                raise OpenAIError(
                    400,
                    f"Invalid 'customer': {len(customers)} customers match; give an entity id.",
                    param="customer",
                    code="ambiguous_customer",
                )
            if not customers:
                await exchange.json(200, _page([], None, customers))
                return
            entity_id = customers[0]["entity_id"]
        request = audit_pb2.QueryAccessRequest(
            entity_id=entity_id,
            who=check_string("who", query.get("who", ""), MAX_TEXT),
            completion_id=check_string("completion_id", query.get("completion_id", ""), MAX_TEXT),
            since=moment_param(query, "since"),
            until=moment_param(query, "until"),
            limit=check_integer("limit", int(limit), 1, MAX_LIMIT) if limit else 0,
            page_token=check_string("cursor", query.get("cursor", ""), MAX_TEXT),
        )
        try:
            reply = await self._audit.QueryAccess(request, timeout=10.0)
        except grpc.aio.AioRpcError as error:
            raise _renamed(from_grpc(error)) from None
        records = [plain_dict(record) for record in reply.records]
        await exchange.json(200, _page(records, reply, customers))

    async def names(self, exchange: Exchange) -> None:
        body = json_object(await exchange.body() or b"")
        entity_ids = field(body, "entity_ids", list, required=True)
        if len(entity_ids) > MAX_NAMED:
            raise OpenAIError(400, f"Invalid 'entity_ids': at most {MAX_NAMED}.", param="entity_ids")
        ids = [check_string(f"entity_ids[{n}]", e, MAX_TEXT) for n, e in enumerate(entity_ids)]
        found = await self._find(router_pb2.FindCustomersRequest(entity_ids=ids))
        await exchange.json(200, orjson.dumps({"object": "list", "data": found}))

    async def _customers_of(self, customer: str) -> list[dict[str, Any]]:
        if ENTITY_ID.fullmatch(customer):
            return await self._find(router_pb2.FindCustomersRequest(entity_ids=[customer.lower()]))
        try:
            return await self._find(router_pb2.FindCustomersRequest(identifier=customer))
        except OpenAIError as error:
            if error.status == 400 and error.param == "identifier":
                raise OpenAIError(
                    400,
                    "Invalid 'customer': give an e-mail, client id, phone number, Salesforce contact id or entity id.",
                    param="customer",
                ) from None
            raise

    async def _find(self, request: router_pb2.FindCustomersRequest) -> list[dict[str, Any]]:
        try:
            reply = await self._router.FindCustomers(request, timeout=10.0)
        except grpc.aio.AioRpcError as error:
            raise from_grpc(error) from None
        return [plain_dict(c) for c in reply.customers]


def _page(records: list[dict[str, Any]], reply: Any, customers: list[dict[str, Any]] | None) -> bytes:
    return orjson.dumps(
        {
            "object": "list",
            "data": records,
            "truncated": bool(reply and reply.truncated),
            "next_cursor": (reply.next_page_token or None) if reply else None,
            "customers": customers,
        }
    )


def _renamed(error: OpenAIError) -> OpenAIError:
    """The audit service's field names as this route's parameters."""
    if error.param == "page_token":
        return OpenAIError(400, "Invalid 'cursor': not a cursor this log gave.", param="cursor")
    return error
