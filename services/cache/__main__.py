"""Start cache: `python -m services.cache`.

CACHE_MAX_ENTRIES  entry bound of the in-process tier (default 10000)
CACHE_MAX_BYTES    byte bound of the in-process tier (default 64 MiB)
CACHE_TTL_S        default time to live when a namespace has none (default 3600)
"""

from __future__ import annotations

from services.cache.service import CacheComponent, CacheService
from services.runtime.lru import LruCache
from services.runtime.server import main
from services.runtime.settings import env_float, env_int

# Default time to live per namespace, in seconds.
NAMESPACE_TTL_S = {"customer": 3600.0, "fields": 3600.0, "llm_response": 86400.0}


async def build() -> CacheComponent:
    lru = LruCache(
        max_entries=env_int("CACHE_MAX_ENTRIES", 10_000, minimum=1),
        max_bytes=env_int("CACHE_MAX_BYTES", 64 * 1024 * 1024, minimum=1024),
    )
    return CacheComponent(CacheService(lru, NAMESPACE_TTL_S, env_float("CACHE_TTL_S", 3600.0, minimum=1.0)))


if __name__ == "__main__":
    main("cache", build)
