"""CustomerDirectory: customers named for an auditor reading the access
log, who sees entity ids there: the customers an identifier finds, or the
names of given entity ids. Every customer named goes on the access log as
a look at their identity (`access_log.lookup`), under the auditor's key."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from services.router.customer_access_gate import CustomerAccessGate
from services.router.ports import CustomerData, NoSuchCustomer
from services.runtime.customer_identifiers import identifiers_in
from services.runtime.faults import InvalidArgument

MAX_NAMED = 100  # customers one call names
LOOKUP_ACTION = "access_log.lookup"


@dataclass(frozen=True)
class NamedCustomer:
    entity_id: str
    name: str  # "" when the records give none


class CustomerDirectory:
    def __init__(self, customers: CustomerData, access: CustomerAccessGate | None):
        self._customers = customers
        self._access = access

    async def find(self, identifier: str, tenant: str, timeout_s: float) -> list[NamedCustomer]:
        """The customers an exact identifier finds (none is an empty list)."""
        identifiers = identifiers_in(identifier)
        if not identifiers.exact:
            raise InvalidArgument(
                "identifier: give an e-mail, client id, phone number or Salesforce contact id", field="identifier"
            )
        matches = await self._customers.find(identifiers.search_parameters(), tenant, timeout_s)
        named = [NamedCustomer(m.entity_id, m.name()) for m in matches[:MAX_NAMED]]
        self._record(named)
        return named

    async def names(self, entity_ids: list[str], tenant: str, timeout_s: float) -> list[NamedCustomer]:
        """The customers of these entity ids, in the order given; an id that
        names nobody is left out."""
        if len(entity_ids) > MAX_NAMED:
            raise InvalidArgument(f"entity_ids: at most {MAX_NAMED}", field="entity_ids")
        unique = list(dict.fromkeys(e for e in entity_ids if e))
        found = await asyncio.gather(*(self._name(e, tenant, timeout_s) for e in unique))
        named = [n for n in found if n is not None]
        self._record(named)
        return named

    async def _name(self, entity_id: str, tenant: str, timeout_s: float) -> NamedCustomer | None:
        try:
            profile = await self._customers.profile(entity_id, tenant, timeout_s)
        except NoSuchCustomer:
            return None
        return NamedCustomer(entity_id, profile.customer_name)

    def _record(self, named: list[NamedCustomer]) -> None:
        if self._access is not None and named:
            self._access.record([n.entity_id for n in named], LOOKUP_ACTION, {"identity"})
