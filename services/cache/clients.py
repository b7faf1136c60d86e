"""The cache's adapter to tilores_data, for prewarming: a customer's
search, 360 view and credit report as the bytes the router caches, under
the router's keys. The prewarmer never sees a proto."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import grpc
from tilores_x.v1 import tilores_data_pb2, tilores_data_pb2_grpc

from services.cache.ports import CustomerDataUnavailable
from services.runtime.customer_keys import credit_report_key, customer360_key, search_key


class CustomerSourceOverGrpc:
    """CustomerSource (services/cache/ports.py) from tilores_data."""

    def __init__(self, tilores: tilores_data_pb2_grpc.TiloresDataServiceStub, timeout_s: float = 5.0):
        self._tilores = tilores
        self._timeout_s = timeout_s

    async def lookup(self, parameters: dict[str, str]) -> tuple[str, bytes, list[str]]:
        """The search's cache key, its answer as bytes, and the entity ids found."""
        found = await self._call(
            self._tilores.SearchEntities(
                tilores_data_pb2.SearchEntitiesRequest(parameters=parameters), timeout=self._timeout_s
            )
        )
        return search_key(parameters), found.SerializeToString(), [e.id for e in found.entities]

    async def customer(self, entity_id: str) -> list[tuple[str, bytes]]:
        """The 360 view and credit report of one customer: (cache key, bytes) each."""
        ref = tilores_data_pb2.CustomerRef(entity_id=entity_id)
        view, credit = await asyncio.gather(
            self._call(
                self._tilores.GetCustomer360(
                    tilores_data_pb2.GetCustomer360Request(customer=ref), timeout=self._timeout_s
                )
            ),
            self._call(
                self._tilores.GetCreditReport(
                    tilores_data_pb2.GetCreditReportRequest(customer=ref), timeout=self._timeout_s
                )
            ),
        )
        return [
            (customer360_key(entity_id), view.SerializeToString()),
            (credit_report_key(entity_id), credit.SerializeToString()),
        ]

    @staticmethod
    async def _call(call: Awaitable[Any]) -> Any:
        try:
            return await call
        except grpc.aio.AioRpcError as error:
            raise CustomerDataUnavailable(f"tilores_data answered {error.code().name}") from None
