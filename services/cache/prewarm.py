"""Prewarmer: load customers into the cache before anyone asks, so their
first question is a hit. For each identifier it runs the search the router
would run and caches it under the router's key, then caches each matching
customer's 360 view and credit report. Customers load in parallel."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import grpc
from tilores_x.v1 import tilores_data_pb2, tilores_data_pb2_grpc

from services.cache.two_tier import TwoTierCache
from services.runtime.customer_identifiers import identifiers_in
from services.runtime.customer_keys import CUSTOMER_NAMESPACE, credit_report_key, customer360_key, search_key

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
    def __init__(self, tilores: tilores_data_pb2_grpc.TiloresDataServiceStub, cache: TwoTierCache, ttl_s: float):
        self._tilores = tilores
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
            found = await self._tilores.SearchEntities(
                tilores_data_pb2.SearchEntitiesRequest(parameters=parameters), timeout=5.0
            )
            if not found.entities:
                return "no customer matches"
            await self._cache.set(
                tenant, CUSTOMER_NAMESPACE, search_key(parameters), found.SerializeToString(), self._ttl_s
            )
            for entity in found.entities:
                ref = tilores_data_pb2.CustomerRef(entity_id=entity.id)
                view, credit = await asyncio.gather(
                    self._tilores.GetCustomer360(tilores_data_pb2.GetCustomer360Request(customer=ref), timeout=5.0),
                    self._tilores.GetCreditReport(tilores_data_pb2.GetCreditReportRequest(customer=ref), timeout=5.0),
                )
                await self._cache.set(
                    tenant, CUSTOMER_NAMESPACE, customer360_key(entity.id), view.SerializeToString(), self._ttl_s
                )
                await self._cache.set(
                    tenant, CUSTOMER_NAMESPACE, credit_report_key(entity.id), credit.SerializeToString(), self._ttl_s
                )
        except grpc.aio.AioRpcError as error:
            return f"tilores_data answered {error.code().name}"
        return ""
