"""Scopes, grants and principals (services/runtime/access.py)."""

from __future__ import annotations

import pytest
from tilores_x.v1 import cache_pb2, llm_gateway_pb2, optimizer_pb2, router_pb2, tilores_data_pb2

from deploy.topology import load_topology
from services.runtime.access import SCOPES, Grants, MalformedPrincipal, principal_of, required_scope
from services.runtime.identity import Caller, forwarded_caller
from services.runtime.principal import Principal
from services.runtime.settings import SettingsError

METHODS = [
    f"/{service.full_name}/{method.name}"
    for module in (router_pb2, llm_gateway_pb2, tilores_data_pb2, cache_pb2, optimizer_pb2)
    for service in module.DESCRIPTOR.services_by_name.values()
    for method in service.methods
]


def test_every_rpc_names_a_scope():
    assert {m: required_scope(m) for m in METHODS if required_scope(m) not in SCOPES} == {}


def test_what_writes_and_spends_needs_its_own_scope():
    assert required_scope("/tilores_x.v1.TiloresDataService/SearchEntities") == "customers.read"
    assert required_scope("/tilores_x.v1.TiloresDataService/SubmitRecords") == "customers.write"
    assert required_scope("/tilores_x.v1.LlmGatewayService/Generate") == "models.generate"
    assert required_scope("/tilores_x.v1.OptimizerService/ActivatePromptVersion") == "prompts.admin"
    assert required_scope("/tilores_x.v1.CacheService/Set") == "cache.write"
    assert required_scope("/tilores_x.v1.RouterService/Chat") == "chat"
    assert required_scope("/tilores_x.v1.NoSuchService/Get") is None
    assert required_scope("/tilores_x.v1.CacheService/NoSuchMethod") is None


def test_grants_parse_and_allow_only_what_they_name():
    grants = Grants.parse("service/router=customers.read, models.generate; client/agent-desk=chat")
    assert grants.allows(Caller("spiffe://tilores-x/service/router"), "customers.read")
    assert not grants.allows(Caller("spiffe://tilores-x/service/router"), "customers.write")
    assert not grants.allows(Caller("spiffe://tilores-x/client/stranger"), "chat")
    assert not grants.allows(Caller("spiffe://tilores-x/service/router"), None)
    assert Grants.parse(grants.render()) == grants


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("service/router", "expected 'service/<name>=scope"),
        ("router=chat", "expected 'service/<name>=scope"),
        ("service/router=chat,customers.delete", "unknown scope 'customers.delete'"),
    ],
)
def test_bad_grants_name_the_setting_and_the_problem(text, message):
    with pytest.raises(SettingsError, match="MESH_GRANTS") as caught:
        Grants.parse(text)
    assert message in str(caught.value)


def test_grants_are_required_with_tls(monkeypatch):
    monkeypatch.delenv("MESH_GRANTS", raising=False)
    with pytest.raises(SettingsError, match="MESH_GRANTS: required"):
        Grants.from_env()


def test_the_topology_grants_services_what_they_call_and_nothing_else():
    grants = load_topology("deploy/topology.yaml").grants()
    assert grants.held["service/cache"] == {"customers.read"}
    assert "customers.write" not in set().union(*grants.held.values())  # no service writes customers
    # tilores_data only records who read what, on behalf of whom the router serves.
    assert grants.held["service/tilores_data"] == {"audit.write", "principals.forward"}
    assert {c for c, scopes in grants.held.items() if "principals.forward" in scopes} == {
        "service/gateway",
        "service/router",
        "service/tilores_data",
        "service/optimizer",  # an evaluation run acts for the admin key that started it
    }
    assert "service/llm_gateway" not in grants.held and "service/audit" not in grants.held
    assert {c for c, scopes in grants.held.items() if "audit.read" in scopes} == {
        "service/gateway",
        "client/ops-console",
    }
    assert grants.held["client/agent-desk"] == {"chat"}


def test_a_principal_is_believed_only_from_a_caller_granted_to_forward_it():
    grants = Grants.parse("service/router=chat,principals.forward;service/optimizer=chat;client/agent-desk=chat")
    header = (("x-mesh-principal", "key=desk-7;tenant=acme;audience=client;customer=a@b.com;scopes=chat+models"),)
    router = Caller("spiffe://tilores-x/service/router")
    optimizer = Caller("spiffe://tilores-x/service/optimizer")
    outsider = Caller("spiffe://tilores-x/client/agent-desk", via_envoy=True)
    said = principal_of(router, header, grants)
    assert said == Principal(
        key_id="desk-7", tenant="acme", audience="client", customer="a@b.com", scopes=frozenset({"chat", "models"})
    )
    assert said.serves_customer and said.who == "key/desk-7"
    # A service of the mesh without the grant, or a caller from outside, acts
    # on its own account: its own tenant, its own scopes.
    assert principal_of(optimizer, header, grants) == Principal(
        caller="service/optimizer", tenant="service.optimizer", scopes=frozenset({"chat"})
    )
    assert principal_of(outsider, header, grants).tenant == "client.agent-desk"
    assert principal_of(router, (), grants).who == "service/router"
    assert principal_of(None, header, grants) is None
    assert principal_of(None, header).who == "key/desk-7"  # a mesh without identities takes every word
    # A header that does not parse, or a customer-facing key bound to
    # nobody, refuses the call: never the forwarder's own account instead.
    for bad in ("key=a b\\n;tenant=x", "key=web;tenant=t;audience=client", "key=web;audience=robot"):
        with pytest.raises(MalformedPrincipal):
            principal_of(router, (("x-mesh-principal", bad),), grants)
    assert Principal.of_caller("client/agent-desk").header() == "caller=client/agent-desk"
    assert _round_trip(said) == said


def _round_trip(principal: Principal) -> Principal:
    grants = Grants.parse("service/gateway=principals.forward")
    gateway = Caller("spiffe://tilores-x/service/gateway")
    return principal_of(gateway, (("x-mesh-principal", principal.header()),), grants)


@pytest.mark.parametrize(
    ("header", "caller"),
    [
        ("By=spiffe://tilores-x/edge/envoy;Hash=ab;URI=spiffe://tilores-x/client/operator",
         "spiffe://tilores-x/client/operator"),
        ('Subject="CN=x,O=y";URI=spiffe://tilores-x/client/operator', "spiffe://tilores-x/client/operator"),
        ("Hash=ab;URI=spiffe://tilores-x/client/intruder;URI=spiffe://tilores-x/client/operator", None),
        ('Hash=ab;URI="spiffe://tilores-x/client/intruder;URI=spiffe://tilores-x/client/operator"', None),
        ("URI=spiffe://tilores-x/client/intruder,URI=spiffe://tilores-x/client/operator", None),
        ('Hash=ab;URI="spiffe://tilores-x/client/operator', None),  # a quote that never ends
        ("URI=spiffe://tilores-x/edge/envoy", None),
        ("URI=spiffe://other-domain/client/operator", None),
        ("URI=spiffe://tilores-x/client/Operator", None),
        ("", None),
    ],
)  # fmt: skip
def test_the_forwarded_certificate_header_names_one_caller_or_none(header, caller):
    assert forwarded_caller(header) == caller
