"""CacheService servicer: maps Get/Set/Delete onto the LRU tier."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from tilores_x.v1 import cache_pb2, cache_pb2_grpc

from services.runtime.faults import InvalidArgument
from services.runtime.lru import LruCache


def _key(namespace: str, key: str) -> str:
    if not namespace:
        raise InvalidArgument("namespace is required", field="namespace")
    if not key:
        raise InvalidArgument("key is required", field="key")
    return f"{namespace}\x00{key}"


class CacheService(cache_pb2_grpc.CacheServiceServicer):
    def __init__(self, lru: LruCache, default_ttl_s: dict[str, float], fallback_ttl_s: float):
        self._lru = lru
        self._default_ttl_s = default_ttl_s
        self._fallback_ttl_s = fallback_ttl_s

    async def Get(self, request, context):
        value = self._lru.get(_key(request.namespace, request.key))
        if value is None:
            return cache_pb2.GetResponse(found=False)
        return cache_pb2.GetResponse(found=True, value=value)

    async def Set(self, request, context):
        key = _key(request.namespace, request.key)
        if request.HasField("ttl"):
            ttl_s = request.ttl.ToMilliseconds() / 1000
            if ttl_s <= 0:
                raise InvalidArgument("ttl must be positive", field="ttl")
        else:
            ttl_s = self._default_ttl_s.get(request.namespace, self._fallback_ttl_s)
        return cache_pb2.SetResponse(stored=self._lru.set(key, request.value, ttl_s))

    async def Delete(self, request, context):
        return cache_pb2.DeleteResponse(deleted=self._lru.delete(_key(request.namespace, request.key)))


class CacheComponent:
    def __init__(self, service: CacheService):
        self.service = service

    def register(self, server: grpc.aio.Server) -> Sequence[str]:
        cache_pb2_grpc.add_CacheServiceServicer_to_server(self.service, server)
        return [cache_pb2.DESCRIPTOR.services_by_name["CacheService"].full_name]

    async def close(self) -> None:
        return None
