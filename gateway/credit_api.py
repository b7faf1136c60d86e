"""CreditRoutes: the original assistant's credit endpoints, on the same data
and rules as the chat answers (the router's lookup, lookup limit and access
log), for keys with the `chat` scope and counted against the chat quota.

  GET  /v1/credit-report/{identifier}   one customer's credit report (e-mail, client id, phone, contact id)
  POST /v1/credit-comparison            {"customers": [identifier, ...]} (2..10): profiles side by side
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import unquote

import grpc
import orjson
from tilores_x.v1 import router_pb2, router_pb2_grpc

from gateway.exchange import Exchange
from gateway.json_body import check_string, field, invalid_type, json_object
from gateway.openai_errors import OpenAIError, from_grpc
from gateway.quotas import Quotas
from gateway.routes import Route

MAX_IDENTIFIER_CHARS = 256
MIN_COMPARED, MAX_COMPARED = 2, 10


class CreditRoutes:
    def __init__(self, router: router_pb2_grpc.RouterServiceStub, quotas: Quotas, timeout_s: float = 30.0):
        self._router = router
        self._quotas = quotas
        self._timeout_s = timeout_s

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/v1/credit-report/{identifier}", self.report, "chat", agents_only=True),
            Route("POST", "/v1/credit-comparison", self.comparison, "chat", agents_only=True),
        ]

    async def _credit(self, identifier: str) -> dict[str, Any]:
        request = router_pb2.GetCustomerCreditRequest(identifier=identifier)
        reply = await self._router.GetCustomerCredit(request, timeout=self._timeout_s)
        return {
            "object": "credit_report",
            "identifier": identifier,
            "lookup": reply.lookup,
            "entity_id": reply.entity_id,
            "customer_name": reply.customer_name,
            **orjson.loads(reply.credit_json),
        }

    async def report(self, exchange: Exchange, identifier: str) -> None:
        identifier = check_string("identifier", unquote(identifier), MAX_IDENTIFIER_CHARS)
        exchange.headers.extend((await self._quotas.admit(exchange.key, "chat")).headers())
        try:
            body = await self._credit(identifier)
        except grpc.aio.AioRpcError as error:
            raise from_grpc(error) from None
        await exchange.json(200, body)

    async def comparison(self, exchange: Exchange) -> None:
        raw = await exchange.body()
        if raw is None:
            return
        customers = field(json_object(raw), "customers", list, required=True)
        if not MIN_COMPARED <= len(customers) <= MAX_COMPARED:
            raise OpenAIError(
                400, f"Invalid 'customers': compare {MIN_COMPARED} to {MAX_COMPARED} customers.", param="customers"
            )
        for n, identifier in enumerate(customers):
            if not isinstance(identifier, str):
                raise invalid_type(f"customers[{n}]", "a string", identifier)
            check_string(f"customers[{n}]", identifier, MAX_IDENTIFIER_CHARS)
        exchange.headers.extend((await self._quotas.admit(exchange.key, "chat", requests=len(customers))).headers())
        results = await asyncio.gather(*(self._credit(i) for i in customers), return_exceptions=True)
        profiles = []
        for n, (identifier, result) in enumerate(zip(customers, results, strict=True)):
            if isinstance(result, grpc.aio.AioRpcError):
                error = from_grpc(result)
                error.param = f"customers[{n}]"
                profiles.append({"identifier": identifier, "error": error.body()["error"]})
            elif isinstance(result, BaseException):
                raise result
            else:
                profiles.append(_profile(result))
        await exchange.json(200, {"object": "credit_comparison", "customers": profiles})


def _profile(report: dict[str, Any]) -> dict[str, Any]:
    """One customer's credit figures for a side-by-side view: the latest
    score, utilization and late payments per bureau; band and risk level."""
    bureaus = {}
    for bureau in report["bureaus"]:
        latest = bureau["scores"][-1] if bureau["scores"] else None
        bureaus[bureau["bureau"]] = {
            "score": latest["value"] if latest else None,
            "score_date": latest["date"] if latest else None,
            "record": latest["record"] if latest else None,
            "utilization_percent": bureau["utilization_percent"],
            "late_payments_30_60_90": bureau["late_payments_30_60_90"],
            "inquiries": bureau["inquiries"],
        }
    assessment = report["assessment"]
    return {
        "identifier": report["identifier"],
        "entity_id": report["entity_id"],
        "customer_name": report["customer_name"],
        "bureaus": bureaus,
        "lowest_score": assessment["score"],
        "band": assessment["band"],
        "risk_level": assessment["risk_level"],
        "status": assessment["status"],
    }
