"""Quotas: how many requests and tokens a key may use a minute, exact
across gateway replicas.

Counters live in Redis (REDIS_URL), one per key, family of routes and
minute of the clock (and per model where the key's record limits a model);
one transaction per request increments them all and reads the token
counters, so N replicas admit exactly what one would. A request beyond a
limit gets 429 `rate_limit_error` with `Retry-After` (seconds to the next
minute) and the `x-ratelimit-*` headers OpenAI sends; every answer carries
them too. Tokens are counted once an answer's usage is known, and a key
whose tokens for the minute are spent is refused until the next. Without
REDIS_URL the counters are this process's own. Redis unreachable: requests
are admitted (quotas are fairness, not the door) and the gateway logs it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as redis

from gateway.api_key import ApiKey
from gateway.openai_errors import OpenAIError
from services.runtime.redis_connections import redis_client

log = logging.getLogger("gateway.quotas")
WINDOW_S = 60
# Requests a minute per route family when the key's record says nothing
# else: the chat routes use the key's own `requests_per_minute`.
FAMILY_LIMITS = {"models": 500, "feedback": 500, "admin": 500}
REDIS_TIMEOUT_S = 0.25


@dataclass(frozen=True)
class Admission:
    """What one request was told: limits, what remains and when it resets."""

    limit_requests: int
    remaining_requests: int
    limit_tokens: int
    remaining_tokens: int
    reset_s: float

    def headers(self) -> list[tuple[bytes, bytes]]:
        reset = f"{max(self.reset_s, 0.001):.3f}".rstrip("0").rstrip(".") + "s"
        return [
            (b"x-ratelimit-limit-requests", str(self.limit_requests).encode()),
            (b"x-ratelimit-remaining-requests", str(self.remaining_requests).encode()),
            (b"x-ratelimit-reset-requests", reset.encode()),
            (b"x-ratelimit-limit-tokens", str(self.limit_tokens).encode()),
            (b"x-ratelimit-remaining-tokens", str(self.remaining_tokens).encode()),
            (b"x-ratelimit-reset-tokens", reset.encode()),
        ]


class Counters:
    """Per-process counters with Redis's semantics, for a gateway without Redis."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    async def add(self, increments: dict[str, int], reads: list[str]) -> tuple[list[int], list[int]]:
        for key in list(self._counts):
            if int(key.rsplit(":", 1)[1]) < int(time.time() // WINDOW_S) - 1:
                del self._counts[key]  # past windows
        added = []
        for key, amount in increments.items():
            self._counts[key] = self._counts.get(key, 0) + amount
            added.append(self._counts[key])
        return added, [self._counts.get(key, 0) for key in reads]


# Increments (KEYS[1..n] by ARGV[2+i], each kept 2 windows) and reads (the
# other keys), atomically like a transaction but one reply instead of one
# per command: a request's quota check is one round trip and one parse.
_COUNT = """
local n = tonumber(ARGV[1])
local out = {}
for i = 1, n do
  out[i] = redis.call('INCRBY', KEYS[i], ARGV[2 + i])
  redis.call('EXPIRE', KEYS[i], ARGV[2])
end
for i = n + 1, #KEYS do
  out[i] = tonumber(redis.call('GET', KEYS[i]) or '0')
end
return out
"""


class RedisCounters:
    def __init__(self, url: str):
        self._redis = redis_client(url, REDIS_TIMEOUT_S)
        self._count = self._redis.register_script(_COUNT)

    async def add(self, increments: dict[str, int], reads: list[str]) -> tuple[list[int], list[int]]:
        keys = [*increments, *reads]
        results = await self._count(keys=keys, args=[len(increments), 2 * WINDOW_S, *increments.values()])
        return [int(r) for r in results[: len(increments)]], [int(r) for r in results[len(increments) :]]

    async def close(self) -> None:
        await self._redis.aclose()


class Quotas:
    def __init__(self, redis_url: str = "", clock: Callable[[], float] = time.time):
        self._counters = RedisCounters(redis_url) if redis_url else Counters()
        self._clock = clock

    def _window(self) -> tuple[int, float]:
        now = self._clock()
        return int(now // WINDOW_S), WINDOW_S - now % WINDOW_S

    async def admit(self, key: ApiKey, family: str, model: str = "", requests: int = 1) -> Admission:
        """Count the key's requests (a batch counts each of its items); 429
        when a limit of the key, or of the key for this model, is reached."""
        window, reset_s = self._window()
        request_limit = key.limits["requests_per_minute"] if family == "chat" else FAMILY_LIMITS.get(family, 500)
        token_limit = key.limits["tokens_per_minute"]
        limits = {f"q:{key.id}:{family}:requests:{window}": request_limit}
        tokens = {f"q:{key.id}:tokens:{window}": token_limit}
        for name, per_model in key.model_limits.get(model, {}).items():
            counter = f"q:{key.id}:{model}:{name.removesuffix('_per_minute')}:{window}"
            (limits if name == "requests_per_minute" else tokens)[counter] = per_model
        try:
            counts, spent = await self._counters.add(dict.fromkeys(limits, requests), list(tokens))
        except (redis.RedisError, OSError) as error:
            log.warning("quotas.unavailable", extra={"fields": {"error": type(error).__name__}})
            return Admission(request_limit, request_limit, token_limit, token_limit, reset_s)
        admission = Admission(
            limit_requests=request_limit,
            remaining_requests=max(0, request_limit - counts[0]),
            limit_tokens=token_limit,
            remaining_tokens=max(0, token_limit - spent[0]),
            reset_s=reset_s,
        )
        reached = [name for name, count, limit in zip(limits, counts, limits.values(), strict=True) if count > limit]
        reached += [name for name, used, limit in zip(tokens, spent, tokens.values(), strict=True) if used >= limit]
        if reached:
            what = "requests" if ":requests:" in reached[0] else "tokens"
            of_model = f" of {model}" if reached[0].count(":") > 3 and model in reached[0] else ""
            raise QuotaExceeded(
                f"Rate limit reached for {what}{of_model} per min on key {key.id}. "
                f"Please try again in {max(1, round(reset_s))}s.",
                admission,
            )
        return admission

    async def spend_tokens(self, key: ApiKey, model: str, tokens: int) -> None:
        """Count an answer's tokens against the key's minute."""
        if tokens <= 0:
            return
        window, _ = self._window()
        increments = {f"q:{key.id}:tokens:{window}": tokens}
        if "tokens_per_minute" in key.model_limits.get(model, {}):
            increments[f"q:{key.id}:{model}:tokens:{window}"] = tokens
        try:
            await self._counters.add(increments, [])
        except (redis.RedisError, OSError) as error:
            log.warning("quotas.unavailable", extra={"fields": {"error": type(error).__name__}})

    async def close(self) -> None:
        close = getattr(self._counters, "close", None)
        if close is not None:
            await close()


class QuotaExceeded(OpenAIError):
    """429 with the rate-limit headers and Retry-After."""

    def __init__(self, message: str, admission: Admission):
        super().__init__(
            429,
            message,
            type="rate_limit_error",
            code="rate_limit_exceeded",
            retry_after_s=max(1.0, admission.reset_s),
        )
        self.admission = admission
        self.headers = admission.headers()
