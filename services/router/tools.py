"""Data tools the router offers a model that can call tools, and runs itself
against tilores_data: search_customer, get_customer_360, get_credit_report,
get_relationships, list_fields. Results are JSON; personal data in them is
masked by the same field policy as the context. Every call is counted, with
its failures and latency."""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from services.router.customer_access_gate import CustomerAccessGate
from services.router.grounding import MAX_CANDIDATES, fact_kinds
from services.router.lookup_limit import LookupLimitReached
from services.router.ports import CustomerData, CustomerDataUnavailable, NoSuchCustomer
from services.runtime.conversation import Fact, Tool
from services.runtime.customer_identifiers import identifiers_in
from services.runtime.field_policy import FieldPolicy

MAX_ROUNDS = 3
_ENTITY = {
    "type": "object",
    "properties": {"entity_id": {"type": "string", "description": "Entity id from search_customer"}},
    "required": ["entity_id"],
}

TOOLS = (
    Tool(
        name="search_customer",
        description="Find customers by e-mail, client id, phone number, Salesforce contact id or first and last "
        "name. Returns each matching customer's entity id, name, client id and e-mail.",
        parameters={
            "type": "object",
            "properties": {"query": {"type": "string", "description": "An identifier or a full name"}},
            "required": ["query"],
        },
    ),
    Tool(
        name="get_customer_360",
        description="The customer's profile: identity, contact, status, enrollment, billing, transactions, calls, "
        "tickets, relationships and credit; every value with the record it came from.",
        parameters=_ENTITY,
    ),
    Tool(
        name="get_credit_report",
        description="Per bureau: scores over time, utilization, late payments, accounts and inquiries; the score "
        "band, risk level and recommendations.",
        parameters=_ENTITY,
    ),
    Tool(
        name="get_relationships",
        description="How the customer's records are linked: pairs of records and the rule that joined them.",
        parameters=_ENTITY,
    ),
    Tool(
        name="list_fields",
        description="The customer-data fields Tilores holds, by category (identity, contact, status, billing, card, "
        "calls, tickets, credit).",
        parameters={"type": "object", "properties": {"category": {"type": "string"}}, "required": []},
    ),
)


class ToolError(Exception):
    """A tool call the router could not answer; the message goes back to the model."""


