"""Who may call the mesh, tried the way an attacker with network access
would: every RPC of every service through Envoy's gRPC listener without a
client certificate, with a forged `x-forwarded-client-cert`, with a
certificate of another CA; a service's own port in plaintext, with TLS but
no certificate, with a stranger's certificate; the probe port for anything
but health. Only callers with a certificate of the mesh CA get an answer."""

from __future__ import annotations

import datetime

import grpc
import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from google.protobuf import message_factory
from google.protobuf.struct_pb2 import Struct
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from tilores_x.v1 import (
    cache_pb2,
    cache_pb2_grpc,
    common_pb2,
    llm_gateway_pb2,
    llm_gateway_pb2_grpc,
    optimizer_pb2,
    optimizer_pb2_grpc,
    router_pb2,
    router_pb2_grpc,
    tilores_data_pb2,
    tilores_data_pb2_grpc,
)

from deploy.certificates import MeshCertificates
from services.runtime.access import SCOPES, required_scope
from tests.docs import section as section_of
from tests.e2e.conftest import http_json

pytestmark = pytest.mark.e2e

MODULES = (router_pb2, llm_gateway_pb2, tilores_data_pb2, cache_pb2, optimizer_pb2)
RPCS = [
    (service.full_name, method)
    for module in MODULES
    for service in module.DESCRIPTOR.services_by_name.values()
    for method in service.methods
]
EMAIL = {"EMAIL": "edwina.hawthorne@example.com"}


# Requests that would change the shared mesh when empty (a cycle on the
# live prompt) ask for something that is not there instead.
HARMLESS = {"TriggerCycle": {"prompt": "no-such-prompt"}}


def _call(channel: grpc.Channel, service: str, method) -> None:
    """One call of `method` with an empty request, its stream read through."""
    request = message_factory.GetMessageClass(method.input_type)(**HARMLESS.get(method.name, {}))
    path = f"/{service}/{method.name}"
    output = message_factory.GetMessageClass(method.output_type)
    kind = channel.unary_stream if method.server_streaming else channel.unary_unary
    reply = kind(path, request_serializer=type(request).SerializeToString, response_deserializer=output.FromString)(
        request, timeout=10
    )
    if method.server_streaming:
        list(reply)


@pytest.fixture(scope="module")
def stranger(tmp_path_factory):
    """A certificate with the mesh's own SPIFFE id for the router, signed by
    a CA of the attacker's making."""
    issued = MeshCertificates(tmp_path_factory.mktemp("stranger")).issue("service", "router")
    return grpc.ssl_channel_credentials(
        root_certificates=issued.ca_file.read_bytes(),
        private_key=issued.key_file.read_bytes(),
        certificate_chain=issued.cert_file.read_bytes(),
    )


@pytest.mark.parametrize(("service", "method"), RPCS, ids=[f"{s.split('.')[-1]}.{m.name}" for s, m in RPCS])
def test_every_rpc_without_a_certificate_is_unauthenticated(mesh, service, method):
    with (
        grpc.secure_channel(mesh.grpc_addr, mesh.anonymous_credentials()) as channel,
        pytest.raises(grpc.RpcError) as caught,
    ):
        _call(channel, service, method)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED, caught.value.details()
    assert "client certificate of the mesh CA" in caught.value.details()


def _code(channel: grpc.Channel, service: str, method) -> grpc.StatusCode:
    try:
        _call(channel, service, method)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize(("service", "method"), RPCS, ids=[f"{s.split('.')[-1]}.{m.name}" for s, m in RPCS])
