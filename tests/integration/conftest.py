"""The five gRPC services in this process, each a real grpc.aio server on a
free loopback port."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from services.cache.service import CacheComponent, CacheService
from services.cache.two_tier import TwoTierCache
from services.llm_gateway.catalog import ModelCatalog
from services.llm_gateway.failover import FailoverChain
from services.llm_gateway.providers.environment import build_providers
from services.llm_gateway.providers.offline import OfflineProvider
from services.llm_gateway.service import LlmGatewayComponent
from services.optimizer.service import OptimizerComponent
from services.optimizer.storage import SqliteStore
from services.router.clients import RouterClients
from services.router.service import RouterComponent
from services.runtime.lru import LruCache
from services.runtime.server import RunningServer, start_server
from services.runtime.settings import ServerSettings
from services.tilores_data.entity_source import EmbeddedEntitySource
from services.tilores_data.sample import generate_customers
from services.tilores_data.service import TiloresDataComponent
from services.tilores_data.store import EmbeddedEntityStore
from tests.emulators.base import Script
from tests.emulators.openai_api import OpenAIEmulator
from tests.integration.redis_server import RedisServer

CATALOG = Path("services/llm_gateway/models.yaml").read_text()


def free_port_settings(name: str) -> ServerSettings:
    return ServerSettings(
        service=name, listen_addr="127.0.0.1:0", grace_period_s=5.0, port_file="", max_connection_age_s=300
    )


@dataclass
class InProcessMesh:
    servers: dict[str, RunningServer] = field(default_factory=dict)
    customers: list = field(default_factory=list)
    channels: list = field(default_factory=list)

    def addr(self, name: str) -> str:
        return f"127.0.0.1:{self.servers[name].port}"

    def channel(self, name: str) -> grpc.aio.Channel:
        channel = grpc.aio.insecure_channel(self.addr(name))
        self.channels.append(channel)
        return channel


def openai_providers(emulator) -> dict:
    """The `openai` provider pointed at an OpenAI-API emulator; start_mesh
    adds the offline one itself."""
    providers = build_providers({"OPENAI_API_KEY": emulator.api_key, "OPENAI_BASE_URL": emulator.base_url}, 5.0)
    del providers["offline"]
    return providers


async def start_mesh(
    tmp_path: Path,
    token_delay_s: float = 0.0,
    providers: dict | None = None,
    near_cache_ttl_s: float = 0.0,
    **chain_options,
) -> InProcessMesh:
    mesh = InProcessMesh()
    store = EmbeddedEntityStore(str(tmp_path / "tilores.db"))
    mesh.customers = list(generate_customers(50))
    store.add_entities((c.entity_id, c.records) for c in mesh.customers)
    mesh.servers["tilores_data"] = await start_server(
        TiloresDataComponent(EmbeddedEntitySource(store)), free_port_settings("tilores_data")
    )
    cache = CacheService(TwoTierCache(LruCache(1000, 10_000_000)), {"customer": 60.0}, 60.0)
    mesh.servers["cache"] = await start_server(CacheComponent(cache), free_port_settings("cache"))
    storage = SqliteStore(str(tmp_path / "optimizer.db"))
    mesh.servers["optimizer"] = await start_server(OptimizerComponent(storage), free_port_settings("optimizer"))
    providers = {"offline": OfflineProvider(token_delay_s), **(providers or {})}
    llm = LlmGatewayComponent(FailoverChain(ModelCatalog.from_yaml(CATALOG), providers, **chain_options))
    mesh.servers["llm_gateway"] = await start_server(llm, free_port_settings("llm_gateway"))
    addrs = {n: mesh.addr(n) for n in ("cache", "tilores_data", "optimizer", "llm_gateway")}
    clients = RouterClients(addrs, 60.0, near_cache_ttl_s=near_cache_ttl_s)
    mesh.servers["router"] = await start_server(RouterComponent(clients, 30.0), free_port_settings("router"))
    return mesh


async def stop_mesh(mesh: InProcessMesh) -> None:
    for channel in mesh.channels:
        await channel.close()
    for name in ("router", "llm_gateway", "optimizer", "cache", "tilores_data"):
        server = mesh.servers.get(name)
        if server is not None:
            await server.server.stop(0)
            await server.component.close()


@contextlib.asynccontextmanager
async def running_mesh(
    tmp_path: Path, script: Script | None = None, **options
) -> AsyncIterator[tuple[InProcessMesh, OpenAIEmulator | None]]:
    """The mesh of start_mesh(**options), with the `openai` provider pointed
    at an OpenAI-API emulator playing `script` when one is given; both are
    stopped however the test ends."""
    emulator = None
    if script is not None:
        emulator = OpenAIEmulator(script)
        await emulator.start()
        options["providers"] = openai_providers(emulator)
    try:
        mesh = await start_mesh(tmp_path, **options)
        try:
            yield mesh, emulator
        finally:
            await stop_mesh(mesh)
    finally:
        if emulator is not None:
            await emulator.stop()


@pytest.fixture
async def mesh(tmp_path):
    mesh = await start_mesh(tmp_path)
    yield mesh
    await stop_mesh(mesh)


@pytest.fixture
async def slow_mesh(tmp_path):
    """Offline tokens 20 ms apart, so a stream is still running mid-test."""
    mesh = await start_mesh(tmp_path, token_delay_s=0.02)
    yield mesh
    await stop_mesh(mesh)


@pytest.fixture
def redis_server(tmp_path):
    """A real redis-server for one test, stopped after it."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()
