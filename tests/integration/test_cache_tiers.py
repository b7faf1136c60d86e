"""The cache service with a real Redis behind it: promotion, tenants, key
layout, stats, Redis dying under load and coming back, prewarm."""

from __future__ import annotations

import asyncio

import grpc
import pytest
import redis.asyncio as redis
from google.protobuf.duration_pb2 import Duration
from tilores_x.v1 import cache_pb2, cache_pb2_grpc, tilores_data_pb2, tilores_data_pb2_grpc

from services.cache.clients import CustomerSourceOverGrpc
from services.cache.prewarm import Prewarmer
from services.cache.redis_tier import RedisTier
from services.cache.service import CacheComponent, CacheService
from services.cache.two_tier import TwoTierCache
from services.runtime.customer_keys import CUSTOMER_NAMESPACE, customer360_key, search_key
from services.runtime.lru import LruCache
from services.runtime.server import start_server
from tests.integration.conftest import free_port_settings, start_mesh, stop_mesh
from tests.integration.grpc_errors import field_violations

TTL = {"customer": 60.0}


async def cache_service(redis_url: str | None, prewarmer=None, reconnect_every_s: float = 0.1):
    l2 = None
    if redis_url:
        l2 = RedisTier(redis_url, timeout_s=0.2, reconnect_every_s=reconnect_every_s)
        await l2.start()
    service = CacheService(TwoTierCache(LruCache(1000, 10_000_000), l2), TTL, 60.0, prewarmer)
    running = await start_server(CacheComponent(service), free_port_settings("cache"))
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    return running, channel, cache_pb2_grpc.CacheServiceStub(channel)


@pytest.fixture
async def cache(redis_server):
    running, channel, stub = await cache_service(redis_server.url)
    yield stub
    await channel.close()
    await running.stop(0)


def tiers(stats: cache_pb2.StatsResponse) -> dict[tuple[str, str], cache_pb2.TierStats]:
    return {(t.tier, t.namespace): t for t in stats.tiers}


async def test_a_redis_hit_is_promoted_into_the_process(cache, redis_server):
    # Another replica wrote the value: it is in Redis only.
    running, channel, other = await cache_service(redis_server.url)
    await other.Set(cache_pb2.SetRequest(namespace="customer", key="k", value=b"v"))
    await channel.close()
    await running.stop(0)
    first = await cache.Get(cache_pb2.GetRequest(namespace="customer", key="k"))
    second = await cache.Get(cache_pb2.GetRequest(namespace="customer", key="k"))
    assert first.value == second.value == b"v"
    stats = await cache.Stats(cache_pb2.StatsRequest())
    by_tier = tiers(stats)
    assert (by_tier[("l1", "customer")].hits, by_tier[("l1", "customer")].misses) == (1, 1)
    assert by_tier[("l2", "customer")].hits == 1 and stats.promotions == 1
    assert stats.redis_state == cache_pb2.REDIS_STATE_CONNECTED and stats.l2_keys == 1
    assert stats.l1_entries == 1 and stats.l1_bytes > 0


async def test_tenants_never_see_each_others_values(cache):
    await cache.Set(cache_pb2.SetRequest(tenant="acme", namespace="customer", key="k", value=b"acme's"))
    other = await cache.Get(cache_pb2.GetRequest(tenant="globex", namespace="customer", key="k"))
    mine = await cache.Get(cache_pb2.GetRequest(tenant="acme", namespace="customer", key="k"))
    assert not other.found and mine.value == b"acme's"


async def test_redis_keys_carry_no_customer_identifier(cache, redis_server):
    key = search_key({"EMAIL": "edwina.hawthorne@example.com"})
    await cache.Set(cache_pb2.SetRequest(tenant="acme", namespace="customer", key=key, value=b"x"))
    client = redis.Redis.from_url(redis_server.url)
    [stored] = [k.decode() async for k in client.scan_iter()]
    await client.aclose()
    assert "edwina" not in stored and "example.com" not in stored
    prefix, digest = stored.split("{")
    assert prefix == "tx:v1:acme:customer:" and digest.endswith("}") and len(digest) == 33


async def test_redis_keeps_the_time_to_live(cache, redis_server):
    await cache.Set(cache_pb2.SetRequest(namespace="customer", key="short", value=b"v", ttl=Duration(seconds=1)))
    client = redis.Redis.from_url(redis_server.url)
    ttls = [await client.pttl(k) async for k in client.scan_iter()]
    await client.aclose()
    assert 0 < ttls[0] <= 1000


