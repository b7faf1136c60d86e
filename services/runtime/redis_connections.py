"""One Redis client per process and server, whose calls wait for a free
connection instead of failing when a burst has every one in use.

redis-py's default pool holds at most 100 connections and raises
MaxConnectionsError for the 101st call in flight. Under a burst (a
thousand streams opened at once) that error would read as "Redis is away":
quotas would admit uncounted and lookup limits would fall back to counting
per replica. Here such a call waits up to `POOL_WAIT_S` for a connection;
a Redis that does not answer still fails within the socket timeout."""

from __future__ import annotations

import redis.asyncio as redis

MAX_CONNECTIONS = 100
# Waiting for a connection of this process's own pool, not for Redis: a
# burst of a thousand calls, a tenth of a millisecond each in Redis, clears
# in well under this.
POOL_WAIT_S = 5.0


def redis_client(url: str, timeout_s: float, **options: object) -> redis.Redis:
    """A client for `url` whose socket operations time out after `timeout_s`."""
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=POOL_WAIT_S,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        **options,
    )
    return redis.Redis.from_pool(pool)  # closing the client closes its pool
