"""Scopes, grants and principals (services/runtime/access.py)."""

from __future__ import annotations

import pytest
from tilores_x.v1 import cache_pb2, llm_gateway_pb2, optimizer_pb2, router_pb2, tilores_data_pb2

from deploy.topology import load_topology
from services.runtime.access import SCOPES, Grants, Principal, principal_of, required_scope
from services.runtime.identity import Caller, forwarded_caller
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
    assert grants.held["service/tilores_data"] == {"audit.write"}  # it only records who read what
    assert "service/llm_gateway" not in grants.held and "service/audit" not in grants.held
    assert {c for c, scopes in grants.held.items() if "audit.read" in scopes} == {
        "service/gateway",
        "client/ops-console",
    }
    assert grants.held["client/agent-desk"] == {"chat"}


def test_a_principal_is_believed_from_a_service_only():
    header = (("x-mesh-principal", "key=desk-7;tenant=acme"),)
    router = Caller("spiffe://tilores-x/service/router")
    outsider = Caller("spiffe://tilores-x/client/agent-desk", via_envoy=True)
    assert principal_of(router, header) == Principal(key_id="desk-7", tenant="acme")
    assert principal_of(outsider, header) == Principal(caller="client/agent-desk")
    assert principal_of(router, ()) == Principal(caller="service/router")
    assert principal_of(None, header) is None
    assert principal_of(None, header, trust_header=True).who == "key/desk-7"
    # Garbage in the header is not a principal.
    assert principal_of(router, (("x-mesh-principal", "key=a b\\n;tenant=x"),)) == Principal(caller="service/router")


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
