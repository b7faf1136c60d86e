"""Envoy's outlier detection on gRPC errors, checked rather than assumed: two
tilores_data replicas behind a real Envoy, one of them with its Tilores API
gone, so every call to it ends UNAVAILABLE (a trailers-only response: the
status comes before any message). Envoy retries those calls on the other
replica and ejects the broken one, while its gRPC health check still
passes."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from dataclasses import replace

import grpc
from tilores_x.v1 import tilores_data_pb2, tilores_data_pb2_grpc

from deploy.edge_envoy import EdgeEnvoy
from deploy.envoy_config import render_envoy_config
from deploy.topology import load_topology
from services.runtime.server import start_server
from services.tilores_data.entity_source import EmbeddedEntitySource
from services.tilores_data.sample import generate_customers
from services.tilores_data.service import TiloresDataComponent
from services.tilores_data.store import EmbeddedEntityStore
from services.tilores_data.tilores_client import TiloresGraphQLClient
from tests.integration.conftest import free_port_settings
from tests.integration.tilores_api import CLIENT_ID, CLIENT_SECRET, tilores_api


def _cluster_hosts(envoy: EdgeEnvoy, cluster: str) -> dict[int, dict]:
    with urllib.request.urlopen(f"{envoy.admin_url}/clusters?format=json", timeout=2) as reply:
        statuses = json.load(reply)["cluster_statuses"]
    hosts = next(c["host_statuses"] for c in statuses if c["name"] == cluster)
    return {h["address"]["socket_address"]["port_value"]: h["health_status"] for h in hosts}


def _passes_checks(status: dict) -> bool:
    """Admin's host status: failures show as `failed_*: true` flags."""
    return status.get("eds_health_status") == "HEALTHY" and not any(
        value is True for key, value in status.items() if key.startswith("failed_")
    )


def _counter(envoy: EdgeEnvoy, name: str) -> int:
    with urllib.request.urlopen(f"{envoy.admin_url}/stats?filter=^{name}$&format=json", timeout=2) as reply:
        stats = json.load(reply)["stats"]
    return int(stats[0]["value"]) if stats else 0


async def test_a_replica_that_fails_every_call_is_ejected(tmp_path):
    store = EmbeddedEntityStore(str(tmp_path / "tilores.db"))
    customers = list(generate_customers(20))
    store.add_entities((c.entity_id, c.records) for c in customers)
    healthy = await start_server(TiloresDataComponent(EmbeddedEntitySource(store)), free_port_settings("tilores_data"))
    async with tilores_api(tmp_path, customers=5) as api:
        client = TiloresGraphQLClient(api.url, api.token_url, CLIENT_ID, CLIENT_SECRET, timeout_s=1.0, retries=0)
        await client.schema()
    # The API is gone from here on: the second replica fails every search.
    broken = await start_server(TiloresDataComponent(client), free_port_settings("tilores_data"))

    topology = load_topology("deploy/topology.yaml")
    # Every call counts here; the guard is not what this test is about.
    topology = replace(topology, envoy=replace(topology.envoy, rate_limit_rps=10_000, rate_limit_burst=10_000))
    config = render_envoy_config(
        topology,
        ports={"tilores_data": [healthy.port, broken.port]},
        listener_ports={"rest": 0, "grpc": 0, "admin": 0},
    )
    envoy = EdgeEnvoy(config, tmp_path, tmp_path / "envoy.log", drain_time_s=1)
    await asyncio.to_thread(envoy.start, 30)
    try:
        # Both replicas pass Envoy's gRPC health check: health alone would
        # keep sending callers to the broken one.
        for _ in range(100):
            if all(map(_passes_checks, _cluster_hosts(envoy, "tilores_data").values())):
                break
            await asyncio.sleep(0.05)
        assert all(map(_passes_checks, _cluster_hosts(envoy, "tilores_data").values()))

        client_id = customers[0].records[0]["CLIENT_ID"]
        async with grpc.aio.insecure_channel(f"127.0.0.1:{broken.port}") as channel:
            try:
                await tilores_data_pb2_grpc.TiloresDataServiceStub(channel).SearchEntities(
                    tilores_data_pb2.SearchEntitiesRequest(parameters={"CLIENT_ID": client_id}), timeout=5
                )
                direct = grpc.StatusCode.OK
            except grpc.aio.AioRpcError as error:
                direct = error.code()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{envoy.ports['grpc']}") as channel:
            stub = tilores_data_pb2_grpc.TiloresDataServiceStub(channel)

            async def search() -> grpc.StatusCode:
                try:
                    reply = await stub.SearchEntities(
                        tilores_data_pb2.SearchEntitiesRequest(parameters={"CLIENT_ID": client_id}), timeout=5
                    )
                except grpc.aio.AioRpcError as error:
                    return error.code()
                assert reply.entities, "the healthy replica found no customer"
                return grpc.StatusCode.OK

            first = [await search() for _ in range(20)]
            retries = _counter(envoy, "cluster.tilores_data.upstream_rq_retry")
            ejections = _counter(
                envoy, "cluster.tilores_data.outlier_detection.ejections_enforced_consecutive_gateway_failure"
            )
            hosts = _cluster_hosts(envoy, "tilores_data")
            after = [await search() for _ in range(20)]
    finally:
        await asyncio.to_thread(envoy.stop, 10)
        for server in (healthy, broken):
            await server.server.stop(0)
            await server.component.close()
        store.close()

    assert direct == grpc.StatusCode.UNAVAILABLE  # the fault is real
    # Envoy retried the broken replica's UNAVAILABLE (it came before any
    # message) on the healthy one, so no caller saw it...
    assert first == [grpc.StatusCode.OK] * 20
    assert retries >= 1
    # ...and ejected the broken replica on consecutive gateway errors (UNAVAILABLE is 503).
    assert ejections >= 1
    assert hosts[broken.port].get("failed_outlier_check") is True, hosts
    assert _passes_checks(hosts[healthy.port]), hosts
    # Once ejected, every call lands on the healthy replica.
    assert after == [grpc.StatusCode.OK] * 20
