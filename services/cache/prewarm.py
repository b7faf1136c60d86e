"""Prewarmer: load customers into the cache before anyone asks, so their
first question is a hit. For each identifier it runs the search the router
would run and caches it under the router's key, then caches each matching
customer's 360 view and credit report. Customers load in parallel."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from services.cache.ports import CustomerDataUnavailable, CustomerSource
from services.cache.two_tier import TwoTierCache
from services.runtime.customer_identifiers import identifiers_in
from services.runtime.customer_keys import CUSTOMER_NAMESPACE

MAX_IDENTIFIERS = 1000


@dataclass
class PrewarmResult:
    loaded: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    elapsed_ms: float = 0.0


def read_identifiers(text: str) -> list[str]:
    """One identifier per line; blank lines and `#` comments skipped."""
    return [line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()]


class Prewarmer:
    def __init__(self, customers: CustomerSource, cache: TwoTierCache, ttl_s: float):
        self._customers = customers
        self._cache = cache
        self._ttl_s = ttl_s

    async def prewarm(self, identifiers: list[str], tenant: str, concurrency: int = 8) -> PrewarmResult:
        started = time.perf_counter()
        result = PrewarmResult()
        gate = asyncio.Semaphore(concurrency)

        async def one(identifier: str) -> None:
            async with gate:
                reason = await self._load(identifier, tenant)
            if reason:
                result.failures.append((identifier, reason))
            else:
                result.loaded += 1

        await asyncio.gather(*(one(i) for i in identifiers))
        result.elapsed_ms = (time.perf_counter() - started) * 1000
        return result

    async def _load(self, identifier: str, tenant: str) -> str:
        """Empty on success, else why not."""
        parameters = identifiers_in(identifier).search_parameters()
        if not parameters:
            return "not an e-mail, client id, phone number or Salesforce contact id"
        try:
            key, answer, entity_ids = await self._customers.lookup(parameters)
            if not entity_ids:
                return "no customer matches"
            await self._cache.set(tenant, CUSTOMER_NAMESPACE, key, answer, self._ttl_s)
            for entity_id in entity_ids:
                for key, value in await self._customers.customer(entity_id):
                    await self._cache.set(tenant, CUSTOMER_NAMESPACE, key, value, self._ttl_s)
        except CustomerDataUnavailable as error:
            return str(error)
        return ""
