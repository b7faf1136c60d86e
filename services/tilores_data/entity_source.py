"""EntitySource: what the service needs from a backend, met by the embedded
store (EmbeddedEntitySource) and by the real Tilores API
(TiloresGraphQLClient), so every RPC gives the same answers on either."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from graphql import GraphQLSchema

from services.tilores_data.store import EmbeddedEntityStore, EntityView
from services.tilores_data.tilores_schema import search_parameters, tilores_schema


class EntitySource(Protocol):
    known_parameters: frozenset[str]
    backend: str  # "tilores_api" or "embedded"

    async def ping(self) -> None:
        """A trivial query; raises a Fault when the backend does not answer."""
        ...

    async def search(self, parameters: dict[str, str], page: int = 0, page_size: int = 0) -> list[EntityView]: ...

    async def entity(self, entity_id: str) -> EntityView | None: ...

    async def entity_by_record(self, record_id: str) -> EntityView | None: ...

    async def submit(self, records: list[dict[str, Any]]) -> int: ...

    async def schema(self) -> GraphQLSchema:
        """The Record schema the backend serves."""
        ...

    async def field_shares(self) -> dict[str, float] | None:
        """Per field, the share of entities carrying it; None when the
        backend cannot count."""
        ...

    async def close(self) -> None: ...


class EmbeddedEntitySource:
    """The embedded SQLite store. Its queries are short indexed lookups, so
    they run on the event loop rather than paying a thread hop each."""

    backend = "embedded"

    def __init__(self, store: EmbeddedEntityStore):
        self.store = store
        self.known_parameters = search_parameters(tilores_schema())

    async def ping(self) -> None:
        self.store.count_entities()

    async def search(self, parameters: dict[str, str], page: int = 0, page_size: int = 0) -> list[EntityView]:
        return self.store.search(parameters, page=page, page_size=page_size)

    async def entity(self, entity_id: str) -> EntityView | None:
        return self.store.get_entity(entity_id)

    async def entity_by_record(self, record_id: str) -> EntityView | None:
        return self.store.get_entity_by_record(record_id)

    async def submit(self, records: list[dict[str, Any]]) -> int:
        return self.store.submit_records(records)

    async def schema(self) -> GraphQLSchema:
        return tilores_schema()

    async def field_shares(self) -> dict[str, float] | None:
        # A full scan: off the event loop.
        return await asyncio.to_thread(self.store.field_shares)

    async def close(self) -> None:
        self.store.close()
