"""CreditLookup: one customer's credit report by an identifier, for the REST
credit endpoints. The same lookup, lookup limit and access log as a chat
turn; the report as the get_credit_report data tool gives it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.router.customer_access_gate import CustomerAccessGate
from services.router.ports import CustomerData
from services.runtime.customer_identifiers import identifiers_in
from services.runtime.faults import FailedPrecondition, InvalidArgument, NotFound


@dataclass(frozen=True)
class CustomerCredit:
    entity_id: str
    customer_name: str
    lookup: str
    credit: dict[str, Any]


class CreditLookup:
    def __init__(self, customers: CustomerData, access: CustomerAccessGate | None):
        self._customers = customers
        self._access = access

    async def credit(self, identifier: str, tenant: str, timeout_s: float) -> CustomerCredit:
        identifiers = identifiers_in(identifier)
        if not identifiers.exact:
            raise InvalidArgument(
                "identifier: give an e-mail, client id, phone number or Salesforce contact id", field="identifier"
            )
        lookup = identifiers.describe()
        matches = await self._customers.find(identifiers.search_parameters(), tenant, timeout_s)
        if not matches:
            if self._access is not None:
                await self._access.admit([])  # past the limit, nobody is refused like anybody
            raise NotFound(f"no customer matches {lookup}", field="identifier")
        if len(matches) > 1:
            raise FailedPrecondition(
                f"{len(matches)} customers match {lookup}; use an exact identifier", field="identifier"
            )
        entity_id = matches[0].entity_id
        if self._access is not None:
            await self._access.admit([entity_id])
        profile = await self._customers.profile(entity_id, tenant, timeout_s)
        if self._access is not None:
            self._access.record([entity_id], "credit.report", {"credit", "identity"})
        found_by = identifiers.describe_found(matches[0].records())
        return CustomerCredit(entity_id, profile.customer_name, found_by, profile.credit)
