"""TwoTierCache: an in-process LRU (L1) in front of Redis (L2).

A read tries L1, then L2; an L2 hit is promoted into L1 for the time it has
left to live. A write goes to both. Without Redis, or while it is degraded,
L1 alone answers."""

from __future__ import annotations

import time

from services.cache.cache_stats import CacheStats
from services.cache.redis_tier import RedisTier, TierFailure, redis_key
from services.runtime.lru import LruCache

L1 = "l1"
L2 = "l2"


def _l1_key(tenant: str, namespace: str, key: str) -> str:
    return f"{tenant}\x00{namespace}\x00{key}"


class TwoTierCache:
    def __init__(self, l1: LruCache[str, bytes], l2: RedisTier | None = None, stats: CacheStats | None = None) -> None:
        self.l1 = l1
        self.l2 = l2
        self.stats = stats or CacheStats()
        if l2 is not None:
            l2.listen_for_clears(self.clear_local)

    async def get(self, tenant: str, namespace: str, key: str) -> bytes | None:
        started = time.perf_counter()
        local = _l1_key(tenant, namespace, key)
        value = self.l1.get(local)
        self.stats.read(L1, namespace, value is not None, (time.perf_counter() - started) * 1000)
        if value is not None or self.l2 is None:
            return value
        started = time.perf_counter()
        failed = False
        try:
            found = await self.l2.get(redis_key(tenant, namespace, key))
        except TierFailure:
            found, failed = None, True
        self.stats.read(L2, namespace, found is not None, (time.perf_counter() - started) * 1000, error=failed)
        if found is None:
            return None
        value, ttl_left_s = found
        if ttl_left_s > 0:
            self.l1.set(local, value, ttl_left_s)
            self.stats.promotions += 1
        return value

    async def set(self, tenant: str, namespace: str, key: str, value: bytes, ttl_s: float) -> bool:
        stored = self.l1.set(_l1_key(tenant, namespace, key), value, ttl_s)
        if self.l2 is not None:
            stored = await self.l2.set(redis_key(tenant, namespace, key), value, ttl_s) or stored
        return stored

    async def delete(self, tenant: str, namespace: str, key: str) -> bool:
        deleted = self.l1.delete(_l1_key(tenant, namespace, key))
        if self.l2 is not None:
            deleted = await self.l2.delete(redis_key(tenant, namespace, key)) or deleted
        return deleted

    def clear_local(self, tenant: str, namespace: str) -> int:
        """This process's values of a tenant (of one namespace, or all)."""
        return self.l1.delete_prefix(f"{tenant}\x00{namespace}\x00" if namespace else f"{tenant}\x00")

    async def clear(self, tenant: str, namespace: str) -> tuple[int, int]:
        """(removed from Redis, removed here); every other replica is told."""
        local = self.clear_local(tenant, namespace)
        remote = 0
        if self.l2 is not None:
            prefix = f"tx:v1:{tenant}:{namespace}:" if namespace else f"tx:v1:{tenant}:"
            remote = await self.l2.clear(prefix, f"{tenant}\x00{namespace}")
        return remote, local

    async def close(self) -> None:
        if self.l2 is not None:
            await self.l2.close()
