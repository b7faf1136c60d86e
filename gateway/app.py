"""GatewayApp: the OpenAI-compatible REST API as a plain ASGI application.

A table of routes to handlers, one module per family: chat and batch
(`gateway/chat.py`), models, feedback, the admin API and health. Each
request gets an id (the caller's `x-request-id` or a new one) that every
gRPC call carries on, is checked against the route's access (public, API
key holding the route's scope), and ends in one access-log line and the HTTP metrics,
labelled by route template. Any error is OpenAI error JSON.
"""

from __future__ import annotations

import logging
import time
from typing import Any, cast

import grpc
from grpc_health.v1 import health_pb2_grpc
from tilores_x.v1 import audit_pb2_grpc, cache_pb2_grpc, llm_gateway_pb2_grpc, optimizer_pb2_grpc, router_pb2_grpc

from gateway import metrics
from gateway.access_log_api import AccessLogRoutes
from gateway.admin_api import AdminRoutes
from gateway.api_keys import ApiKeys
from gateway.cache_admin import CacheAdminRoute
from gateway.chat import ChatRoutes
from gateway.completions import CompletionRoutes
from gateway.console import ConsoleRoutes
from gateway.credit_api import CreditRoutes
from gateway.customer_tokens import bound_customer
from gateway.embeddings import EmbeddingRoute
from gateway.exchange import Exchange, Receive, Send
from gateway.feedback import FeedbackRoute
from gateway.field_discovery import FieldDiscoveryRoute
from gateway.health import HealthRoutes
from gateway.health_report import HealthReport
from gateway.http_spans import HttpSpans
from gateway.models import ModelRoutes
from gateway.openai_errors import OpenAIError
from gateway.openapi import OpenApiRoute
from gateway.quotas import Quotas
from gateway.routes import PUBLIC, UNMATCHED, RouteTable, unavailable
from gateway.settings import GatewaySettings
from services.runtime.agent_modes import CLIENT
from services.runtime.channels import open_channel
from services.runtime.principal import PRINCIPAL
from services.runtime.request_context import REQUEST_ID, new_request_id

log = logging.getLogger("gateway")
NO_OPTIMIZER = "The optimizer is not configured."


