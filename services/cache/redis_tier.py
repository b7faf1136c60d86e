"""RedisTier: the cache's second tier, on redis-py's asyncio client.

Redis is never the outage. Every command has a short timeout; the first
failure marks the tier DEGRADED and later reads and writes skip Redis at
once (no request waits on a dead server) while a background task pings it
and restores CONNECTED as soon as it answers.

Key layout: `tx:v1:<tenant>:<namespace>:{<digest of the key>}`. The key
itself is hashed, so no customer identifier appears in Redis key names; the
hash tag makes a key's slot depend on that digest alone, so everything kept
for one key lands in one Redis Cluster slot.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable

from redis.exceptions import RedisError

from services.runtime.redis_connections import redis_client

log = logging.getLogger("cache.redis")

CLEAR_CHANNEL = "tx:v1:clear"  # "<tenant>\x00<namespace>" of a clear, for every replica's own tier
DISABLED = "disabled"
CONNECTED = "connected"
DEGRADED = "degraded"


class TierFailure(Exception):
    """A Redis read failed; the caller counts it and carries on."""


def redis_key(tenant: str, namespace: str, key: str) -> str:
    digest = hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
    return f"tx:v1:{tenant}:{namespace}:{{{digest}}}"


class RedisTier:
    def __init__(self, url: str, timeout_s: float = 0.25, reconnect_every_s: float = 0.5):
        self._client = redis_client(url, timeout_s, retry_on_timeout=False)
        self._reconnect_every_s = reconnect_every_s
        self.state = CONNECTED
        self.last_error = ""
        self._watcher: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Check the server once; a dead Redis at start-up is DEGRADED, not fatal."""
        try:
            await self._client.ping()
        except (RedisError, OSError) as error:
            self._failed(error)

    def _failed(self, error: BaseException) -> None:
        self.last_error = type(error).__name__
        if self.state != DEGRADED:
            self.state = DEGRADED
            log.warning("redis.degraded", extra={"fields": {"error": self.last_error}})
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.ensure_future(self._reconnect())

    async def _reconnect(self) -> None:
        while self.state == DEGRADED:
            await asyncio.sleep(self._reconnect_every_s)
            try:
                # Connections from before the failure are dead: start afresh,
                # or the first command after recovery fails on one of them.
                await self._client.connection_pool.disconnect()
                await self._client.ping()
            except (RedisError, OSError) as error:
                self.last_error = type(error).__name__
                continue
            self.state = CONNECTED
            self.last_error = ""
            log.info("redis.reconnected")

    @property
    def available(self) -> bool:
        return self.state == CONNECTED

    async def get(self, key: str) -> tuple[bytes, float] | None:
        """(value, seconds left to live) or None on a miss or while the tier
        is degraded; TierFailure when this read failed (and degraded it)."""
        if not self.available:
            return None
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.get(key)
                pipe.pttl(key)
                value, ttl_ms = await pipe.execute()
        except (RedisError, OSError) as error:
            self._failed(error)
            raise TierFailure(type(error).__name__) from None
        if value is None:
            return None
        return value, (ttl_ms / 1000 if ttl_ms and ttl_ms > 0 else 0.0)

    async def set(self, key: str, value: bytes, ttl_s: float) -> bool:
        if not self.available:
            return False
        try:
            await self._client.set(key, value, px=max(1, int(ttl_s * 1000)))
        except (RedisError, OSError) as error:
            self._failed(error)
            return False
        return True

    async def delete(self, key: str) -> bool:
        if not self.available:
            return False
        try:
            return bool(await self._client.delete(key))
        except (RedisError, OSError) as error:
            self._failed(error)
            return False

    async def clear(self, prefix: str, announce: str) -> int:
        """Unlink every key under `prefix` (SCAN, never KEYS) and tell every
        replica (`announce` on CLEAR_CHANNEL); how many keys went."""
        if not self.available:
            return 0
        removed = 0
        try:
            batch: list[bytes] = []
            async for key in self._client.scan_iter(match=f"{prefix}*", count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    removed += await self._client.unlink(*batch)
                    batch = []
            if batch:
                removed += await self._client.unlink(*batch)
            await self._client.publish(CLEAR_CHANNEL, announce)
        except (RedisError, OSError) as error:
            self._failed(error)
        return removed

    def listen_for_clears(self, on_clear: Callable[[str, str], object]) -> None:
        """Call `on_clear(tenant, namespace)` for every clear any replica
        announces, resubscribing after Redis comes back."""
        self._listener = asyncio.ensure_future(self._listen(on_clear))

    async def _listen(self, on_clear: Callable[[str, str], object]) -> None:
        while True:
            try:
                async with self._client.pubsub() as pubsub:
                    await pubsub.subscribe(CLEAR_CHANNEL)
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            tenant, _, namespace = message["data"].decode().partition("\x00")
                            on_clear(tenant, namespace)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError):
                await asyncio.sleep(self._reconnect_every_s)

    async def size(self) -> int | None:
        if not self.available:
            return None
        try:
            return int(await self._client.dbsize())
        except (RedisError, OSError) as error:
            self._failed(error)
            return None

    async def close(self) -> None:
        for task in (self._watcher, self._listener):
            if task is not None:
                task.cancel()
        await self._client.aclose()
