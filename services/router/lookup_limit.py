"""LookupLimit: how many distinct customers one principal (an API key, a
caller from outside) may look at in an hour of the clock. An agent looks up
the same few customers again and again; a harvesting run looks up a new one
every time. Looking at a customer already seen this hour is always allowed;
a new one beyond the limit is refused before any of its data is read.

The sets live in Redis (REDIS_URL), one per principal and hour, checked and
added to in one script, so every router replica counts the same customers.
Without Redis, or while it is away, each replica counts its own (the limit
then holds per replica) and says so in its log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from redis.exceptions import RedisError

from services.runtime.faults import ResourceExhausted
from services.runtime.redis_connections import redis_client

log = logging.getLogger("router.lookups")
WINDOW_S = 3600
REDIS_TIMEOUT_S = 0.25

# KEYS[1]: the set of this principal's customers this hour; ARGV[1]: the
# limit; ARGV[2]: seconds to keep the set; ARGV[3..]: the customers, none
# for a lookup that found nobody (refused too once the set is full).
# Returns {admitted (1/0), customers in the set afterwards}.
_ADMIT = """
local new = 0
for i = 3, #ARGV do
  if redis.call('SISMEMBER', KEYS[1], ARGV[i]) == 0 then new = new + 1 end
end
local held = redis.call('SCARD', KEYS[1])
local limit = tonumber(ARGV[1])
if (new > 0 and held + new > limit) or (#ARGV == 2 and held >= limit) then return {0, held} end
if new > 0 then
  redis.call('SADD', KEYS[1], unpack(ARGV, 3))
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
end
return {1, held + new}
"""


class LookupLimitReached(ResourceExhausted):
    """Too many distinct customers this hour for one principal."""


class LocalLookups:
    """This process's own sets, for a router without Redis."""

    def __init__(self) -> None:
        self._seen: dict[str, set[str]] = {}

    async def admit(self, key: str, limit: int, entity_ids: Sequence[str]) -> tuple[bool, int]:
        hour = key.rsplit(":", 1)[1]
        for old in [k for k in self._seen if not k.endswith(f":{hour}")]:
            del self._seen[old]
        seen = self._seen.setdefault(key, set())
        new = set(entity_ids) - seen
        if (new and len(seen) + len(new) > limit) or (not entity_ids and len(seen) >= limit):
            return False, len(seen)
        seen |= new
        return True, len(seen)


class RedisLookups:
    def __init__(self, url: str):
        self._redis = redis_client(url, REDIS_TIMEOUT_S)
        self._script = self._redis.register_script(_ADMIT)

    async def admit(self, key: str, limit: int, entity_ids: Sequence[str]) -> tuple[bool, int]:
        admitted, held = await self._script(keys=[key], args=[limit, WINDOW_S + 60, *entity_ids])
        return bool(admitted), int(held)

    async def close(self) -> None:
        await self._redis.aclose()


class LookupLimit:
    def __init__(self, per_hour: int, redis_url: str = "", clock: Callable[[], float] = time.time):
        self.per_hour = per_hour
        self._shared = RedisLookups(redis_url) if redis_url else None
        self._local = LocalLookups()
        self._clock = clock
        self._degraded = False
        # Per key of this hour, the customers Redis has admitted: a hot
        # customer costs the turn no Redis round trip.
        self._confirmed: dict[str, set[str]] = {}

    def _remember(self, key: str, entity_ids: Sequence[str]) -> None:
        hour = key.rsplit(":", 1)[1]
        for old in [k for k in self._confirmed if not k.endswith(f":{hour}")]:
            del self._confirmed[old]
        self._confirmed.setdefault(key, set()).update(entity_ids)

    async def admit(self, who: str, entity_ids: Sequence[str], per_hour: int = 0) -> None:
        """Let `who` look at these customers, or raise LookupLimitReached;
        `per_hour`: the principal's own limit (0: the default). No customers:
        a lookup that found nobody, refused like a new customer once the
        limit is reached, so the answer past it says nothing about who is
        a customer."""
        limit = per_hour or self.per_hour
        if limit <= 0:
            return
        hour = int(self._clock() // WINDOW_S)
        key = f"lookups:{who}:{hour}"
        admitted, held = await self._count(key, entity_ids, limit)
        if not admitted:
            log.warning("lookups.limited", extra={"fields": {"who": who, "held": held, "limit": limit}})
            reset_s = int((hour + 1) * WINDOW_S - self._clock())
            raise LookupLimitReached(
                f"{who} has looked at {held} different customers this hour, the limit is {limit}; "
                f"customers already looked at stay available, new ones in {reset_s} s",
                retry_after_s=reset_s,
            )

    async def _count(self, key: str, entity_ids: Sequence[str], limit: int) -> tuple[bool, int]:
        if self._shared is not None:
            confirmed = self._confirmed.get(key)
            if entity_ids and confirmed is not None and confirmed.issuperset(entity_ids):
                # Redis took these customers for this key this hour: they
                # stay allowed, and asking again would change nothing.
                return True, len(confirmed)
            try:
                result = await self._shared.admit(key, limit, entity_ids)
            except (RedisError, OSError) as error:
                if not self._degraded:
                    log.error("lookups.redis_unavailable", extra={"fields": {"error": type(error).__name__}})
                self._degraded = True
            else:
                self._degraded = False
                await self._local.admit(key, limit, entity_ids)  # warm, should Redis go away
                if result[0]:
                    self._remember(key, entity_ids)
                return result
        return await self._local.admit(key, limit, entity_ids)

    async def close(self) -> None:
        if self._shared is not None:
            await self._shared.close()