@dataclass
class ToolCounters:
    calls: int = 0
    failures: int = 0
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=1024))

    def p50(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else 0.0


class ToolRunner:
    def __init__(self, customers: CustomerData, policy: FieldPolicy, access: CustomerAccessGate | None = None):
        self._customers = customers
        self._policy = policy
        self._access = access
        self._tools: dict[str, Callable[..., Awaitable[dict[str, Any]]]] = {
            "search_customer": self.search_customer,
            "get_customer_360": self.get_customer_360,
            "get_credit_report": self.get_credit_report,
            "get_relationships": self.get_relationships,
            "list_fields": self.list_fields,
        }
        self.counters = {name: ToolCounters() for name in self._tools}

    async def run(self, name: str, arguments: str, allowed: frozenset[str], tenant: str, timeout_s: float) -> str:
        """The tool's JSON result; failures become {"error": ...} for the model."""
        tool = self._tools.get(name)
        counters = self.counters.get(name)
        started = time.perf_counter()
        try:
            if tool is None:
                raise ToolError(f"there is no tool named {name!r}")
            try:
                args = orjson.loads(arguments or "{}")
            except orjson.JSONDecodeError:
                raise ToolError("the arguments are not valid JSON") from None
            if not isinstance(args, dict):
                raise ToolError("the arguments must be a JSON object")
            result = await tool(args, allowed, tenant, timeout_s)
        except (ToolError, CustomerDataUnavailable, NoSuchCustomer, LookupLimitReached) as error:
            if counters is not None:
                counters.failures += 1
            result = {"error": _reason(error)}
        finally:
            if counters is not None:
                counters.calls += 1
                counters.latencies_ms.append((time.perf_counter() - started) * 1000)
        return orjson.dumps(result).decode()

    async def _looking_at(self, entity_ids: list[str]) -> None:
        if self._access is not None:
            await self._access.admit(entity_ids)

    def _looked_at(self, entity_ids: list[str], tool: str, kinds: set[str]) -> None:
        if self._access is not None:
            self._access.record(entity_ids, f"tool.{tool}", kinds)

    @staticmethod
    def _entity_id(args: dict[str, Any]) -> str:
        entity_id = args.get("entity_id")
        if not isinstance(entity_id, str) or not entity_id.strip():
            raise ToolError("entity_id is required; find it with search_customer")
        return entity_id.strip()

    async def search_customer(
        self, args: dict[str, Any], allowed: frozenset[str], tenant: str, timeout_s: float
    ) -> dict[str, Any]:
        query = args.get("query")
        if not isinstance(query, str) or not query.strip():
            raise ToolError("query is required")
        identifiers = identifiers_in(query)
        if not identifiers:
            raise ToolError("query holds no e-mail, client id, phone number, contact id or full name")
        matches = await self._customers.find(identifiers.search_parameters(), tenant, timeout_s)
        shown = matches[:MAX_CANDIDATES]
        await self._looking_at([m.entity_id for m in shown])
        customers = []
        for match in shown:
            summary, record_id = match.summary()
            customers.append({"entity_id": match.entity_id, "summary": summary, "record": record_id})
        self._looked_at([m.entity_id for m in shown], "search_customer", {"identity", "contact"})
        result: dict[str, Any] = {"lookup": identifiers.describe(), "customers": customers}
        if len(matches) > len(shown):
            result["more"] = len(matches) - len(shown)
        return result

    async def get_customer_360(
        self, args: dict[str, Any], allowed: frozenset[str], tenant: str, timeout_s: float
    ) -> dict[str, Any]:
        entity_id = self._entity_id(args)
        await self._looking_at([entity_id])
        profile = await self._customers.profile(entity_id, tenant, timeout_s)
        self._looked_at([entity_id], "get_customer_360", fact_kinds(profile.facts()))
        sections = {
            name: [{"label": f.label, "value": f.value, "record": f.record_id} for f in self._masked(facts, allowed)]
            for name, facts in profile.sections.items()
        }
        return {"entity_id": profile.entity_id, "customer_name": profile.customer_name, "sections": sections}

    def _masked(self, facts: tuple[Fact, ...], allowed: frozenset[str]) -> list[Fact]:
        return self._policy.apply(list(facts), allowed)

    async def get_credit_report(
        self, args: dict[str, Any], allowed: frozenset[str], tenant: str, timeout_s: float
    ) -> dict[str, Any]:
        entity_id = self._entity_id(args)
        await self._looking_at([entity_id])
        credit = (await self._customers.profile(entity_id, tenant, timeout_s)).credit
        self._looked_at([entity_id], "get_credit_report", {"credit"})
        return credit

    async def get_relationships(
        self, args: dict[str, Any], allowed: frozenset[str], tenant: str, timeout_s: float
    ) -> dict[str, Any]:
        entity_id = self._entity_id(args)
        await self._looking_at([entity_id])
        self._looked_at([entity_id], "get_relationships", {"identity"})
        return {"entity_id": entity_id, "links": await self._customers.relationships(entity_id, timeout_s)}

    async def list_fields(
        self, args: dict[str, Any], allowed: frozenset[str], tenant: str, timeout_s: float
    ) -> dict[str, Any]:
        category = args.get("category") or ""
        if not isinstance(category, str):
            raise ToolError("category must be a string")
        return {"fields": await self._customers.fields(category, timeout_s)}


def _reason(error: BaseException) -> str:
    if isinstance(error, NoSuchCustomer):
        return "no such customer"
    if isinstance(error, CustomerDataUnavailable):
        return "customer data is unavailable right now"
    return str(error)
