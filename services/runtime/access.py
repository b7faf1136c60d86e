"""Authorization per RPC and on whose behalf a call is made.

Every RPC names the scope it needs in its proto (`required_scope`, see
protos/tilores_x/v1/access.proto); which caller holds which scope is
configuration, read once at start:

MESH_GRANTS   `service/router=customers.read,models.generate;client/agent-desk=chat`:
              each verified caller (its SPIFFE id without the trust domain)
              and the scopes it holds; generated from the topology

A call may say whose request it serves: the REST gateway puts the API key's
principal on its calls, and each service passes it on (`x-mesh-principal`).
Only a caller granted `principals.forward` is believed; for anyone else the
principal is the caller itself.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache

from google.protobuf import descriptor_pool
from tilores_x.v1 import access_pb2

from services.runtime.identity import MEMBER_NAME, Caller
from services.runtime.settings import SettingsError, env_str


def scope_name(value: int) -> str:
    """`SCOPE_CUSTOMERS_READ` -> `customers.read`."""
    return access_pb2.Scope.Name(value).removeprefix("SCOPE_").lower().replace("_", ".", 1)


SCOPES: frozenset[str] = frozenset(
    scope_name(value) for value in access_pb2.Scope.values() if value != access_pb2.SCOPE_UNSPECIFIED
)


@cache
def required_scope(method: str) -> str | None:
    """The scope an RPC (`/tilores_x.v1.CacheService/Set`) needs; None for
    a method that names none, which nobody may call."""
    service, _, name = method.lstrip("/").partition("/")
    try:
        found = descriptor_pool.Default().FindServiceByName(service).methods_by_name[name]
    except KeyError:
        return None
    value = found.GetOptions().Extensions[access_pb2.required_scope]
    return scope_name(value) if value != access_pb2.SCOPE_UNSPECIFIED else None


@dataclass(frozen=True)
class Grants:
    """Which caller holds which scopes; anyone not named holds none."""

    held: dict[str, frozenset[str]]

    @classmethod
    def parse(cls, text: str, where: str = "MESH_GRANTS") -> Grants:
        held: dict[str, frozenset[str]] = {}
        for entry in filter(None, (part.strip() for part in text.split(";"))):
            caller, equals, scopes = entry.partition("=")
            caller = caller.strip()
            if not equals or not MEMBER_NAME.fullmatch(caller):
                raise SettingsError(f"{where}: expected 'service/<name>=scope,scope;...', got {entry!r}")
            names = frozenset(s.strip() for s in scopes.split(",") if s.strip())
            unknown = sorted(names - SCOPES)
            if unknown:
                raise SettingsError(
                    f"{where}: {caller}: unknown scope {unknown[0]!r} (known: {', '.join(sorted(SCOPES))})"
                )
            held[caller] = held.get(caller, frozenset()) | names
        return cls(held)

    @classmethod
    def from_env(cls) -> Grants:
        text = env_str("MESH_GRANTS")
        if not text:
            raise SettingsError("MESH_GRANTS: required with TLS, the scopes each caller holds (nobody holds any)")
        return cls.parse(text)

    def allows(self, caller: Caller, scope: str | None) -> bool:
        return scope is not None and scope in self.held.get(caller.name, frozenset())

    def render(self) -> str:
        return ";".join(f"{caller}={','.join(sorted(scopes))}" for caller, scopes in sorted(self.held.items()))


# -- on whose behalf ------------------------------------------------------
PRINCIPAL_HEADER = "x-mesh-principal"
FORWARD_SCOPE = "principals.forward"
CLIENT_AUDIENCE = "client"  # a customer-facing chat: its own account only


@dataclass(frozen=True)
class Principal:
    """On whose behalf a call runs, made once from what was verified (an
    API key's record and the customer token that came with it at the
    gateway; a certificate at a service) and never from a request field.

    An API key's principal names the key, its tenant, its scopes, its
    audience, its limit of customers per hour and, for a customer-facing
    key, the one customer the signed-in person is. A caller acting on its
    own account (`client/agent-desk`, `service/optimizer`) is a tenant of
    its own and holds the scopes the mesh grants it."""

    key_id: str = ""
    tenant: str = ""
    caller: str = ""  # `client/agent-desk`, `service/optimizer`: when no key is behind the call
    customers_per_hour: int = 0  # the key's own limit of distinct customers (0: the router's default)
    audience: str = ""  # CLIENT_AUDIENCE: a customer-facing chat
    customer: str = ""  # the identifier of the one customer a customer-facing principal is
    scopes: frozenset[str] = frozenset()

    @classmethod
    def of_caller(cls, name: str, scopes: frozenset[str] = frozenset()) -> Principal:
        """A caller on its own account: its own tenant (`client.agent-desk`)."""
        return cls(caller=name, tenant=name.replace("/", "."), scopes=scopes)

    @property
    def who(self) -> str:
        """`key/desk-7` or `client/agent-desk`: what an audit record names."""
        return f"key/{self.key_id}" if self.key_id else self.caller

    @property
    def serves_customer(self) -> bool:
        """A customer-facing chat: client mode, the bound customer only."""
        return self.audience == CLIENT_AUDIENCE

    def header(self) -> str:
        if not self.key_id:
            return f"caller={self.caller}"
        fields = [f"key={self.key_id}", f"tenant={self.tenant}"]
        if self.customers_per_hour:
            fields.append(f"lookups={self.customers_per_hour}")
        if self.audience:
            fields.append(f"audience={self.audience}")
        if self.customer:
            fields.append(f"customer={self.customer}")
        if self.scopes:
            fields.append(f"scopes={'+'.join(sorted(self.scopes))}")
        return ";".join(fields)


PRINCIPAL: ContextVar[Principal | None] = ContextVar("principal", default=None)

# Why data is looked at: the chat completion a call serves, carried on from
# the router to tilores_data so both access records name it.
PURPOSE_HEADER = "x-mesh-completion-id"
PURPOSE: ContextVar[str] = ContextVar("purpose", default="")


def purpose_of(metadata) -> str:
    """The completion id a served call says it is for ("" without)."""
    for key, value in metadata or ():
        if key == PURPOSE_HEADER:
            text = value if isinstance(value, str) else value.decode()
            return text if HEADER_VALUE.fullmatch(text) else ""
    return ""


# What a value carried in a header of the mesh may be made of.
HEADER_VALUE = re.compile(r"[A-Za-z0-9_./:@+-]{1,128}")


class MalformedPrincipal(ValueError):
    """A forwarded principal that does not parse: the call is refused."""


def principal_of(caller: Caller | None, metadata, grants: Grants | None = None) -> Principal | None:
    """The principal of a served call: the one a caller holding
    `principals.forward` says it acts for, else the caller itself. Without
    `grants`, a mesh without identities (MESH_PLAINTEXT), where every
    caller is taken at its word."""
    if grants is None or (caller is not None and not caller.via_envoy and grants.allows(caller, FORWARD_SCOPE)):
        for key, value in metadata or ():
            if key == PRINCIPAL_HEADER:
                said = _parse_principal(value if isinstance(value, str) else value.decode())
                if said is None:  # never the forwarder's own account instead
                    raise MalformedPrincipal(f"{PRINCIPAL_HEADER} is malformed")
                return said
    if caller is None:
        return None
    return Principal.of_caller(caller.name, grants.held.get(caller.name, frozenset()) if grants else frozenset())


def _parse_principal(text: str) -> Principal | None:
    fields = dict(part.partition("=")[::2] for part in text.split(";") if "=" in part)
    if any(not HEADER_VALUE.fullmatch(value) for value in fields.values()):
        return None
    if fields.get("key"):
        lookups = fields.get("lookups", "0")
        audience = fields.get("audience", "")
        if audience not in ("", CLIENT_AUDIENCE, "agent") or (
            audience == CLIENT_AUDIENCE and not fields.get("customer")
        ):
            return None  # a customer-facing principal is bound to its customer, or it is nobody
        return Principal(
            key_id=fields["key"],
            tenant=fields.get("tenant", ""),
            customers_per_hour=int(lookups) if lookups.isdigit() else 0,
            audience=audience,
            customer=fields.get("customer", ""),
            scopes=frozenset(filter(None, fields.get("scopes", "").split("+"))),
        )
    if fields.get("caller"):
        return Principal.of_caller(fields["caller"])
    return None
