"""Customers from tilores_data, through the router's near-cache and the
cache service: search matches, the profile (360 view and credit report as
facts), links and fields. A gRPC failure is CustomerDataUnavailable,
NoSuchCustomer or UnknownCategory."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import duration_pb2
from tilores_x.v1 import cache_pb2, cache_pb2_grpc, tilores_data_pb2, tilores_data_pb2_grpc

from services.router.ports import (
    CustomerDataUnavailable,
    CustomerMatch,
    CustomerProfile,
    NoSuchCustomer,
    UnknownCategory,
)
from services.runtime.conversation import Fact
from services.runtime.customer_keys import CUSTOMER_NAMESPACE, credit_report_key, customer360_key, search_key
from services.runtime.lru import LruCache
from services.runtime.single_flight import SingleFlight

log = logging.getLogger("router.customers")

CACHE_TIMEOUT_S = 0.25
RECONNECT_WAIT_S = 1.0  # how long a lookup waits for tilores_data to come back
# A tilores_data call, given its timeout.
Fetch = Callable[..., Awaitable[Any]]
# 360 sections -> the fact topics answers are organised by.
TOPIC_OF_SECTION = {"enrollment": "status", "transactions": "billing"}


class CustomerDataOverGrpc:
    """CustomerData (services/router/ports.py) through the router's
    near-cache, the cache service and, once for all concurrent askers,
    tilores_data."""

    def __init__(
        self,
        tilores: tilores_data_pb2_grpc.TiloresDataServiceStub,
        cache: cache_pb2_grpc.CacheServiceStub,
        customer_ttl_s: float,
        near_cache_ttl_s: float,
    ):
        self._tilores = tilores
        self._cache = cache
        self._ttl = duration_pb2.Duration(seconds=int(customer_ttl_s))
        # Parsed lookups kept briefly in this process: a hot customer costs
        # no hop and no decoding. Short-lived so changes show up quickly.
        # Profiles by ("profile", tenant, entity id); replies by (tenant, key).
        self._near: LruCache[tuple[str, ...], Any] = LruCache(max_entries=2000, max_bytes=64 * 1024 * 1024)
        self._near_ttl_s = near_cache_ttl_s
        self._flight: SingleFlight[Any] = SingleFlight()
        self.tilores_calls = 0

    async def find(self, parameters: dict[str, str], tenant: str, timeout_s: float) -> list[CustomerMatch]:
        """Every customer matching the search parameters."""
        reply = await self._through_cache(
            tenant,
            search_key(parameters),
            tilores_data_pb2.SearchEntitiesResponse,
            lambda **call: self._tilores.SearchEntities(
                tilores_data_pb2.SearchEntitiesRequest(parameters=parameters), **call
            ),
            timeout_s,
        )
        return [CustomerMatch(e.id, tuple(r.data_json for r in e.records)) for e in reply.entities]

    async def profile(self, entity_id: str, tenant: str, timeout_s: float) -> CustomerProfile:
        """The customer's 360 view and credit report, fetched together; a
        hot customer's profile is kept as facts, not decoded each turn."""
        key = ("profile", tenant, entity_id)
        kept = self._near.get(key) if self._near_ttl_s > 0 else None
        if isinstance(kept, CustomerProfile):
            return kept
        ref = tilores_data_pb2.CustomerRef(entity_id=entity_id)
        view, credit = await asyncio.gather(
            self._through_cache(
                tenant,
                customer360_key(entity_id),
                tilores_data_pb2.GetCustomer360Response,
                lambda **call: self._tilores.GetCustomer360(
                    tilores_data_pb2.GetCustomer360Request(customer=ref), **call
                ),
                timeout_s,
            ),
            self._through_cache(
                tenant,
                credit_report_key(entity_id),
                tilores_data_pb2.GetCreditReportResponse,
                lambda **call: self._tilores.GetCreditReport(
                    tilores_data_pb2.GetCreditReportRequest(customer=ref), **call
                ),
                timeout_s,
            ),
        )
        profile = profile_of(view, credit)
        if self._near_ttl_s > 0:
            self._near.set(key, profile, self._near_ttl_s, size=view.ByteSize() + credit.ByteSize())
        return profile

    async def relationships(self, entity_id: str, timeout_s: float) -> list[dict[str, str]]:
        """How the customer's records are linked: pairs and the rule that joined them."""
        request = tilores_data_pb2.GetRelationshipsRequest(customer=tilores_data_pb2.CustomerRef(entity_id=entity_id))
        reply = await self._call(self._tilores.GetRelationships(request, timeout=timeout_s))
        return [
            {"record_a": r.record_a.id, "source_a": r.record_a.source, "record_b": r.record_b.id,
             "source_b": r.record_b.source, "rule": r.rule_id, "reason": r.reason}
            for r in reply.relationships
        ]  # fmt: skip

    async def fields(self, category: str, timeout_s: float) -> dict[str, list[str]]:
        """The fields Tilores holds, by category."""
        reply = await self._call(
            self._tilores.ListFields(tilores_data_pb2.ListFieldsRequest(category=category), timeout=timeout_s)
        )
        by_category: dict[str, list[str]] = {}
        for f in reply.fields:
            by_category.setdefault(f.category, []).append(f.name)
        return by_category

    async def field_infos(self, category: str, timeout_s: float) -> list[Any]:
        """Every field of a category with its share of customers (the
        tilores_data messages, passed on as they are)."""
        try:
            reply = await self._tilores.ListFields(
                tilores_data_pb2.ListFieldsRequest(category=category), timeout=timeout_s
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise UnknownCategory(error.details()) from None
            raise CustomerDataUnavailable(error.code().name) from None
        return list(reply.fields)

    @staticmethod
    async def _call(call: Awaitable[Any]) -> Any:
        try:
            return await call
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                raise NoSuchCustomer(error.details()) from None
            raise CustomerDataUnavailable(error.code().name) from None

    async def _through_cache(self, tenant: str, key: str, message_type: Any, fetch: Fetch, timeout_s: float) -> Any:
        near = self._near.get((tenant, key))
        if near is not None:
            return near
        # N concurrent turns about one uncached customer: one cache read and
        # one tilores_data call between them.
        return await self._flight.run((tenant, key), lambda: self._load(tenant, key, message_type, fetch, timeout_s))

    async def _load(self, tenant: str, key: str, message_type: Any, fetch: Fetch, timeout_s: float) -> Any:
        payload = b""
        try:
            cached = await self._cache.Get(
                cache_pb2.GetRequest(tenant=tenant, namespace=CUSTOMER_NAMESPACE, key=key),
                timeout=min(CACHE_TIMEOUT_S, timeout_s),
            )
            if cached.found:
                payload = cached.value
        except grpc.aio.AioRpcError as error:
            log.warning("cache.get_failed", extra={"fields": {"code": error.code().name}})
        if payload:
            reply = message_type.FromString(payload)
        else:
            try:
                reply = await _fetch_waiting_for_reconnect(fetch, timeout_s)
            except grpc.aio.AioRpcError as error:
                log.warning("tilores.lookup_failed", extra={"fields": {"code": error.code().name}})
                if error.code() == grpc.StatusCode.NOT_FOUND:
                    raise NoSuchCustomer(error.details()) from None
                raise CustomerDataUnavailable(error.code().name) from None
            self.tilores_calls += 1
            payload = reply.SerializeToString()
            # Stored before the flight ends: a turn arriving just after it
            # finds the value in the cache instead of asking tilores_data again.
            await self._store(tenant, key, payload)
        if self._near_ttl_s > 0:
            self._near.set((tenant, key), reply, self._near_ttl_s, size=len(payload))
        return reply

    async def _store(self, tenant: str, key: str, value: bytes) -> None:
        try:
            await self._cache.Set(
                cache_pb2.SetRequest(tenant=tenant, namespace=CUSTOMER_NAMESPACE, key=key, value=value, ttl=self._ttl),
                timeout=1.0,
            )
        except grpc.aio.AioRpcError as error:
            log.warning("cache.set_failed", extra={"fields": {"code": error.code().name}})


async def _fetch_waiting_for_reconnect(fetch: Fetch, timeout_s: float) -> Any:
    """One tilores_data call. When it finds tilores_data unreachable
    (restarting, a pod being replaced) it waits up to RECONNECT_WAIT_S for
    the channel to connect again, so a short restart is not an answer that
    says the data is unavailable."""
    try:
        return await fetch(timeout=timeout_s)
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.UNAVAILABLE or timeout_s <= RECONNECT_WAIT_S:
            raise
    return await fetch(timeout=RECONNECT_WAIT_S, wait_for_ready=True)


def profile_of(
    view: tilores_data_pb2.GetCustomer360Response, credit: tilores_data_pb2.GetCreditReportResponse
) -> CustomerProfile:
    """The two answers of tilores_data as one plain profile."""
    sections = {
        section.name: tuple(
            Fact(TOPIC_OF_SECTION.get(section.name, section.name), f.label, f.value, f.record_id, f.pii_kind)
            for f in section.facts
        )
        for section in view.sections
    }
    # Advice is read from one bureau's report: cite that report.
    advice = tuple(
        Fact("credit", "Credit advice", text, next((b.record_id for b in credit.bureaus if b.bureau in text), ""))
        for text in credit.assessment.recommendations
    )
    return CustomerProfile(view.entity_id, view.customer_name, sections, _credit(credit), advice)


def _credit(credit: tilores_data_pb2.GetCreditReportResponse) -> dict[str, Any]:
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