async def test_without_redis_the_in_process_tier_serves_alone():
    running, channel, stub = await cache_service(None)
    try:
        await stub.Set(cache_pb2.SetRequest(namespace="customer", key="k", value=b"v"))
        assert (await stub.Get(cache_pb2.GetRequest(namespace="customer", key="k"))).value == b"v"
        stats = await stub.Stats(cache_pb2.StatsRequest())
        assert stats.redis_state == cache_pb2.REDIS_STATE_DISABLED and ("l2", "customer") not in tiers(stats)
    finally:
        await channel.close()
        await running.stop(0)


async def test_bad_tenant_names_the_field(cache):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await cache.Get(cache_pb2.GetRequest(tenant="a b", namespace="customer", key="k"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and field_violations(caught.value) == ["tenant"]


async def wait_for_state(stub, state, timeout_s: float = 10.0) -> cache_pb2.StatsResponse:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        stats = await stub.Stats(cache_pb2.StatsRequest())
        if stats.redis_state == state or asyncio.get_running_loop().time() > deadline:
            return stats
        await asyncio.sleep(0.05)


async def test_redis_killed_under_load_fails_no_request_and_comes_back(cache, redis_server):
    failures: list[BaseException] = []
    done = 0
    stop = asyncio.Event()

    async def client(n: int) -> None:
        nonlocal done
        i = 0
        while not stop.is_set():
            key = f"k{n}-{i % 50}"
            try:
                await cache.Set(cache_pb2.SetRequest(namespace="customer", key=key, value=b"v" * 100), timeout=2)
                await cache.Get(cache_pb2.GetRequest(namespace="customer", key=f"k{(n + 1) % 8}-{i % 50}"), timeout=2)
                done += 2
            except grpc.aio.AioRpcError as error:
                failures.append(error)
            i += 1

    load = [asyncio.ensure_future(client(n)) for n in range(8)]
    await asyncio.sleep(0.5)
    redis_server.kill()
    degraded = await wait_for_state(cache, cache_pb2.REDIS_STATE_DEGRADED)
    await asyncio.sleep(0.5)  # keep the load on while Redis is gone
    redis_server.start()
    back = await wait_for_state(cache, cache_pb2.REDIS_STATE_CONNECTED)
    await asyncio.sleep(0.3)
    stop.set()
    await asyncio.gather(*load)
    assert failures == [] and done > 50
    assert degraded.redis_state == cache_pb2.REDIS_STATE_DEGRADED and degraded.redis_error
    assert back.redis_state == cache_pb2.REDIS_STATE_CONNECTED
    # Writes reach the restarted Redis again.
    await cache.Set(cache_pb2.SetRequest(namespace="customer", key="after", value=b"v"))
    assert (await cache.Stats(cache_pb2.StatsRequest())).l2_keys >= 1


async def test_redis_down_at_start_is_degraded_then_recovers(redis_server):
    redis_server.kill()
    running, channel, stub = await cache_service(redis_server.url)
    try:
        stats = await stub.Stats(cache_pb2.StatsRequest())
        assert stats.redis_state == cache_pb2.REDIS_STATE_DEGRADED
        await stub.Set(cache_pb2.SetRequest(namespace="customer", key="k", value=b"v"))
        assert (await stub.Get(cache_pb2.GetRequest(namespace="customer", key="k"))).value == b"v"
        redis_server.start()
        assert (await wait_for_state(stub, cache_pb2.REDIS_STATE_CONNECTED)).redis_state == (
            cache_pb2.REDIS_STATE_CONNECTED
        )
    finally:
        await channel.close()
        await running.stop(0)


async def test_prewarm_loads_customers_under_the_routers_keys(tmp_path, redis_server):
    mesh = await start_mesh(tmp_path)
    tilores = tilores_data_pb2_grpc.TiloresDataServiceStub(mesh.channel("tilores_data"))
    l2 = RedisTier(redis_server.url)
    await l2.start()
    two_tier = TwoTierCache(LruCache(1000, 10_000_000), l2)
    service = CacheService(two_tier, TTL, 60.0, Prewarmer(CustomerSourceOverGrpc(tilores), two_tier, 60.0))
    running = await start_server(CacheComponent(service), free_port_settings("cache"))
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    stub = cache_pb2_grpc.CacheServiceStub(channel)
    try:
        demo, second = mesh.customers[0], mesh.customers[1]
        reply = await stub.Prewarm(
            cache_pb2.PrewarmRequest(
                identifiers=[
                    "Edwina.Hawthorne@example.com",
                    second.records[0]["CLIENT_ID"],
                    "(312) 555-0142",
                    "nobody@example.com",
                    "what?",
                ]
            )
        )
        assert reply.customers_loaded == 3
        assert {f.identifier: f.reason for f in reply.failures} == {
            "nobody@example.com": "no customer matches",
            "what?": "not an e-mail, client id, phone number or Salesforce contact id",
        }
        search = await stub.Get(
            cache_pb2.GetRequest(
                namespace=CUSTOMER_NAMESPACE, key=search_key({"EMAIL": "edwina.hawthorne@example.com"})
            )
        )
        found = tilores_data_pb2.SearchEntitiesResponse.FromString(search.value)
        assert [e.id for e in found.entities] == [demo.entity_id]
        view = await stub.Get(cache_pb2.GetRequest(namespace=CUSTOMER_NAMESPACE, key=customer360_key(demo.entity_id)))
        assert tilores_data_pb2.GetCustomer360Response.FromString(view.value).customer_name == "Edwina Hawthorne"
        # three searches; two customers (the e-mail and the phone are Edwina's), each a 360 view and a credit report
        assert (await stub.Stats(cache_pb2.StatsRequest())).l2_keys == 3 + 2 * 2
    finally:
        await channel.close()
        await running.stop(0)
        await stop_mesh(mesh)


async def test_a_prewarm_file_is_loaded_at_start_up(tmp_path):
    mesh = await start_mesh(tmp_path)
    tilores = tilores_data_pb2_grpc.TiloresDataServiceStub(mesh.channel("tilores_data"))
    listing = tmp_path / "prewarm.txt"
    listing.write_text(
        f"# agents' VIP list\nedwina.hawthorne@example.com\n{mesh.customers[3].records[0]['CLIENT_ID']}\n\n"
    )
    two_tier = TwoTierCache(LruCache(1000, 10_000_000))
    service = CacheService(two_tier, TTL, 60.0, Prewarmer(CustomerSourceOverGrpc(tilores), two_tier, 60.0))
    running = await start_server(CacheComponent(service, prewarm_file=str(listing)), free_port_settings("cache"))
    try:
        for _ in range(100):
            if len(two_tier.l1) >= 6:
                break
            await asyncio.sleep(0.05)
        assert len(two_tier.l1) == 6  # two customers: a search, a 360 view and a credit report each
        assert await two_tier.get("default", CUSTOMER_NAMESPACE, search_key({"EMAIL": "edwina.hawthorne@example.com"}))
    finally:
        await running.stop(0)
        await stop_mesh(mesh)


async def test_clear_removes_a_tenants_values_from_redis_and_every_replicas_own_tier(redis_server):
    first = await cache_service(redis_server.url)
    second = await cache_service(redis_server.url)
    try:
        a, b = first[2], second[2]
        for stub in (a, b):  # each replica keeps the values in its own tier too
            for key in ("k1", "k2"):
                await stub.Set(cache_pb2.SetRequest(tenant="acme", namespace="customer", key=key, value=b"v"))
            await stub.Set(cache_pb2.SetRequest(tenant="acme", namespace="llm_response", key="q", value=b"a"))
            await stub.Set(cache_pb2.SetRequest(tenant="other", namespace="customer", key="k1", value=b"o"))
        reply = await a.Clear(cache_pb2.ClearRequest(tenant="acme", namespace="customer"))
        assert reply.redis_removed == 2 and reply.local_removed == 2
        for _ in range(50):  # the other replica hears of it through Redis
            if not (await b.Get(cache_pb2.GetRequest(tenant="acme", namespace="customer", key="k1"))).found:
                break
            await asyncio.sleep(0.02)
        for stub in (a, b):
            gone = await stub.Get(cache_pb2.GetRequest(tenant="acme", namespace="customer", key="k1"))
            kept = await stub.Get(cache_pb2.GetRequest(tenant="acme", namespace="llm_response", key="q"))
            theirs = await stub.Get(cache_pb2.GetRequest(tenant="other", namespace="customer", key="k1"))
            assert not gone.found and kept.value == b"a" and theirs.value == b"o"
        everything = await b.Clear(cache_pb2.ClearRequest(tenant="acme"))
        assert everything.redis_removed == 1
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await a.Clear(cache_pb2.ClearRequest(tenant="acme", namespace="Customer*"))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations(refused.value) == ["namespace"]
    finally:
        for running, channel, _stub in (first, second):
            await channel.close()
            await running.stop(0)
