"""RouterService servicer: translates each request once into a Turn
(`services/router/turn.py`) and each of its events once into a stream
message. A fault before the first event is the call's status; after it, an
error event ends the stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence

import grpc
import orjson
from tilores_x.v1 import common_pb2, router_pb2, router_pb2_grpc

from services.router.audience import Audiences
from services.router.clients import RouterClients
from services.router.credit_lookup import CreditLookup
from services.router.customer_directory import CustomerDirectory
from services.router.ports import CustomerDataUnavailable, NoSuchCustomer, UnknownCategory
from services.router.tools import ToolRunner
from services.router.turn import Turn, TurnRequest
from services.runtime.agent_modes import AGENT, MODE_CATEGORIES, PROMPT_NAME
from services.runtime.conversation import Finish, StreamError, Tool, ToolCallAssembly, ToolCallDelta, Usage
from services.runtime.conversation_wire import (
    AGENT_MODE_OF,
    finish_proto,
    first_set,
    json_object_field,
    messages_of,
    response_format_of,
    stream_message,
    tool_call_proto,
    tool_choice_of,
    usage_proto,
)
from services.runtime.faults import Fault, InvalidArgument, NotFound, PermissionDenied, Unavailable
from services.runtime.field_policy import FieldPolicy
from services.runtime.limits import DEFAULT_BATCH_CONCURRENCY, MAX_BATCH, MAX_BATCH_CONCURRENCY
from services.runtime.metrics import SNAPSHOTS
from services.runtime.outbox import outbox_metrics
from services.runtime.principal import PRINCIPAL, PURPOSE, Principal
from services.runtime.request_context import ANSWERING_MODEL_HEADER, PROVIDER_TTFT_HEADER

MAX_IDENTIFIER_CHARS = 256


class RouterService(router_pb2_grpc.RouterServiceServicer):
    def __init__(
        self,
        clients: RouterClients,
        default_timeout_s: float,
        policy: FieldPolicy | None = None,
        tools: bool = True,
        audiences: Audiences | None = None,
    ):
        self._clients = clients
        self._default_timeout_s = default_timeout_s
        self._policy = policy or FieldPolicy.bundled()
        self._tools = ToolRunner(clients.customers, self._policy, clients.access) if tools else None
        self._credit = CreditLookup(clients.customers, clients.access)
        self._directory = CustomerDirectory(clients.customers, clients.access)
        self._audiences = audiences or Audiences.bundled()

    def turn(self, request: router_pb2.ChatRequest, remaining: Callable[[], float]) -> Turn:
        """The turn of one request; the customers it looks at are on record
        as looked at for its completion (this call's context, or a batch
        item's task)."""
        if request.completion_id:
            PURPOSE.set(request.completion_id)
        return Turn(
            turn_request(request, PRINCIPAL.get()), self._clients, self._policy, self._tools, remaining, self._audiences
        )

    def _remaining(self, context: grpc.aio.ServicerContext) -> Callable[[], float]:
        def remaining() -> float:
            left = context.time_remaining()
            return self._default_timeout_s if left is None else max(left, 0.001)

        return remaining

    async def Chat(
        self, request: router_pb2.ChatRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[router_pb2.ChatResponse]:
        turn = self.turn(request, self._remaining(context))
        first = True
        async for event in turn.events():
            if first:
                first = False
                metadata = [(PROVIDER_TTFT_HEADER, f"{turn.provider_ms:.2f}")]
                if turn.model:
                    metadata.append((ANSWERING_MODEL_HEADER, turn.model))
                await context.send_initial_metadata(tuple(metadata))
            yield stream_message(event, router_pb2.ChatResponse)

    async def ChatBatch(
        self, request: router_pb2.ChatBatchRequest, context: grpc.aio.ServicerContext
    ) -> router_pb2.ChatBatchResponse:
        if not request.requests:
            raise InvalidArgument("requests must not be empty", field="requests")
        if len(request.requests) > MAX_BATCH:
            raise InvalidArgument(
                f"at most {MAX_BATCH} requests per batch, got {len(request.requests)}", field="requests"
            )
        if not 0 <= request.concurrency <= MAX_BATCH_CONCURRENCY:
            raise InvalidArgument(f"concurrency must be 0..{MAX_BATCH_CONCURRENCY}", field="concurrency")
        gate = asyncio.Semaphore(request.concurrency or DEFAULT_BATCH_CONCURRENCY)
        remaining = self._remaining(context)

        async def one(n: int, turn: router_pb2.ChatRequest) -> router_pb2.ChatBatchItem:
            async with gate:
                try:
                    return await _batch_item(self.turn(turn, remaining))
                except Fault as fault:
                    field = f"requests[{n}].{fault.field}" if fault.field else ""
                    return router_pb2.ChatBatchItem(
                        error=router_pb2.ChatBatchError(code=fault.code, message=fault.message, field=field)
                    )

        items = await asyncio.gather(*(one(n, turn) for n, turn in enumerate(request.requests)))
        return router_pb2.ChatBatchResponse(items=items)

    async def GetCustomerCredit(
        self, request: router_pb2.GetCustomerCreditRequest, context: grpc.aio.ServicerContext
    ) -> router_pb2.GetCustomerCreditResponse:
        if len(request.identifier) > MAX_IDENTIFIER_CHARS:
            raise InvalidArgument(f"identifier: at most {MAX_IDENTIFIER_CHARS} characters", field="identifier")
        principal = PRINCIPAL.get() or Principal()
        if principal.serves_customer:
            raise PermissionDenied(
                "this caller serves a customer-facing chat and may not look customers up by identifier",
                field="identifier",
            )
        try:
            found = await self._credit.credit(request.identifier, principal.tenant, self._remaining(context)())
        except CustomerDataUnavailable:
            raise Unavailable("customer data is unavailable right now") from None
        except NoSuchCustomer:
            raise NotFound("the customer's records are gone", field="identifier") from None
        return router_pb2.GetCustomerCreditResponse(
            entity_id=found.entity_id,
            customer_name=found.customer_name,
            lookup=found.lookup,
            credit_json=orjson.dumps(found.credit).decode(),
        )

    async def FindCustomers(
        self, request: router_pb2.FindCustomersRequest, context: grpc.aio.ServicerContext
    ) -> router_pb2.FindCustomersResponse:
        if len(request.identifier) > MAX_IDENTIFIER_CHARS:
            raise InvalidArgument(f"identifier: at most {MAX_IDENTIFIER_CHARS} characters", field="identifier")
        if any(len(e) > MAX_IDENTIFIER_CHARS for e in request.entity_ids):
            raise InvalidArgument(f"entity_ids: each at most {MAX_IDENTIFIER_CHARS} characters", field="entity_ids")
        principal = PRINCIPAL.get() or Principal()
        if principal.serves_customer:
            raise PermissionDenied(
                "this caller serves a customer-facing chat and may not look customers up", field="identifier"
            )
        tenant, timeout_s = principal.tenant, self._remaining(context)()
        try:
            if request.identifier:
                named = await self._directory.find(request.identifier, tenant, timeout_s)
            else:
                named = await self._directory.names(list(request.entity_ids), tenant, timeout_s)
        except CustomerDataUnavailable:
            raise Unavailable("customer data is unavailable right now") from None
        return router_pb2.FindCustomersResponse(
            customers=[router_pb2.NamedCustomer(entity_id=n.entity_id, name=n.name or None) for n in named]
        )

    async def DiscoverFields(
        self, request: router_pb2.DiscoverFieldsRequest, context: grpc.aio.ServicerContext
    ) -> router_pb2.DiscoverFieldsResponse:
        try:
            fields = await self._clients.customers.field_infos(request.category, self._remaining(context)())
        except UnknownCategory as error:
            raise InvalidArgument(str(error), field="category") from None
        except CustomerDataUnavailable:
            raise Unavailable("customer data is unavailable right now") from None
        return router_pb2.DiscoverFieldsResponse(fields=fields)

    async def GetToolStats(
        self, request: router_pb2.GetToolStatsRequest, context: grpc.aio.ServicerContext
    ) -> router_pb2.GetToolStatsResponse:
        reply = router_pb2.GetToolStatsResponse()
        for name, counters in sorted((self._tools.counters if self._tools else {}).items()):
            reply.tools.add(name=name, calls=counters.calls, failures=counters.failures, latency_p50_ms=counters.p50())
        return reply

    async def GetHealthDetail(
        self, request: router_pb2.GetHealthDetailRequest, context: grpc.aio.ServicerContext
    ) -> router_pb2.GetHealthDetailResponse:
        return await self._clients.health.detail()


async def _batch_item(turn: Turn) -> router_pb2.ChatBatchItem:
    """A whole turn as one batch item: its answer, or the error that ended it."""
    answer = router_pb2.ChatAnswer()
    text: list[str] = []
    calls = ToolCallAssembly()
    async for event in turn.events():
        if type(event) is str:
            text.append(event)
        elif isinstance(event, ToolCallDelta):
            calls.add(event)
        elif isinstance(event, Finish):
            answer.finish.CopyFrom(finish_proto(event))
        elif isinstance(event, Usage):
            answer.usage.CopyFrom(usage_proto(event))
        elif isinstance(event, StreamError):
            return router_pb2.ChatBatchItem(error=router_pb2.ChatBatchError(code=event.code, message=event.message))
    answer.text = "".join(text)
    answer.tool_calls.extend(tool_call_proto(c) for c in calls.calls())
    return router_pb2.ChatBatchItem(answer=answer)


def turn_request(request: router_pb2.ChatRequest, principal: Principal | None = None) -> TurnRequest:
    """The ChatRequest as a turn speaks it, checked field by field, on
    behalf of the verified principal (never of a field the caller set)."""
    principal = principal or Principal()
    if principal.key_id and "chat" not in principal.scopes:
        raise PermissionDenied(f"the key {principal.key_id} does not hold the chat scope")
    if not request.model:
        raise InvalidArgument("model is required", field="model")
    messages = messages_of(request.messages)
    options = request.options
    mode = AGENT_MODE_OF.get(request.agent_mode, "")
    if principal.serves_customer and mode == AGENT:
        raise PermissionDenied(
            "agent_mode: this caller serves customers and may only use the client mode", field="agent_mode"
        )
    if request.category and request.category not in MODE_CATEGORIES:
        raise InvalidArgument(f"category must be one of {', '.join(MODE_CATEGORIES)}", field="category")
    if request.prompt_id and not PROMPT_NAME.fullmatch(request.prompt_id):
        raise InvalidArgument("prompt_id: letters, digits, '-' and '_' only, at most 64", field="prompt_id")
    if request.prompt_version < 0:
        raise InvalidArgument("prompt_version must not be negative", field="prompt_version")
    return TurnRequest(
        model=request.model,
        messages=messages,
        tenant=principal.tenant,
        conversation_id=request.conversation_id,
        completion_id=request.completion_id,
        temperature=first_set("temperature", request, options),
        max_tokens=first_set("max_tokens", request, options),
        top_p=options.top_p if options.HasField("top_p") else None,
        stop=tuple(options.stop),
        seed=options.seed if options.HasField("seed") else None,
        response_format=response_format_of(options.response_format, "options.response_format"),
        tools=tuple(_tool(n, t) for n, t in enumerate(request.tools)),
        tool_choice=tool_choice_of(request.tool_choice),
        no_fallback=request.no_fallback,
        cache_response=request.cache_response,
        evaluation_run_id=request.evaluation.run_id,
        prompt_version=request.evaluation.prompt_version or request.prompt_version,
        prompt_id=request.prompt_id,
        mode=mode,
        category=request.category,
        customer=principal.customer if principal.serves_customer else "",
    )


def _tool(n: int, tool: common_pb2.Tool) -> Tool:
    field = f"tools[{n}].parameters_json"
    return Tool(
        tool.name, tool.description, json_object_field(tool.parameters_json, field) if tool.parameters_json else None
    )


class RouterComponent:
    def __init__(
        self,
        clients: RouterClients,
        default_timeout_s: float,
        policy: FieldPolicy | None = None,
        audiences: Audiences | None = None,
    ):
        self.clients = clients
        self.default_timeout_s = default_timeout_s
        self.policy = policy
        self.audiences = audiences
        self._metrics = outbox_metrics(clients.outcomes.outbox, "router_outcomes", "Turn outcomes")

    def register(self, server: grpc.aio.Server) -> Sequence[str]:
        router_pb2_grpc.add_RouterServiceServicer_to_server(
            RouterService(self.clients, self.default_timeout_s, self.policy, audiences=self.audiences), server
        )
        SNAPSHOTS.add(self._metrics)
        return [router_pb2.DESCRIPTOR.services_by_name["RouterService"].full_name]

    async def close(self) -> None:
        SNAPSHOTS.remove(self._metrics)
        await self.clients.close()
