"""A service's client channel checks whom it reached: a server holding a
certificate of the mesh CA for any other identity (a client's, another
service's) fails the handshake, so a process that steals a peer's address
cannot answer in its place."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from deploy.certificates import MeshCertificates
from services.runtime.channels import open_channel
from services.runtime.identity import MeshTls, configure_identity


def _tls(certificates: MeshCertificates, kind: str, name: str) -> MeshTls:
    issued = certificates.issue(kind, name)
    return MeshTls.from_files(str(issued.cert_file), str(issued.key_file), str(issued.ca_file))


async def _server(tls: MeshTls) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_secure_port("127.0.0.1:0", tls.server_credentials())
    await server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture
def gateway_identity(tmp_path):
    certificates = MeshCertificates(tmp_path / "certs")
    configure_identity(_tls(certificates, "service", "gateway"))
    yield certificates
    configure_identity(None)


@pytest.mark.parametrize(("kind", "name"), [("client", "agent-desk"), ("service", "cache"), ("edge", "envoy")])
async def test_a_server_with_another_identity_is_refused(gateway_identity, kind, name):
    server, address = await _server(_tls(gateway_identity, kind, name))
    try:
        async with open_channel(address, "router") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop(None)


async def test_the_service_meant_is_reached(gateway_identity):
    server, address = await _server(_tls(gateway_identity, "service", "tilores_data"))
    try:
        async with open_channel(address, "tilores_data") as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await server.stop(None)
