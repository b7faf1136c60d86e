"""CacheAdminRoute: `POST /v1/clear-cache` (admin keys) —
`{"tenant": "acme", "namespace": "customer"}` removes a tenant's cached
values, of one namespace (`customer`: lookups, 360 views and credit reports;
`llm_response`: replayable answers) or of all, from Redis and from every
cache replica's own tier."""

from __future__ import annotations

import re

import grpc
from tilores_x.v1 import cache_pb2, cache_pb2_grpc

from gateway.exchange import Exchange
from gateway.json_body import field, json_object
from gateway.openai_errors import OpenAIError, from_grpc
from gateway.routes import Route

_TENANT = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_NAMESPACE = re.compile(r"^[a-z0-9_]{1,64}$")


class CacheAdminRoute:
    def __init__(self, cache: cache_pb2_grpc.CacheServiceStub):
        self._cache = cache

    def routes(self) -> list[Route]:
        return [Route("POST", "/v1/clear-cache", self.clear, "admin")]

    async def clear(self, exchange: Exchange) -> None:
        raw = await exchange.body()
        if raw is None:
            return
        body = json_object(raw) if raw else {}
        tenant = field(body, "tenant", str, required=True)
        namespace = field(body, "namespace", str, default="")
        if not _TENANT.match(tenant):
            raise OpenAIError(400, "Invalid 'tenant': letters, digits, '-', '_' and '.', at most 64.", param="tenant")
        if namespace and not _NAMESPACE.match(namespace):
            raise OpenAIError(
                400, "Invalid 'namespace': lower-case letters, digits and '_', at most 64.", param="namespace"
            )
        try:
            reply = await self._cache.Clear(cache_pb2.ClearRequest(tenant=tenant, namespace=namespace), timeout=30.0)
        except grpc.aio.AioRpcError as error:
            raise from_grpc(error) from None
        await exchange.json(
            200,
            {
                "object": "cache.clear",
                "tenant": tenant,
                "namespace": namespace or None,
                "redis_removed": reply.redis_removed,
                "local_removed": reply.local_removed,
            },
        )
