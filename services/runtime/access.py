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

from dataclasses import dataclass
from functools import cache

from google.protobuf import descriptor_pool
from tilores_x.v1 import access_pb2

from services.runtime.identity import MEMBER_NAME, Caller
from services.runtime.principal import PRINCIPAL_HEADER, Principal
from services.runtime.request_context import Metadata
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
    # The generated stubs type a custom option's descriptor too narrowly.
    value: int = found.GetOptions().Extensions[access_pb2.required_scope]  # type: ignore[index]
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
FORWARD_SCOPE = "principals.forward"


class MalformedPrincipal(ValueError):
    """A forwarded principal that does not parse: the call is refused."""


def principal_of(caller: Caller | None, metadata: Metadata | None, grants: Grants | None = None) -> Principal | None:
    """The principal of a served call: the one a caller holding
    `principals.forward` says it acts for, else the caller itself. Without
    `grants`, a mesh without identities (MESH_PLAINTEXT), where every
    caller is taken at its word."""
    if grants is None or (caller is not None and not caller.via_envoy and grants.allows(caller, FORWARD_SCOPE)):
        for key, value in metadata or ():
            if key == PRINCIPAL_HEADER:
                said = Principal.from_header(value if isinstance(value, str) else value.decode())
                if said is None:  # never the forwarder's own account instead
                    raise MalformedPrincipal(f"{PRINCIPAL_HEADER} is malformed")
                return said
    if caller is None:
        return None
    return Principal.of_caller(caller.name, grants.held.get(caller.name, frozenset()) if grants else frozenset())