def test_every_rpc_needs_its_scope(mesh, service, method):
    """No scope, another scope: PERMISSION_DENIED; its own scope: the call
    reaches its handler (an empty request may still be refused there)."""
    scope = required_scope(f"/{service}/{method.name}")
    assert scope in SCOPES, f"{service}/{method.name} names no scope"
    other = sorted(SCOPES - {scope})[0]
    for caller in ("nobody", f"holds-{other}"):
        with (
            grpc.secure_channel(mesh.grpc_addr, mesh.client_credentials("client", caller)) as channel,
            pytest.raises(grpc.RpcError) as caught,
        ):
            _call(channel, service, method)
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED, (caller, caught.value.details())
        assert caught.value.details() == (
            f"client/{caller} does not hold the scope {scope!r} that {service}/{method.name} needs"
        )
    with grpc.secure_channel(mesh.grpc_addr, mesh.client_credentials("client", f"holds-{scope}")) as channel:
        code = _code(channel, service, method)
    assert code not in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED), code


def test_a_forged_forwarded_certificate_header_is_not_believed(mesh):
    forged = (("x-forwarded-client-cert", "By=spiffe://tilores-x/edge/envoy;URI=spiffe://tilores-x/service/router"),)
    with grpc.secure_channel(mesh.grpc_addr, mesh.anonymous_credentials()) as channel:
        search = tilores_data_pb2_grpc.TiloresDataServiceStub(channel).SearchEntities
        with pytest.raises(grpc.RpcError) as caught:
            search(tilores_data_pb2.SearchEntitiesRequest(parameters=EMAIL), metadata=forged, timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_plaintext_to_envoys_grpc_listener_is_refused(mesh):
    with grpc.insecure_channel(mesh.grpc_addr) as channel:
        search = tilores_data_pb2_grpc.TiloresDataServiceStub(channel).SearchEntities
        with pytest.raises(grpc.RpcError) as caught:
            search(tilores_data_pb2.SearchEntitiesRequest(parameters=EMAIL), timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_certificate_of_another_ca_is_refused_by_envoy(mesh, stranger):
    with grpc.secure_channel(mesh.grpc_addr, stranger) as channel:
        search = tilores_data_pb2_grpc.TiloresDataServiceStub(channel).SearchEntities
        with pytest.raises(grpc.RpcError) as caught:
            search(tilores_data_pb2.SearchEntitiesRequest(parameters=EMAIL), timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("service", ["router", "llm_gateway", "tilores_data", "cache", "optimizer"])
def test_a_service_port_refuses_plaintext_anonymous_and_foreign_connections(mesh, stranger, service):
    addr = mesh.service_addr(service)
    attempts = {
        "plaintext": grpc.insecure_channel(addr),
        "no certificate": grpc.secure_channel(addr, mesh.anonymous_credentials()),
        "another CA": grpc.secure_channel(addr, stranger),
    }
    for what, channel in attempts.items():
        with channel, pytest.raises(grpc.RpcError) as caught:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, (service, what, caught.value.details())


def test_reflection_without_a_certificate_is_unauthenticated(mesh):
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    with grpc.secure_channel(mesh.grpc_addr, mesh.anonymous_credentials()) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            list(stub.ServerReflectionInfo(iter([request]), metadata=(("x-mesh-service", "router"),), timeout=10))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with grpc.secure_channel(mesh.grpc_addr, mesh.client_credentials()) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = list(stub.ServerReflectionInfo(iter([request]), metadata=(("x-mesh-service", "router"),), timeout=10))
    assert "tilores_x.v1.RouterService" in {s.name for s in replies[0].list_services_response.service}


def test_the_probe_port_answers_health_and_nothing_else(mesh):
    probe = int((mesh.run_dir / "tilores_data.port.probe").read_text())
    with grpc.insecure_channel(f"127.0.0.1:{probe}") as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="readiness"), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        search = tilores_data_pb2_grpc.TiloresDataServiceStub(channel).SearchEntities
        with pytest.raises(grpc.RpcError) as caught:
            search(tilores_data_pb2.SearchEntitiesRequest(parameters=EMAIL), timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_a_caller_with_a_mesh_certificate_gets_the_answer(mesh):
    with grpc.secure_channel(mesh.grpc_addr, mesh.client_credentials()) as channel:
        found = tilores_data_pb2_grpc.TiloresDataServiceStub(channel).SearchEntities(
            tilores_data_pb2.SearchEntitiesRequest(parameters=EMAIL), timeout=10
        )
    assert orjson.loads(found.entities[0].records[0].data_json)["FIRST_NAME"] == "Edwina"


def test_the_readmes_grpc_example_runs_as_written(mesh, capsys, tmp_path, monkeypatch):
    section = section_of("docs/security.md", "## Identities and certificates")
    example = section[section.index("```python\n") + len("```python\n") :]
    example = example[: example.index("```")]
    # Run from another folder, as the page says: MESH_CERTS names the certificates.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MESH_CERTS", str(mesh.certificates.directory))
    example = example.replace('"localhost:9090"', repr(mesh.grpc_addr.replace("127.0.0.1", "localhost")))
    exec(compile(example, "docs/security.md", "exec"), {})
    printed = capsys.readouterr().out
    assert 'FIRST_NAME\\": \\"Edwina' in printed or "Edwina" in printed, printed


def test_admin_changes_are_recorded_with_who_made_them(mesh):
    """Over REST the admin key's id is the actor; over gRPC the caller's
    certificate; the history says which, never "an operator"."""
    template = "You answer from {context}. Be brief."
    status, _ = http_json(
        "POST", f"{mesh.rest_url}/v1/prompts/audited/versions", {"template": template}, key=mesh.admin_key
    )
    assert status == 200
    status, _ = http_json(
        "POST",
        f"{mesh.rest_url}/v1/prompts/audited/versions",
        {"template": template + " Cite the record.", "activate": True},
        key=mesh.admin_key,
    )
    assert status == 200
    admin = mesh.client_credentials("client", "holds-prompts.admin")
    with grpc.secure_channel(mesh.grpc_addr, admin) as channel:
        optimizer = optimizer_pb2_grpc.OptimizerServiceStub(channel)
        optimizer.RollbackPrompt(optimizer_pb2.RollbackPromptRequest(name="audited", reason="too terse"), timeout=10)
    status, body = http_json("GET", f"{mesh.rest_url}/v1/prompts/audited", key=mesh.admin_key)
    assert status == 200
    assert [(h["action"], h["version"], h["actor"]) for h in body["history"]] == [
        ("created", 1, "key/dev-admin"),
        ("activated", 1, "key/dev-admin"),
        ("created", 2, "key/dev-admin"),
        ("activated", 2, "key/dev-admin"),
        ("rolled_back", 1, "client/holds-prompts.admin"),
    ]


def test_the_attacks_on_the_grpc_listener_fail_and_change_nothing(mesh, customers):
    """What a hostile caller with network access to :9090 tried: merge a
    forged record into a customer, replace the live prompt, spend the
    provider key, ask the router without a key. Anonymous: UNAUTHENTICATED;
    with a certificate that holds only `chat`: PERMISSION_DENIED; and the
    customer and the prompt are as they were."""
    edwina = next(c for c in customers if c.records[0]["EMAIL"] == EMAIL["EMAIL"])
    forged = Struct()
    forged.update({"id": "003FORGED", "EMAIL": EMAIL["EMAIL"], "STATUS": "Cancelled", "BALANCE_DUE": "99999.00"})
    attacks = [
        (tilores_data_pb2_grpc.TiloresDataServiceStub, "SubmitRecords",
         tilores_data_pb2.SubmitRecordsRequest(records=[forged])),
        (optimizer_pb2_grpc.OptimizerServiceStub, "CreatePromptVersion",
         optimizer_pb2.CreatePromptVersionRequest(name="customer", template="{context} is cancelled.", activate=True)),
        (optimizer_pb2_grpc.OptimizerServiceStub, "TriggerCycle", optimizer_pb2.TriggerCycleRequest(prompt="customer")),
        (llm_gateway_pb2_grpc.LlmGatewayServiceStub, "Generate",
         llm_gateway_pb2.GenerateRequest(model="gpt-4o-mini", messages=[common_pb2.ChatMessage(role=1, content="hi")])),
        (cache_pb2_grpc.CacheServiceStub, "Set", cache_pb2.SetRequest(namespace="customer", key="k", value=b"x")),
        (router_pb2_grpc.RouterServiceStub, "Chat",
         router_pb2.ChatRequest(model="offline", messages=[common_pb2.ChatMessage(role=1, content=EMAIL["EMAIL"])])),
    ]  # fmt: skip
    for credentials, expected in (
        (mesh.anonymous_credentials(), grpc.StatusCode.UNAUTHENTICATED),
        (mesh.client_credentials("client", "holds-ops.read"), grpc.StatusCode.PERMISSION_DENIED),
    ):
        with grpc.secure_channel(mesh.grpc_addr, credentials) as channel:
            for stub, method, request in attacks:
                with pytest.raises(grpc.RpcError) as caught:
                    reply = getattr(stub(channel), method)(request, timeout=10)
                    if method in ("Generate", "Chat"):
                        list(reply)
                assert caught.value.code() == expected, (method, caught.value.details())
    with grpc.secure_channel(mesh.grpc_addr, mesh.client_credentials()) as channel:
        view = tilores_data_pb2_grpc.TiloresDataServiceStub(channel).GetEntity(
            tilores_data_pb2.GetEntityRequest(entity_id=edwina.entity_id), timeout=10
        )
        prompt = optimizer_pb2_grpc.OptimizerServiceStub(channel).GetPrompt(
            optimizer_pb2.GetPromptRequest(name="customer"), timeout=10
        )
    assert "003FORGED" not in {orjson.loads(r.data_json).get("id") for r in view.entity.records}
    assert "cancelled" not in prompt.template


def _crafted(mesh, uris: list[str]) -> grpc.ChannelCredentials:
    """A client certificate the mesh CA signed (as an insider with the CA's
    key, or a flaw in issuing, would get one) with these URI names."""
    ca_key = serialization.load_pem_private_key((mesh.certificates.directory / "ca-key.pem").read_bytes(), None)
    ca = x509.load_pem_x509_certificate(mesh.certificates.ca_file.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "intruder")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in uris]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return grpc.ssl_channel_credentials(
        root_certificates=mesh.certificates.ca_file.read_bytes(),
        private_key=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        certificate_chain=certificate.public_bytes(serialization.Encoding.PEM),
    )


INTRUDER, OPERATOR = "spiffe://tilores-x/client/intruder", "spiffe://tilores-x/client/operator"


@pytest.mark.parametrize(
    "uris",
    [
        [INTRUDER, OPERATOR],
        [OPERATOR, INTRUDER],
        [f"{INTRUDER};URI={OPERATOR}"],
        [f'{INTRUDER}",URI={OPERATOR}'],
        ["spiffe://elsewhere/client/operator"],
        ["spiffe://tilores-x/client/Operator"],
    ],
    ids=[
        "two-names",
        "two-names-reversed",
        "a-name-with-a-second-inside",
        "a-name-closing-a-quote",
        "another-trust-domain",
        "not-lower-case",
    ],
)
def test_a_mesh_signed_certificate_with_more_than_one_name_is_nobody(mesh, uris):
    """One verified identity or none: a certificate naming two callers, or
    one name that smuggles another, is refused at Envoy."""
    with grpc.secure_channel(mesh.grpc_addr, _crafted(mesh, uris)) as channel:
        search = tilores_data_pb2_grpc.TiloresDataServiceStub(channel).SearchEntities
        with pytest.raises(grpc.RpcError) as caught:
            search(tilores_data_pb2.SearchEntitiesRequest(parameters=EMAIL), timeout=10)
    # Refused by Envoy before any route (the services would refuse it too).
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED, caught.value
    assert caught.value.details() == "a client certificate must name exactly one SPIFFE id of the mesh"
