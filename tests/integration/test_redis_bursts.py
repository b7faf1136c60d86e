"""A burst of calls larger than a Redis connection pool, against a real
redis-server: every call is counted. (redis-py's default pool refuses the
101st call in flight, which quotas would admit uncounted and lookup limits
would count per replica only.)"""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as redis

from gateway.api_key import ApiKey
from gateway.quotas import Quotas
from services.router.lookup_limit import LookupLimit

BURST = 150  # past the pool's 100 connections


async def test_a_burst_of_requests_is_counted_whole_against_the_quota(redis_server, caplog):
    key = ApiKey("desk-7", b"\0" * 32, "acme", frozenset({"chat"}), limits={"requests_per_minute": 10_000,
                 "tokens_per_minute": 10**9})  # fmt: skip
    quotas = Quotas(redis_server.url, clock=lambda: 600.0)
    with caplog.at_level(logging.WARNING, logger="gateway.quotas"):
        admissions = await asyncio.gather(*(quotas.admit(key, "chat") for _ in range(BURST)))
    await quotas.close()
    assert not [r.message for r in caplog.records], "quotas said Redis was unavailable"
    assert sorted(a.remaining_requests for a in admissions) == list(range(10_000 - BURST, 10_000))
    client = redis.Redis.from_url(redis_server.url)
    assert int(await client.get("q:desk-7:chat:requests:10")) == BURST
    await client.aclose()


async def test_a_burst_of_lookups_is_counted_in_redis_not_per_replica(redis_server, caplog):
    limit = LookupLimit(10, redis_server.url, clock=lambda: 7200.0)
    with caplog.at_level(logging.WARNING):
        await asyncio.gather(*(limit.admit(f"key/desk-{n}", [f"e{n}"]) for n in range(BURST)))
    await limit.close()
    assert not [r.message for r in caplog.records if "degraded" in r.message or "unavailable" in r.message]
    client = redis.Redis.from_url(redis_server.url)
    assert len([k async for k in client.scan_iter(match="*desk-*")]) == BURST
    await client.aclose()