class GatewayApp:
    def __init__(self, settings: GatewaySettings):
        self._settings = settings
        self._keys = ApiKeys(settings.api_keys, settings.admin_keys, settings.key_file)
        self._quotas = Quotas(settings.redis_url)
        self._channels: list[grpc.aio.Channel] = []
        self._routes = RouteTable([])
        self._spans = HttpSpans()

    async def startup(self) -> None:
        settings = self._settings
        router_channel = open_channel(settings.router_addr, "router")
        # Connected now, so the first readiness check finds it READY.
        router_channel.get_state(try_to_connect=True)
        llm_channel = open_channel(settings.llm_gateway_addr, "llm_gateway")
        self._channels = [router_channel, llm_channel]
        router = router_pb2_grpc.RouterServiceStub(router_channel)
        addrs = {"router": settings.router_addr, "llm_gateway": settings.llm_gateway_addr}
        optimizer = None
        if settings.optimizer_addr:
            optimizer_channel = open_channel(settings.optimizer_addr, "optimizer")
            self._channels.append(optimizer_channel)
            optimizer = optimizer_pb2_grpc.OptimizerServiceStub(optimizer_channel)
            addrs["optimizer"] = settings.optimizer_addr
        report = HealthReport(router, optimizer, addrs)
        health = HealthRoutes(router, health_pb2_grpc.HealthStub(router_channel), report, router_channel)
        routes = [
            *ChatRoutes(router, self._quotas, settings.chat_timeout_s, settings.heartbeat_s).routes(),
            *CompletionRoutes(router, self._quotas, settings.chat_timeout_s, settings.heartbeat_s).routes(),
            *CreditRoutes(router, self._quotas).routes(),
            *FieldDiscoveryRoute(router, self._quotas).routes(),
            *ModelRoutes(llm_gateway_pb2_grpc.LlmGatewayServiceStub(llm_channel)).routes(),
            *EmbeddingRoute(llm_gateway_pb2_grpc.LlmGatewayServiceStub(llm_channel), self._quotas).routes(),
            *health.routes(),
            *ConsoleRoutes(report).routes(),
        ]
        if settings.audit_addr:
            audit_channel = open_channel(settings.audit_addr, "audit")
            self._channels.append(audit_channel)
            routes += AccessLogRoutes(audit_pb2_grpc.AuditServiceStub(audit_channel), router).routes()
        if settings.cache_addr:
            cache_channel = open_channel(settings.cache_addr, "cache")
            self._channels.append(cache_channel)
            routes += CacheAdminRoute(cache_pb2_grpc.CacheServiceStub(cache_channel)).routes()
        if optimizer is not None:
            routes += [*FeedbackRoute(optimizer).routes(), *AdminRoutes(optimizer).routes()]
        else:
            # Only the routes are read: each answers that the optimizer is not configured.
            absent = cast(optimizer_pb2_grpc.OptimizerServiceStub, None)
            routes += unavailable([*FeedbackRoute(absent).routes(), *AdminRoutes(absent).routes()], NO_OPTIMIZER)
        routes += OpenApiRoute(list(routes)).routes()
        self._routes = RouteTable(routes)

    async def shutdown(self) -> None:
        await self._quotas.close()
        for channel in self._channels:
            await channel.close()

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        exchange = Exchange(scope, receive, send, _request_id(scope))
        REQUEST_ID.set(exchange.request_id)
        span = self._spans.start(scope)
        route_template = UNMATCHED
        try:
            route, params = self._routes.match(exchange.method, exchange.path)
            route_template = route.template
            exchange.route = route.template.encode()
            if route.access != PUBLIC:
                exchange.key = self._keys.authorize(exchange, route.access)
                if route.agents_only and exchange.key.audience == CLIENT:
                    raise OpenAIError(
                        403, "This key serves a customer-facing chat and may not use this endpoint.",
                        code="insufficient_permissions",
                    )  # fmt: skip
                # Every call the request makes in the mesh says on whose
                # behalf: the key, and for a customer-facing key the
                # customer its verified token names.
                key = exchange.key
                PRINCIPAL.set(key.principal(bound_customer(exchange, key.id, key.token_key)))
            if route.access not in (PUBLIC, "chat"):  # chat counts once it knows the model
                exchange.headers.extend((await self._quotas.admit(exchange.key, route.access)).headers())
            await route.handler(exchange, **params)
        except OpenAIError as error:
            if exchange.status:
                raise
            if route_template == UNMATCHED:  # a 404 or 405: the path's route, if any, by its template
                route_template = self._routes.template_of(exchange.path)
                exchange.route = route_template.encode()
            await exchange.error(error)
        finally:
            self._finished(exchange, route_template)
            if span is not None:
                self._spans.end(span, exchange.method, route_template, exchange.status)

    def _finished(self, exchange: Exchange, route: str) -> None:
        """One access-log line and the HTTP metrics, by route, never by path
        (a path may carry what a client typed)."""
        elapsed = time.perf_counter() - exchange.started
        method = metrics.method_of(exchange.method)
        metrics.HTTP_REQUESTS.labels(route, method, str(exchange.status)).inc()
        metrics.HTTP_SECONDS.labels(route).observe(elapsed)
        log.info(
            "http",
            extra={
                "fields": {
                    "method": method,
                    "route": route,
                    "status": exchange.status,
                    "duration_ms": round(elapsed * 1000, 3),
                }
            },
        )

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _request_id(scope: dict[str, Any]) -> str:
    """The caller's `x-request-id` (Envoy sets one), else a new id."""
    value = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"")
    return value.decode("latin-1")[:128] if value else new_request_id()


def build_asgi_app(settings: GatewaySettings) -> GatewayApp:
    """The gateway as served."""
    return GatewayApp(settings)
