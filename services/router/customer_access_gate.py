"""CustomerAccessGate: before a turn or a data tool shows customers, the
principal's limit of distinct customers an hour (checked before their data
is read), then the access log (written before the answer goes out)."""

from __future__ import annotations

from services.router.lookup_limit import LookupLimit, LookupLimitReached
from services.router.ports import AccessLedger
from services.runtime.principal import PRINCIPAL


class CustomerAccessGate:
    def __init__(self, limit: LookupLimit | None, ledger: AccessLedger | None):
        self._limit = limit
        self._ledger = ledger

    async def admit(self, entity_ids: list[str]) -> None:
        """Raises LookupLimitReached when these would be too many new customers."""
        if self._limit is None:
            return
        principal = PRINCIPAL.get()
        who = principal.who if principal is not None else "anonymous"
        try:
            await self._limit.admit(who, entity_ids, principal.customers_per_hour if principal is not None else 0)
        except LookupLimitReached:
            self.record(entity_ids, "refused.lookup_limit", set())  # attempts are on record too
            raise

    def record(self, entity_ids: list[str], action: str, field_kinds: set[str]) -> None:
        if self._ledger is not None:
            self._ledger.record(entity_ids, action, field_kinds)

    async def close(self) -> None:
        if self._ledger is not None:
            await self._ledger.close()
        if self._limit is not None:
            await self._limit.close()
