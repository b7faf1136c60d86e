"""What the cache's prewarmer needs from tilores_data, as plain types: a
search and a customer's 360 view and credit report as the bytes the router
caches, under the router's keys. The adapter in clients.py implements it
over gRPC; a test fakes it."""

from __future__ import annotations

from typing import Protocol


class CustomerDataUnavailable(Exception):
    """tilores_data did not answer; the message names its status."""


class CustomerSource(Protocol):
    async def lookup(self, parameters: dict[str, str]) -> tuple[str, bytes, list[str]]:
        """The search's cache key, its answer as bytes, and the entity ids found."""

    async def customer(self, entity_id: str) -> list[tuple[str, bytes]]:
        """The 360 view and credit report of one customer: (cache key, bytes) each."""
