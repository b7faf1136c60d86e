"""Principal: on whose behalf a call runs, defined once for the whole mesh,
and how it travels between services (`x-mesh-principal`). Plain code: who
may say it (a caller granted `principals.forward`) is decided in
services/runtime/access.py, where calls are authorized."""

from __future__ import annotations

import re
from contextvars import ContextVar
from dataclasses import dataclass

from services.runtime.request_context import Metadata

PRINCIPAL_HEADER = "x-mesh-principal"
CLIENT_AUDIENCE = "client"  # a customer-facing chat: its own account only
# What a value carried in a header of the mesh may be made of.
HEADER_VALUE = re.compile(r"[A-Za-z0-9_./:@+-]{1,128}")


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

    @classmethod
    def from_header(cls, text: str) -> Principal | None:
        """The principal a header carries; None when it does not parse (or
        names a customer-facing key bound to nobody)."""
        fields = dict(part.partition("=")[::2] for part in text.split(";") if "=" in part)
        if any(not HEADER_VALUE.fullmatch(value) for value in fields.values()):
            return None
        if fields.get("key"):
            lookups = fields.get("lookups", "0")
            audience = fields.get("audience", "")
            if audience not in ("", CLIENT_AUDIENCE, "agent"):
                return None
            if audience == CLIENT_AUDIENCE and not fields.get("customer"):
                return None  # a customer-facing principal is bound to its customer, or it is nobody
            return cls(
                key_id=fields["key"],
                tenant=fields.get("tenant", ""),
                customers_per_hour=int(lookups) if lookups.isdigit() else 0,
                audience=audience,
                customer=fields.get("customer", ""),
                scopes=frozenset(filter(None, fields.get("scopes", "").split("+"))),
            )
        if fields.get("caller"):
            return cls.of_caller(fields["caller"])
        return None


PRINCIPAL: ContextVar[Principal | None] = ContextVar("principal", default=None)

# Why data is looked at: the chat completion a call serves, carried on from
# the router to tilores_data so both access records name it.
PURPOSE_HEADER = "x-mesh-completion-id"
PURPOSE: ContextVar[str] = ContextVar("purpose", default="")


def purpose_of(metadata: Metadata | None) -> str:
    """The completion id a served call says it is for ("" without)."""
    for key, value in metadata or ():
        if key == PURPOSE_HEADER:
            text = value if isinstance(value, str) else value.decode()
            return text if HEADER_VALUE.fullmatch(text) else ""
    return ""
