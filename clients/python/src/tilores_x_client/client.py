"""MeshClient: the mesh's gRPC API for another team's asyncio service.

One channel to the mesh's gRPC port (Envoy's :9090) with the caller's
client certificate; a deadline on every call; UNAVAILABLE before the first
message retried with backoff (RetryPolicy); failures raised as the named
exceptions of `errors`. The generated stubs stay at hand as `tilores_x.v1`
for whatever the methods here do not cover.

    async with MeshClient("localhost:9090", tls_dir="certs/agent-desk") as mesh:
        answer = mesh.chat("What is the status of edwina.hawthorne@example.com?")
        async for delta in answer:
            print(delta, end="")
        print(answer.result.model)
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from tilores_x.v1 import (
    common_pb2,
    optimizer_pb2,
    optimizer_pb2_grpc,
    router_pb2,
    router_pb2_grpc,
    tilores_data_pb2,
    tilores_data_pb2_grpc,
)

from tilores_x_client.chat import ChatStream
from tilores_x_client.credentials import CredentialsError, MeshCredentials
from tilores_x_client.errors import InvalidArgument, from_rpc_error
from tilores_x_client.retry import RetryPolicy

Reply = TypeVar("Reply")

ROLES = {
    "system": common_pb2.ROLE_SYSTEM,
    "user": common_pb2.ROLE_USER,
    "assistant": common_pb2.ROLE_ASSISTANT,
    "tool": common_pb2.ROLE_TOOL,
}

# Keepalive pings find a silent connection (a vanished host) in seconds
# rather than the minutes TCP takes; Envoy answers them.
CHANNEL_OPTIONS = (
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
)


@dataclass(frozen=True)
class CustomerCredit:
    """A customer's credit report, found by an identifier."""

    entity_id: str
    customer_name: str
    lookup: str  # how the customer was found, e.g. "email a@example.com"
    report: dict[str, Any]  # per bureau scores, utilization, late payments; the assessment


Message = Mapping[str, str] | common_pb2.ChatMessage


