"""tilores_x_client.MeshClient against a real gRPC server over mutual TLS
on a free port, whose RouterService does as each test scripts: retries of
UNAVAILABLE before the first message and never after, deadlines, and the
mesh's own rich statuses turned into named exceptions with their field."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import pytest
from tilores_x.v1 import common_pb2, router_pb2, router_pb2_grpc
from tilores_x_client import (
    DeadlineExceeded,
    InvalidArgument,
    MeshClient,
    MeshCredentials,
    NotFound,
    RateLimited,
    RetryPolicy,
    Unavailable,
)

from deploy.certificates import MeshCertificates
from services.runtime import faults
from services.runtime.identity import MeshTls
from services.runtime.rich_status import fault_status

FAST = RetryPolicy(attempts=4, initial_backoff=0.01, max_backoff=0.05)

Script = Callable[[router_pb2.ChatRequest, grpc.aio.ServicerContext, int], AsyncIterator[router_pb2.ChatResponse]]


def delta(text: str) -> router_pb2.ChatResponse:
    return router_pb2.ChatResponse(delta=text)


FINISH = router_pb2.ChatResponse(
    finish=common_pb2.Finish(reason=common_pb2.FINISH_REASON_STOP, model="offline", provider="offline")
)
USAGE = router_pb2.ChatResponse(usage=common_pb2.Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5))


class ScriptedRouter(router_pb2_grpc.RouterServiceServicer):
    def __init__(self) -> None:
        self.chat_script: Script | None = None
        self.credit_failures: list[faults.Fault] = []
        self.calls = 0
        self.requests: list[router_pb2.ChatRequest] = []

    async def Chat(self, request, context):
        self.calls += 1
        self.requests.append(request)
        assert self.chat_script is not None
        async for message in self.chat_script(request, context, self.calls):
            yield message

    async def GetCustomerCredit(self, request, context):
        self.calls += 1
        if self.credit_failures:
            await context.abort_with_status(fault_status(self.credit_failures.pop(0)))
        report = {"assessment": {"status": "scored", "score": 705}}
        return router_pb2.GetCustomerCreditResponse(
            entity_id="e-1", customer_name="Edwina Hawthorne", lookup="email x", credit_json=json.dumps(report)
        )


@pytest.fixture
async def router(tmp_path: Path):
    certificates = MeshCertificates(tmp_path / "certs")
    served = certificates.issue("edge", "envoy")
    server = grpc.aio.server()
    servicer = ScriptedRouter()
    router_pb2_grpc.add_RouterServiceServicer_to_server(servicer, server)
    tls = MeshTls.from_files(str(served.cert_file), str(served.key_file), str(served.ca_file))
    port = server.add_secure_port("127.0.0.1:0", tls.server_credentials())
    await server.start()
    team = certificates.issue("client", "team")
    credentials = MeshCredentials.from_files(team.cert_file, team.key_file, team.ca_file)
    client = MeshClient(f"127.0.0.1:{port}", credentials=credentials, retry=FAST)
    yield servicer, client
    await client.close()
    await server.stop(None)


async def test_unavailable_before_the_first_message_is_retried_and_the_answer_streams(router):
    servicer, client = router

    async def script(request, context, call):
        if call < 3:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "no router replica")
        for piece in ("Edwina ", "Hawthorne ", "is active."):
            yield delta(piece)
        yield FINISH
        yield USAGE

    servicer.chat_script = script
    answer = client.chat("What is the status of edwina.hawthorne@example.com?")
    deltas = [piece async for piece in answer]
    assert deltas == ["Edwina ", "Hawthorne ", "is active."]
    assert answer.attempts == 3 and servicer.calls == 3
    result = answer.result
    assert result.text == "Edwina Hawthorne is active."
    assert (result.model, result.provider, result.finish_reason) == ("offline", "offline", "stop")
    assert result.usage is not None and result.usage.total_tokens == 5
    # Every attempt is the same answer: one completion id, which feedback names.
    assert {r.completion_id for r in servicer.requests} == {result.completion_id}
    assert result.completion_id.startswith("chatcmpl-")
    [message] = servicer.requests[0].messages
    assert message.role == common_pb2.ROLE_USER and message.content.startswith("What is the status")


async def test_unavailable_after_the_first_message_is_never_retried(router):
    servicer, client = router

    async def script(request, context, call):
        yield delta("Edwina ")
        await context.abort(grpc.StatusCode.UNAVAILABLE, "the router's host vanished")

    servicer.chat_script = script
    answer = client.chat("status?")
    seen = []
    with pytest.raises(Unavailable) as failed:
        async for piece in answer:
            seen.append(piece)
    assert seen == ["Edwina "] and servicer.calls == 1
    assert failed.value.code == grpc.StatusCode.UNAVAILABLE and "vanished" in failed.value.message


async def test_retries_stop_at_the_policys_attempts(router):
    servicer, client = router

    async def script(request, context, call):
        await context.abort(grpc.StatusCode.UNAVAILABLE, "down")
        yield FINISH  # never reached

    servicer.chat_script = script
    with pytest.raises(Unavailable):
        await client.chat("status?").collect()
    assert servicer.calls == FAST.attempts


async def test_retries_never_pass_the_deadline(router):
    servicer, client = router

    async def script(request, context, call):
        await context.abort(grpc.StatusCode.UNAVAILABLE, "down")
        yield FINISH

    servicer.chat_script = script
    client.retry = RetryPolicy(attempts=1000, initial_backoff=0.05, max_backoff=0.1)
    with pytest.raises((Unavailable, DeadlineExceeded)):
        await client.chat("status?", timeout=0.5).collect()
    assert servicer.calls < 1000


async def test_a_stream_past_its_deadline_is_deadline_exceeded(router):
    servicer, client = router

    async def script(request, context, call):
        yield delta("Edwina ")
        await asyncio.sleep(30)
        yield FINISH

    servicer.chat_script = script
    with pytest.raises(DeadlineExceeded):
        await client.chat("status?", timeout=0.5).collect()


async def test_a_failure_the_stream_reports_is_its_named_exception(router):
    servicer, client = router

    async def script(request, context, call):
        yield delta("Edwina ")
        yield router_pb2.ChatResponse(error=common_pb2.StreamError(code="RESOURCE_EXHAUSTED", message="token budget"))

    servicer.chat_script = script
    with pytest.raises(RateLimited) as failed:
        await client.chat("status?").collect()
    assert failed.value.message == "token budget" and servicer.calls == 1


async def test_a_stream_that_ends_without_its_finish_is_not_a_whole_answer(router):
    servicer, client = router

    async def script(request, context, call):
        yield delta("Edwina ")

    servicer.chat_script = script
    answer = client.chat("status?")
    with pytest.raises(Unavailable, match="ended before the answer did"):
        await answer.collect()
    with pytest.raises(RuntimeError):
        _ = answer.result


async def test_the_field_the_server_names_comes_out_on_the_exception(router):
    servicer, client = router

    async def script(request, context, call):
        await context.abort_with_status(fault_status(faults.InvalidArgument("messages: empty", field="messages")))
        yield FINISH

    servicer.chat_script = script
    with pytest.raises(InvalidArgument) as failed:
        await client.chat("status?").collect()
    assert (failed.value.code, failed.value.field, failed.value.message) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "messages",
        "messages: empty",
    )
    assert servicer.calls == 1


async def test_a_unary_call_is_retried_on_unavailable_and_returns_plain_values(router):
    servicer, client = router
    servicer.credit_failures = [faults.Unavailable("tilores_data is down"), faults.Unavailable("still down")]
    credit = await client.credit("edwina.hawthorne@example.com")
    assert servicer.calls == 3
    assert (credit.entity_id, credit.customer_name) == ("e-1", "Edwina Hawthorne")
    assert credit.report["assessment"] == {"status": "scored", "score": 705}


async def test_a_unary_call_carries_the_retry_hint_and_is_not_retried(router):
    servicer, client = router
    servicer.credit_failures = [faults.ResourceExhausted("customers per hour: 12", retry_after_s=42.5)]
    with pytest.raises(RateLimited) as failed:
        await client.credit("edwina.hawthorne@example.com")
    assert failed.value.retry_after == 42.5 and servicer.calls == 1


async def test_not_found_is_raised_as_it_is(router):
    servicer, client = router
    servicer.credit_failures = [faults.NotFound("no customer matches email nobody@example.com")]
    with pytest.raises(NotFound, match="no customer matches"):
        await client.credit("nobody@example.com")


async def test_a_conversation_goes_in_as_role_and_content(router):
    servicer, client = router

    async def script(request, context, call):
        yield FINISH

    servicer.chat_script = script
    conversation = [
        {"role": "user", "content": "What is the status of client id 2480135?"},
        {"role": "assistant", "content": "Active."},
        {"role": "user", "content": "And her last payment?"},
    ]
    await client.chat(conversation, model="gpt-4o-mini", conversation_id="c-1", temperature=0).collect()
    [request] = servicer.requests
    assert [m.role for m in request.messages] == [common_pb2.ROLE_USER, common_pb2.ROLE_ASSISTANT, common_pb2.ROLE_USER]
    assert (request.model, request.conversation_id, request.temperature) == ("gpt-4o-mini", "c-1", 0.0)
    assert request.HasField("temperature") and not request.HasField("max_tokens")
    with pytest.raises(InvalidArgument) as failed:
        client.chat([{"role": "robot", "content": "hi"}])
    assert failed.value.field == "messages[0].role"
    with pytest.raises(InvalidArgument):
        client.chat([])
