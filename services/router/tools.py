"""Data tools the router offers a model that can call tools, and runs itself
against tilores_data: search_customer, get_customer_360, get_credit_report,
get_relationships, list_fields. Results are JSON; personal data in them is
masked by the same field policy as the context. Every call is counted, with
its failures and latency."""

from __future__ import annotations

import statistics
import time
from collections import deque
from dataclasses import dataclass, field

import grpc
import orjson
from tilores_x.v1 import common_pb2, tilores_data_pb2

from services.router.field_policy import FieldPolicy
from services.router.grounding import Fact, ambiguous
from services.router.peers import LookupUnavailable, MeshPeers
from services.runtime.customer_identifiers import identifiers_in

MAX_ROUNDS = 3
_ENTITY = {
    "type": "object",
    "properties": {"entity_id": {"type": "string", "description": "Entity id from search_customer"}},
    "required": ["entity_id"],
}

TOOLS = (
    common_pb2.Tool(
        name="search_customer",
        description="Find customers by e-mail, client id, phone number, Salesforce contact id or first and last "
        "name. Returns each matching customer's entity id, name, client id and e-mail.",
        parameters_json=orjson.dumps(
            {
                "type": "object",
                "properties": {"query": {"type": "string", "description": "An identifier or a full name"}},
                "required": ["query"],
            }
        ).decode(),
    ),
    common_pb2.Tool(
        name="get_customer_360",
        description="The customer's profile: identity, contact, status, enrollment, billing, transactions, calls, "
        "tickets, relationships and credit; every value with the record it came from.",
        parameters_json=orjson.dumps(_ENTITY).decode(),
    ),
    common_pb2.Tool(
        name="get_credit_report",
        description="Per bureau: scores over time, utilization, late payments, accounts and inquiries; the score "
        "band, risk level and recommendations.",
        parameters_json=orjson.dumps(_ENTITY).decode(),
    ),
    common_pb2.Tool(
        name="get_relationships",
        description="How the customer's records are linked: pairs of records and the rule that joined them.",
        parameters_json=orjson.dumps(_ENTITY).decode(),
    ),
    common_pb2.Tool(
        name="list_fields",
        description="The customer-data fields Tilores holds, by category (identity, contact, status, billing, card, "
        "calls, tickets, credit).",
        parameters_json=orjson.dumps(
            {"type": "object", "properties": {"category": {"type": "string"}}, "required": []}
        ).decode(),
    ),
)
TOOL_NAMES = frozenset(t.name for t in TOOLS)


class ToolError(Exception):
    """A tool call the router could not answer; the message goes back to the model."""