class MeshClient:
    """Calls the mesh. `deadline` bounds each unary call, `chat_deadline` a
    whole streamed answer (retries included); each method takes `timeout=`
    to set its own."""

    def __init__(
        self,
        address: str,
        *,
        credentials: MeshCredentials | None = None,
        tls_dir: str | os.PathLike[str] | None = None,
        deadline: float = 10.0,
        chat_deadline: float = 120.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        if (credentials is None) == (tls_dir is None):
            raise CredentialsError("give credentials= or tls_dir=, one of them")
        if deadline <= 0 or chat_deadline <= 0:
            raise ValueError("deadline, chat_deadline: seconds, more than 0")
        creds = MeshCredentials.from_dir(tls_dir) if tls_dir is not None else credentials
        assert creds is not None
        self.address = address
        self.deadline = deadline
        self.chat_deadline = chat_deadline
        self.retry = retry or RetryPolicy()
        self.channel = grpc.aio.secure_channel(address, creds.channel_credentials(), options=CHANNEL_OPTIONS)
        self.router = router_pb2_grpc.RouterServiceStub(self.channel)
        self.customers = tilores_data_pb2_grpc.TiloresDataServiceStub(self.channel)
        self.optimizer = optimizer_pb2_grpc.OptimizerServiceStub(self.channel)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> MeshClient:
        """TILORES_X_ADDR and the certificate settings of MeshCredentials.from_env."""
        env = os.environ if environ is None else environ
        address = env.get("TILORES_X_ADDR")
        if not address:
            raise CredentialsError("TILORES_X_ADDR: the mesh's gRPC address (host:port) is not set")
        return cls(address, credentials=MeshCredentials.from_env(env), **options)

    async def __aenter__(self) -> MeshClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self, grace: float | None = None) -> None:
        await self.channel.close(grace)

    # -- chat (scope: chat) ---------------------------------------------------
    def chat(
        self,
        messages: str | Sequence[Message],
        *,
        model: str = "offline",
        conversation_id: str = "",
        completion_id: str = "",
        temperature: float | None = None,
        max_tokens: int | None = None,
        timeout: float | None = None,
    ) -> ChatStream:
        """Ask; a question alone or the conversation so far (`{"role":
        "user", "content": ...}` each, the last one the question). The
        answer is grounded in the customer the conversation names. Its
        `completion_id` (made here unless given) is what feedback names."""
        request = router_pb2.ChatRequest(
            model=model,
            messages=_messages(messages),
            conversation_id=conversation_id,
            completion_id=completion_id or f"chatcmpl-{uuid.uuid4().hex[:24]}",
        )
        if temperature is not None:
            request.temperature = temperature
        if max_tokens is not None:
            request.max_tokens = max_tokens
        return ChatStream(
            lambda req, seconds: self.router.Chat(req, timeout=seconds),
            request,
            timeout or self.chat_deadline,
            self.retry,
        )

    async def credit(self, identifier: str, *, timeout: float | None = None) -> CustomerCredit:
        """The credit report of the one customer an e-mail, client id, phone
        number or contact id names (NotFound: nobody; MeshError
        FAILED_PRECONDITION: several)."""
        reply = await self._unary(
            self.router.GetCustomerCredit, router_pb2.GetCustomerCreditRequest(identifier=identifier), timeout
        )
        return CustomerCredit(reply.entity_id, reply.customer_name, reply.lookup, json.loads(reply.credit_json))

    async def find_customers(
        self, identifier: str = "", *, entity_ids: Sequence[str] = (), timeout: float | None = None
    ) -> list[router_pb2.NamedCustomer]:
        """Who an identifier names, or the names of entity ids (scope: audit.read)."""
        request = router_pb2.FindCustomersRequest(identifier=identifier, entity_ids=list(entity_ids))
        return list((await self._unary(self.router.FindCustomers, request, timeout)).customers)

    # -- customers (scope: customers.read) -------------------------------------
    async def search_customers(
        self, parameters: Mapping[str, str], *, timeout: float | None = None
    ) -> list[common_pb2.Entity]:
        """Entities by Tilores search parameters (`{"EMAIL": ...}`, CLIENT_ID, PHONE_NUMBER, ...)."""
        request = tilores_data_pb2.SearchEntitiesRequest(parameters=dict(parameters))
        return list((await self._unary(self.customers.SearchEntities, request, timeout)).entities)

    async def customer_360(
        self, entity_id: str, *, timeout: float | None = None
    ) -> tilores_data_pb2.GetCustomer360Response:
        """A customer's view by topic, every value with its record."""
        request = tilores_data_pb2.GetCustomer360Request(customer=tilores_data_pb2.CustomerRef(entity_id=entity_id))
        return await self._unary(self.customers.GetCustomer360, request, timeout)

    async def credit_report(
        self, entity_id: str, *, timeout: float | None = None
    ) -> tilores_data_pb2.GetCreditReportResponse:
        """A customer's credit report by entity id."""
        request = tilores_data_pb2.GetCreditReportRequest(customer=tilores_data_pb2.CustomerRef(entity_id=entity_id))
        return await self._unary(self.customers.GetCreditReport, request, timeout)

    # -- optimizer --------------------------------------------------------------
    async def feedback(
        self, completion_id: str, *, thumbs_up: bool, comment: str = "", timeout: float | None = None
    ) -> None:
        """A rating of an answer by its completion id (scope: outcomes.write)."""
        request = optimizer_pb2.RecordFeedbackRequest(completion_id=completion_id, thumbs_up=thumbs_up, comment=comment)
        await self._unary(self.optimizer.RecordFeedback, request, timeout)

    async def prompts(self, *, timeout: float | None = None) -> list[optimizer_pb2.PromptSummary]:
        """Every prompt with its active version (scope: prompts.read)."""
        return list(
            (await self._unary(self.optimizer.ListPrompts, optimizer_pb2.ListPromptsRequest(), timeout)).prompts
        )

    async def prompt(
        self, name: str, *, version: int = 0, timeout: float | None = None
    ) -> optimizer_pb2.GetPromptResponse:
        """A prompt's active version, or the one named (scope: prompts.read)."""
        request = optimizer_pb2.GetPromptRequest(name=name, version=version)
        return await self._unary(self.optimizer.GetPrompt, request, timeout)

    async def quality(self, *, timeout: float | None = None) -> optimizer_pb2.GetQualityResponse:
        """Rolling answer quality per model, prompt version and category (scope: prompts.read)."""
        return await self._unary(self.optimizer.GetQuality, optimizer_pb2.GetQualityRequest(), timeout)

    # -- one unary call -----------------------------------------------------------
    async def _unary(self, method: Callable[..., Awaitable[Reply]], request: Any, timeout: float | None) -> Reply:
        loop = asyncio.get_running_loop()
        ends_at = loop.time() + (timeout or self.deadline)
        attempt = 0
        while True:
            attempt += 1
            try:
                return await method(request, timeout=max(ends_at - loop.time(), 0.001))
            except grpc.aio.AioRpcError as error:
                wait = self.retry.backoff(attempt)
                if self.retry.retries(error.code(), attempt, answered=False) and loop.time() + wait < ends_at:
                    await asyncio.sleep(wait)
                    continue
                raise from_rpc_error(error) from None


def _messages(messages: str | Sequence[Message]) -> list[common_pb2.ChatMessage]:
    if isinstance(messages, str):
        return [common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content=messages)]
    out = []
    for index, message in enumerate(messages):
        if isinstance(message, common_pb2.ChatMessage):
            out.append(message)
            continue
        role = ROLES.get(str(message.get("role", "")))
        if role is None:
            field = f"messages[{index}].role"
            raise InvalidArgument(grpc.StatusCode.INVALID_ARGUMENT, f"{field}: one of {', '.join(ROLES)}", field)
        out.append(common_pb2.ChatMessage(role=role, content=str(message.get("content", ""))))
    if not out:
        raise InvalidArgument(grpc.StatusCode.INVALID_ARGUMENT, "messages: at least one", "messages")
    return out
