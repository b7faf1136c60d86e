"""FieldDiscoveryRoute: `GET /v1/field-discovery/{category}` — the
customer-data fields of a category (or `all`), each with its type, its kind
of personal data and the share of customers that carry it; for keys with
the `chat` scope."""

from __future__ import annotations

import grpc
from tilores_x.v1 import router_pb2, router_pb2_grpc

from gateway.exchange import Exchange
from gateway.openai_errors import from_grpc
from gateway.quotas import Quotas
from gateway.routes import Route

PARAMS = {"category": r"[a-z_]{1,32}"}


class FieldDiscoveryRoute:
    def __init__(self, router: router_pb2_grpc.RouterServiceStub, quotas: Quotas):
        self._router = router
        self._quotas = quotas

    def routes(self) -> list[Route]:
        return [Route("GET", "/v1/field-discovery/{category}", self.fields, "chat", PARAMS, agents_only=True)]

    async def fields(self, exchange: Exchange, category: str) -> None:
        exchange.headers.extend((await self._quotas.admit(exchange.key, "models")).headers())
        request = router_pb2.DiscoverFieldsRequest(category=category)
        try:
            reply = await self._router.DiscoverFields(request, timeout=10.0)
        except grpc.aio.AioRpcError as error:
            raise from_grpc(error) from None
        data = [
            {
                "name": f.name,
                "category": f.category,
                "type": f.type,
                "share": round(f.share, 4) if f.HasField("share") else None,
                "pii_kind": f.pii_kind or None,
            }
            for f in reply.fields
        ]
        await exchange.json(200, {"object": "list", "category": category, "data": data})