@dataclass
class ToolCounters:
    calls: int = 0
    failures: int = 0
    latencies_ms: deque = field(default_factory=lambda: deque(maxlen=1024))

    def p50(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else 0.0


class ToolRunner:
    def __init__(self, peers: MeshPeers, policy: FieldPolicy):
        self._peers = peers
        self._policy = policy
        self.counters = {name: ToolCounters() for name in TOOL_NAMES}

    async def run(self, name: str, arguments: str, allowed: frozenset[str], tenant: str, timeout_s: float) -> str:
        """The tool's JSON result; failures become {"error": ...} for the model."""
        counters = self.counters.get(name)
        started = time.perf_counter()
        try:
            if counters is None:
                raise ToolError(f"there is no tool named {name!r}")
            try:
                args = orjson.loads(arguments or "{}")
            except orjson.JSONDecodeError:
                raise ToolError("the arguments are not valid JSON") from None
            if not isinstance(args, dict):
                raise ToolError("the arguments must be a JSON object")
            result = await getattr(self, f"_{name}")(args, allowed, tenant, timeout_s)
        except (ToolError, LookupUnavailable, grpc.aio.AioRpcError) as error:
            if counters is not None:
                counters.failures += 1
            result = {"error": _reason(error)}
        finally:
            if counters is not None:
                counters.calls += 1
                counters.latencies_ms.append((time.perf_counter() - started) * 1000)
        return orjson.dumps(result).decode()

    @staticmethod
    def _entity_id(args: dict) -> str:
        entity_id = args.get("entity_id")
        if not isinstance(entity_id, str) or not entity_id.strip():
            raise ToolError("entity_id is required; find it with search_customer")
        return entity_id.strip()

    async def _search_customer(self, args: dict, allowed, tenant: str, timeout_s: float) -> dict:
        query = args.get("query")
        if not isinstance(query, str) or not query.strip():
            raise ToolError("query is required")
        identifiers = identifiers_in(query)
        if not identifiers:
            raise ToolError("query holds no e-mail, client id, phone number, contact id or full name")
        entities = await self._peers.find_entities(identifiers.search_parameters(), timeout_s, tenant)
        candidates = ambiguous(identifiers.describe(), entities).facts
        return {
            "lookup": identifiers.describe(),
            "customers": [
                {"entity_id": e.id, "summary": f.value, "record": f.record_id}
                for e, f in zip(entities, candidates, strict=False)
            ],
        }

    async def _get_customer_360(self, args: dict, allowed, tenant: str, timeout_s: float) -> dict:
        view, _ = await self._view(args, tenant, timeout_s)
        sections = {}
        for section in view.sections:
            facts = [Fact(section.name, f.label, f.value, f.record_id, f.pii_kind) for f in section.facts]
            sections[section.name] = [
                {"label": f.label, "value": f.value, "record": f.record_id} for f in self._policy.apply(facts, allowed)
            ]
        return {"entity_id": view.entity_id, "customer_name": view.customer_name, "sections": sections}

    async def _get_credit_report(self, args: dict, allowed, tenant: str, timeout_s: float) -> dict:
        _, credit = await self._view(args, tenant, timeout_s)
        status = tilores_data_pb2.CreditStatus.Name(credit.assessment.status).removeprefix("CREDIT_STATUS_").lower()
        return {
            "entity_id": credit.entity_id,
            "bureaus": [
                {
                    "bureau": b.bureau,
                    "scores": [{"value": s.value, "date": s.date, "record": s.record_id} for s in b.scores],
                    "utilization_percent": b.utilization_percent if b.HasField("utilization_percent") else None,
                    "late_payments_30_60_90": [b.late_30_days, b.late_60_days, b.late_90_days],
                    "open_accounts": b.open_accounts,
                    "closed_accounts": b.closed_accounts,
                    "inquiries": b.inquiries,
                }
                for b in credit.bureaus
            ],
            "assessment": {
                "status": status,
                "score": credit.assessment.score if status == "scored" else None,
                "band": credit.assessment.band or None,
                "risk_level": credit.assessment.risk_level or None,
                "recommendations": list(credit.assessment.recommendations),
            },
        }

    async def _get_relationships(self, args: dict, allowed, tenant: str, timeout_s: float) -> dict:
        reply = await self._peers.tilores.GetRelationships(
            tilores_data_pb2.GetRelationshipsRequest(
                customer=tilores_data_pb2.CustomerRef(entity_id=self._entity_id(args))
            ),
            timeout=timeout_s,
        )
        return {
            "entity_id": reply.entity_id,
            "links": [
                {"record_a": r.record_a.id, "source_a": r.record_a.source, "record_b": r.record_b.id,
                 "source_b": r.record_b.source, "rule": r.rule_id, "reason": r.reason}
                for r in reply.relationships
            ],
        }  # fmt: skip

    async def _list_fields(self, args: dict, allowed, tenant: str, timeout_s: float) -> dict:
        category = args.get("category") or ""
        if not isinstance(category, str):
            raise ToolError("category must be a string")
        reply = await self._peers.tilores.ListFields(
            tilores_data_pb2.ListFieldsRequest(category=category), timeout=timeout_s
        )
        by_category: dict[str, list[str]] = {}
        for f in reply.fields:
            by_category.setdefault(f.category, []).append(f.name)
        return {"fields": by_category}

    async def _view(self, args: dict, tenant: str, timeout_s: float):
        return await self._peers.customer_view(self._entity_id(args), timeout_s, tenant)


def _reason(error: BaseException) -> str:
    if isinstance(error, grpc.aio.AioRpcError):
        if error.code() == grpc.StatusCode.NOT_FOUND:
            return "no such customer"
        return f"customer data is unavailable ({error.code().name})"
    if isinstance(error, LookupUnavailable):
        return (
            "no such customer"
            if error.args and error.args[0] == "NOT_FOUND"
            else "customer data is unavailable right now"
        )
    return str(error)
