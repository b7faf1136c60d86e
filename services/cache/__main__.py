"""Start cache: `python -m services.cache`.

CACHE_MAX_ENTRIES          entry bound of the in-process tier (default 10000)
CACHE_MAX_BYTES            byte bound of the in-process tier (default 64 MiB)
CACHE_TTL_S                time to live of a namespace without its own (default 3600)
CACHE_TTL_CUSTOMER_S       customer data (default 3600)
CACHE_TTL_FIELDS_S         field lists (default 3600)
CACHE_TTL_LLM_RESPONSE_S   replayable model answers (default 86400)
REDIS_URL                  the second tier, e.g. redis://127.0.0.1:6379/0; unset: in-process only
REDIS_TIMEOUT_S            timeout of one Redis command (default 0.25)
TILORES_DATA_SERVICE_ADDR  where prewarm reads customers (default 127.0.0.1:50053)
CACHE_PREWARM_FILE         identifiers to load at start-up, one per line; unset: none
CACHE_PREWARM_INTERVAL_S   reload that list this often (default 3600; 0: once)
"""

from __future__ import annotations

import grpc
from tilores_x.v1 import tilores_data_pb2_grpc

from services.cache.clients import CustomerSourceOverGrpc
from services.cache.prewarm import Prewarmer
from services.cache.redis_tier import RedisTier
from services.cache.service import CacheComponent, CacheService
from services.cache.two_tier import TwoTierCache
from services.runtime.channels import open_channel
from services.runtime.lru import LruCache
from services.runtime.server import main
from services.runtime.settings import env_float, env_int, env_str, peer_addr


async def build() -> CacheComponent:
    lru: LruCache[str, bytes] = LruCache(
        max_entries=env_int("CACHE_MAX_ENTRIES", 10_000, minimum=1),
        max_bytes=env_int("CACHE_MAX_BYTES", 64 * 1024 * 1024, minimum=1024),
    )
    namespace_ttl_s = {
        "customer": env_float("CACHE_TTL_CUSTOMER_S", 3600.0, minimum=1.0),
        "fields": env_float("CACHE_TTL_FIELDS_S", 3600.0, minimum=1.0),
        "llm_response": env_float("CACHE_TTL_LLM_RESPONSE_S", 86400.0, minimum=1.0),
    }
    redis_url = env_str("REDIS_URL")
    l2 = None
    if redis_url:
        l2 = RedisTier(redis_url, timeout_s=env_float("REDIS_TIMEOUT_S", 0.25, minimum=0.01))
        await l2.start()
    cache = TwoTierCache(lru, l2)
    channel: grpc.aio.Channel = open_channel(peer_addr("tilores_data"), "tilores_data")
    prewarmer = Prewarmer(
        CustomerSourceOverGrpc(tilores_data_pb2_grpc.TiloresDataServiceStub(channel)),
        cache,
        namespace_ttl_s["customer"],
    )
    service = CacheService(cache, namespace_ttl_s, env_float("CACHE_TTL_S", 3600.0, minimum=1.0), prewarmer)
    return CacheComponent(
        service,
        prewarm_file=env_str("CACHE_PREWARM_FILE"),
        prewarm_every_s=env_float("CACHE_PREWARM_INTERVAL_S", 3600.0, minimum=0.0),
        on_close=channel.close,
    )


if __name__ == "__main__":
    main("cache", build)
