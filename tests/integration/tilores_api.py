"""The Tilores-compatible GraphQL server on a free loopback port, over an
embedded store seeded with sample customers."""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from services.tilores_data.graphql_server import TiloresGraphQLServer
from services.tilores_data.sample import Customer, generate_customers
from services.tilores_data.store import EmbeddedEntityStore

CLIENT_ID = "test-client"
CLIENT_SECRET = "test-secret"


@dataclass
class RunningTiloresApi:
    server: TiloresGraphQLServer
    url: str
    customers: list[Customer]

    @property
    def token_url(self) -> str:
        return self.url + "oauth2/token"


@asynccontextmanager
async def tilores_api(tmp_path: Path, customers: int = 60, token_lifetime_s: int = 3600):
    store = EmbeddedEntityStore(str(tmp_path / "tilores-api.db"))
    sample = list(generate_customers(customers))
    store.add_entities((c.entity_id, c.records) for c in sample)
    server = TiloresGraphQLServer(store, CLIENT_ID, CLIENT_SECRET, token_lifetime_s=token_lifetime_s)
    runner = web.AppRunner(server.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        yield RunningTiloresApi(server, f"http://127.0.0.1:{port}/", sample)
    finally:
        await runner.cleanup()
        store.close()
