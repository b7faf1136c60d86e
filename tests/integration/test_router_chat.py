"""A chat turn through real grpc.aio servers: router -> cache / tilores_data /
optimizer -> llm_gateway (offline provider)."""

import asyncio
import logging

import grpc
import orjson
import pytest
from google.protobuf.struct_pb2 import Struct
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tilores_x.v1 import (
    cache_pb2,
    cache_pb2_grpc,
    common_pb2,
    llm_gateway_pb2,
    router_pb2,
    router_pb2_grpc,
    tilores_data_pb2,
    tilores_data_pb2_grpc,
)

from tests.emulators.base import Script
from tests.integration.conftest import running_mesh, stop_mesh
from tests.integration.grpc_errors import field_violations


def chat_request(question: str, model: str = "offline", **kwargs) -> router_pb2.ChatRequest:
    return router_pb2.ChatRequest(
        model=model, messages=[common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content=question)], **kwargs
    )


async def collect(stub, request, **kwargs) -> tuple[str, list]:
    events = [event async for event in stub.Chat(request, timeout=10, **kwargs)]
    text = "".join(e.delta for e in events if e.WhichOneof("event") == "delta")
    return text, events


async def test_answer_carries_the_customers_facts(mesh):
    stub = router_pb2_grpc.RouterServiceStub(mesh.channel("router"))
    text, events = await collect(
        stub, chat_request("What is the status and credit score of edwina.hawthorne@example.com?")
    )
    assert "Edwina Hawthorne" in text
    assert "Account status: Active" in text
    assert "TransUnion credit score" in text and "712" in text
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[-2:] == ["finish", "usage"] and set(kinds[:-2]) == {"delta"}
    assert events[-1].usage.completion_tokens == len(text.split())
    assert events[-2].finish.reason == common_pb2.FINISH_REASON_STOP


async def test_another_customer_found_by_client_id(mesh):
    customer = mesh.customers[17]
    contact = customer.records[0]
    stub = router_pb2_grpc.RouterServiceStub(mesh.channel("router"))
    text, _ = await collect(stub, chat_request(f"what is the account status of client id {contact['CLIENT_ID']}?"))
    assert f"{contact['FIRST_NAME']} {contact['LAST_NAME']}" in text
    assert f"Account status: {contact['STATUS']}" in text


async def test_lookup_is_cached_for_the_next_turn(mesh):
    stub = router_pb2_grpc.RouterServiceStub(mesh.channel("router"))
    await collect(stub, chat_request("status of edwina.hawthorne@example.com"))
    cache = cache_pb2_grpc.CacheServiceStub(mesh.channel("cache"))
    for _ in range(50):
        cached = await cache.Get(
            cache_pb2.GetRequest(namespace="customer", key="search:EMAIL=edwina.hawthorne@example.com")
        )
        if cached.found:
            break
        await asyncio.sleep(0.02)
    entities = tilores_data_pb2.SearchEntitiesResponse.FromString(cached.value).entities
    assert [e.id for e in entities] == [mesh.customers[0].entity_id]
    # Served from the cache even with tilores_data gone.
    await mesh.servers["tilores_data"].server.stop(0)
    text, _ = await collect(stub, chat_request("and the credit score of edwina.hawthorne@example.com?"))
    assert "712" in text


async def test_near_cache_answers_with_cache_and_tilores_down(tmp_path):
    async with running_mesh(tmp_path, near_cache_ttl_s=30.0) as (mesh, _):
        stub = router_pb2_grpc.RouterServiceStub(mesh.channel("router"))
        await collect(stub, chat_request("status of client id 2480135"))
        for name in ("tilores_data", "cache"):
            await mesh.servers[name].server.stop(0)
        text, _ = await collect(stub, chat_request("and the credit score of client id 2480135?"))
        assert "712" in text


async def test_unknown_customer_is_not_invented(mesh):
    stub = router_pb2_grpc.RouterServiceStub(mesh.channel("router"))
    text, _ = await collect(stub, chat_request("What is the credit score of nobody.here@example.com?"))
    assert "no customer matches email nobody.here@example.com" in text
    assert "credit score:" not in text.lower()


async def test_tilores_down_says_data_is_unavailable(mesh):
    await mesh.servers["tilores_data"].server.stop(0)
    stub = router_pb2_grpc.RouterServiceStub(mesh.channel("router"))
    text, _ = await collect(stub, chat_request("credit score of edwina.hawthorne@example.com?"))
    assert "customer data is unavailable right now" in text
    assert "712" not in text


async def test_unknown_model_is_not_found_naming_the_field(mesh):
    stub = router_pb2_grpc.RouterServiceStub(mesh.channel("router"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await collect(stub, chat_request("hi", model="gpt-9"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "gpt-9" in caught.value.details()
    assert field_violations(caught.value) == ["model"]


async def test_bad_requests_name_the_field(mesh):
    stub = router_pb2_grpc.RouterServiceStub(mesh.channel("router"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await collect(stub, router_pb2.ChatRequest(model="offline"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == ["messages"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await collect(stub, router_pb2.ChatRequest(model="offline", messages=[common_pb2.ChatMessage(content="x")]))
    assert field_violations(caught.value) == ["messages[0].role"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await collect(stub, chat_request("hi", temperature=5))
    assert field_violations(caught.value) == ["temperature"]


async def test_every_service_serves_health_and_reflection(mesh):
    for name in mesh.servers:
        health = health_pb2_grpc.HealthStub(mesh.channel(name))
        reply = await health.Check(health_pb2.HealthCheckRequest())
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, name


async def test_client_cancel_reaches_the_model_stream(slow_mesh, caplog):
    caplog.set_level(logging.INFO)
    stub = router_pb2_grpc.RouterServiceStub(slow_mesh.channel("router"))
    call = stub.Chat(chat_request("status of edwina.hawthorne@example.com"), timeout=10)
    first = await call.read()
    assert first.WhichOneof("event") == "delta"
    call.cancel()
    for _ in range(100):
        generate = [
            r.fields for r in caplog.records if getattr(r, "fields", {}).get("method", "").endswith("/Generate")
        ]
        if generate:
            break
        await asyncio.sleep(0.02)
    assert generate and generate[0]["code"] == "CANCELLED"
    assert any(r.getMessage() == "generate.cancelled" for r in caplog.records)


async def test_graceful_shutdown_lets_the_stream_finish(slow_mesh):
    stub = router_pb2_grpc.RouterServiceStub(slow_mesh.channel("router"))
    call = stub.Chat(chat_request("status of edwina.hawthorne@example.com"), timeout=20)
    events = [await call.read()]
    llm = slow_mesh.servers["llm_gateway"]
    stopping = asyncio.ensure_future(llm.stop(grace_s=10))
    health = health_pb2_grpc.HealthStub(slow_mesh.channel("llm_gateway"))
    await asyncio.sleep(0.05)
    while (event := await call.read()) is not grpc.aio.EOF:
        events.append(event)
    await stopping
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[-2:] == ["finish", "usage"]
    assert "Edwina Hawthorne" in "".join(e.delta for e in events)
    with pytest.raises(grpc.aio.AioRpcError):
        await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
    await stop_mesh(slow_mesh)


async def test_router_health_detail_shows_an_open_breaker(tmp_path):
    async with running_mesh(tmp_path, Script(status=500), breaker_threshold=1, retries=0) as (mesh, _):
        stub = router_pb2_grpc.RouterServiceStub(mesh.channel("router"))
        text, events = await collect(stub, chat_request("status of client id 2480135", model="gpt-4o-mini"))
        # gpt-4o-mini failed; its chain ends in the offline model, which says what it is.
        assert text.startswith("Offline answer") and events[-2].finish.model == "offline"
        detail = await stub.GetHealthDetail(router_pb2.GetHealthDetailRequest())
        assert {p.name: p.status for p in detail.peers} == {
            n: "SERVING" for n in ("cache", "llm_gateway", "optimizer", "tilores_data")
        }
        providers_status = {p.provider: p for p in detail.providers}
        assert providers_status["openai"].breaker == llm_gateway_pb2.BREAKER_STATE_OPEN
        assert providers_status["openai"].failures_before_first_token == 1
        assert providers_status["offline"].breaker == llm_gateway_pb2.BREAKER_STATE_CLOSED
        assert not providers_status["anthropic"].configured


async def test_a_name_finds_the_customer(mesh):
    stub = router_pb2_grpc.RouterServiceStub(mesh.channel("router"))
    text, _ = await collect(stub, chat_request("What is the account status of Edwina Hawthorne?"))
    assert "Edwina Hawthorne" in text and "Active" in text


async def test_several_matches_list_the_candidates_and_ask(mesh):
    # A second Edwina Hawthorne: same name, nothing else in common, so a
    # separate customer.
    namesake = Struct()
    namesake.update(
        {"id": "003NAMESAKE0000001", "SOURCE": "Contact", "FIRST_NAME": "Edwina", "LAST_NAME": "Hawthorne",
         "EMAIL": "e.hawthorne@example.org", "CLIENT_ID": "9990001", "STATUS": "Cancelled"}
    )  # fmt: skip
    tilores = tilores_data_pb2_grpc.TiloresDataServiceStub(mesh.channel("tilores_data"))
    await tilores.SubmitRecords(tilores_data_pb2.SubmitRecordsRequest(records=[namesake]))
    stub = router_pb2_grpc.RouterServiceStub(mesh.channel("router"))
    text, _ = await collect(stub, chat_request("What is the status of Edwina Hawthorne?"))
    assert "several customers match" in text and "Which one do you mean?" in text
    assert "client id 2480135" in text and "client id 9990001" in text
    # Naming which one settles it.
    text, _ = await collect(stub, chat_request("The one with client id 9990001: what is her status?"))
    assert "Cancelled" in text


async def test_concurrent_turns_about_one_uncached_customer_make_one_lookup(tmp_path):
    async with running_mesh(tmp_path, near_cache_ttl_s=30.0) as (mesh, _):
        stub = router_pb2_grpc.RouterServiceStub(mesh.channel("router"))
        customer = mesh.customers[5]
        question = f"status of client id {customer.records[0]['CLIENT_ID']}"
        answers = await asyncio.gather(*(collect(stub, chat_request(question)) for _ in range(20)))
        assert all(customer.records[0]["FIRST_NAME"] in text for text, _ in answers)
        customers = mesh.servers["router"].component.clients.customers
        assert customers.tilores_calls == 3  # one search, one 360 view, one credit report for all 20 turns


async def test_personal_data_reaches_a_cloud_model_masked(tmp_path):
    async with running_mesh(tmp_path, Script(text="Here is what is on file.")) as (mesh, emulator):
        stub = router_pb2_grpc.RouterServiceStub(mesh.channel("router"))
        text, _ = await collect(
            stub, chat_request("When was Edwina Hawthorne born? client id 2480135", model="gpt-4o-mini")
        )
        assert text == "Here is what is on file."
        system = emulator.requests[-1]["messages"][0]["content"]
        assert "Date of birth: [withheld: date of birth]" in system
        assert "1984-06-12" not in system
        assert "Account status: Active" in system and "712" in system  # the rest is there


async def test_a_bare_ten_digit_number_is_named_to_the_model_by_what_it_matched(tmp_path):
    async with running_mesh(tmp_path, Script(text="On file.")) as (mesh, emulator):
        stub = router_pb2_grpc.RouterServiceStub(mesh.channel("router"))
        for question, lookup in (
            ("What is the status of 3125550142?", "lookup by phone +13125550142"),
            ("What is the status of (312) 555-0142?", "lookup by phone +13125550142"),
            ("What is the status of 2480135?", "lookup by client id 2480135"),
        ):
            text, _ = await collect(stub, chat_request(question, model="gpt-4o-mini"))
            assert text == "On file."
            system = emulator.requests[-1]["messages"][0]["content"]
            assert lookup in system and "Edwina" in system, (question, system[:300])


async def test_the_offline_model_may_see_what_the_policy_allows(mesh):
    stub = router_pb2_grpc.RouterServiceStub(mesh.channel("router"))
    text, _ = await collect(stub, chat_request("What is the birth date of client id 2480135?"))
    assert "1984-06-12" in text


async def test_the_model_calls_the_routers_data_tools(tmp_path):
    async with running_mesh(tmp_path, Script(text="Her lowest latest score is 698.")) as (mesh, emulator):
        demo = mesh.customers[0]
        emulator.queue = [
            Script(text="", tool_calls=[("call_1", "search_customer", '{"query": "Edwina Hawthorne"}')]),
            Script(
                text="",
                tool_calls=[
                    ("call_2", "get_credit_report", orjson.dumps({"entity_id": demo.entity_id}).decode()),
                    ("call_3", "get_customer_360", orjson.dumps({"entity_id": demo.entity_id}).decode()),
                ],
            ),
        ]
        stub = router_pb2_grpc.RouterServiceStub(mesh.channel("router"))
        text, events = await collect(stub, chat_request("How is her credit doing?", model="gpt-4o-mini"))
        assert text == "Her lowest latest score is 698."
        assert [e.WhichOneof("event") for e in events][-2:] == ["finish", "usage"]
        assert events[-2].finish.reason == common_pb2.FINISH_REASON_STOP
        assert not any(e.WhichOneof("event") == "tool_call" for e in events)  # the router's own business
        first, second, third = emulator.requests
        assert {t["function"]["name"] for t in first["tools"]} == {
            "search_customer", "get_customer_360", "get_credit_report", "get_relationships", "list_fields",
        }  # fmt: skip
        found = orjson.loads(second["messages"][-1]["content"])
        assert found["customers"][0]["entity_id"] == demo.entity_id
        results = {m["tool_call_id"]: orjson.loads(m["content"]) for m in third["messages"] if m["role"] == "tool"}
        latest = {b["bureau"]: b["scores"][-1]["value"] for b in results["call_2"]["bureaus"]}
        assert latest == {"Equifax": 705, "Experian": 698, "TransUnion": 712}
        identity = {f["label"]: f["value"] for f in results["call_3"]["sections"]["identity"]}
        assert identity["Date of birth"] == "[withheld: date of birth]"  # the policy holds in tool results too
        stats = {t.name: t for t in (await stub.GetToolStats(router_pb2.GetToolStatsRequest())).tools}
        assert (stats["search_customer"].calls, stats["get_credit_report"].calls) == (1, 1)
        assert stats["get_credit_report"].failures == 0 and stats["list_fields"].calls == 0


async def test_tool_rounds_are_bounded_and_failures_go_back_to_the_model(tmp_path):
    async with running_mesh(tmp_path, Script(text="I could not find that customer.")) as (mesh, emulator):
        looping = Script(text="", tool_calls=[("call_x", "get_customer_360", '{"entity_id": "no-such-entity"}')])
        emulator.queue = [looping, looping, looping]  # a call in every round that offers tools
        stub = router_pb2_grpc.RouterServiceStub(mesh.channel("router"))
        text, _ = await collect(stub, chat_request("Tell me about entity no-such-entity", model="gpt-4o-mini"))
        assert len(emulator.requests) == 4  # three rounds with tools, then one that must answer
        assert "tools" not in emulator.requests[-1]
        assert orjson.loads(emulator.requests[1]["messages"][-1]["content"]) == {"error": "no such customer"}
        stats = {t.name: t for t in (await stub.GetToolStats(router_pb2.GetToolStatsRequest())).tools}
        assert (stats["get_customer_360"].calls, stats["get_customer_360"].failures) == (3, 3)
        assert text == "I could not find that customer."  # the last round answered in words


async def test_a_deterministic_answer_is_replayed_from_the_response_cache(tmp_path):
    async with running_mesh(tmp_path, Script(text="Edwina's account is Active.")) as (mesh, emulator):
        stub = router_pb2_grpc.RouterServiceStub(mesh.channel("router"))
        question = "What is the status of client id 2480135?"
        first, first_events = await collect(stub, chat_request(question, model="gpt-4o-mini", temperature=0))
        await asyncio.sleep(0.2)  # the answer is stored off the hot path
        second, second_events = await collect(stub, chat_request(question, model="gpt-4o-mini", temperature=0))
        assert first == second == "Edwina's account is Active."
        assert len(emulator.requests) == 1  # the second came from the cache
        assert sum(e.WhichOneof("event") == "delta" for e in second_events) > 1  # replayed as a stream
        assert [e.WhichOneof("event") for e in second_events][-2:] == ["finish", "usage"]
        assert second_events[-1].usage == first_events[-1].usage
        # Another tenant, or a request that is not deterministic, asks the model.
        other = (("x-mesh-principal", "key=k-2;tenant=other;scopes=chat"),)
        await collect(stub, chat_request(question, model="gpt-4o-mini", temperature=0), metadata=other)
        await collect(stub, chat_request(question, model="gpt-4o-mini", temperature=0.7))
        assert len(emulator.requests) == 3
        # The explicit opt-in replays too.
        await collect(stub, chat_request(question, model="gpt-4o-mini", cache_response=True))
        await asyncio.sleep(0.2)
        await collect(stub, chat_request(question, model="gpt-4o-mini", cache_response=True))
        assert len(emulator.requests) == 4


async def test_chat_batch_answers_each_turn_and_reports_failures_in_place(mesh):
    stub = router_pb2_grpc.RouterServiceStub(mesh.channel("router"))
    turns = [chat_request(f"status of client id {c.records[0]['CLIENT_ID']}") for c in mesh.customers[:4]]
    turns.insert(2, router_pb2.ChatRequest(model="offline"))  # no messages
    reply = await stub.ChatBatch(router_pb2.ChatBatchRequest(requests=turns, concurrency=2))
    assert len(reply.items) == 5
    bad = reply.items[2]
    assert bad.WhichOneof("outcome") == "error"
    assert (bad.error.code, bad.error.field) == ("INVALID_ARGUMENT", "requests[2].messages")
    answered = [item for n, item in enumerate(reply.items) if n != 2]
    for item, customer in zip(answered, mesh.customers[:4], strict=True):
        assert customer.records[0]["FIRST_NAME"] in item.answer.text
        assert item.answer.finish.model == "offline" and item.answer.usage.total_tokens > 0
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ChatBatch(router_pb2.ChatBatchRequest(requests=[turns[0]] * 101))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and field_violations(caught.value) == ["requests"]


async def test_every_answer_is_scored_and_recorded_for_the_optimizer(mesh):
    stub = router_pb2_grpc.RouterServiceStub(mesh.channel("router"))
    await collect(
        stub,
        chat_request("What is the status and credit score of client id 2480135?", completion_id="chatcmpl-scored1"),
    )
    storage = mesh.servers["optimizer"].component.storage
    for _ in range(50):
        rows = storage.query(
            "SELECT prompt, version, score, category, error, tokens FROM outcomes WHERE completion_id = :id",
            id="chatcmpl-scored1",
        )
        if rows:
            break
        await asyncio.sleep(0.05)
    [(prompt, version, score, category, error, tokens)] = rows
    assert (prompt, version, category, error) == ("customer", 1, "credit", 0)
    assert score == 1.0 and tokens > 0  # the offline answer states only facts it was given


SECRETS = ("1984-06-12", "D1234567", "123-45-6789", "4111 1111 1111 1111", "1979-02-03", "S123-4567-8901", "is 482")


async def test_no_path_hands_a_cloud_model_what_the_policy_withholds(tmp_path):
    """The context, the conversation the client sends back (an earlier
    offline answer, the user's own words, a tool result), the router's data
    tools and a batch: a capturing emulator sees none of the withheld values."""
    async with running_mesh(tmp_path, Script(text="Noted.")) as (mesh, emulator):
        stub = router_pb2_grpc.RouterServiceStub(mesh.channel("router"))
        user, assistant, tool = common_pb2.ROLE_USER, common_pb2.ROLE_ASSISTANT, common_pb2.ROLE_TOOL
        history = router_pb2.ChatRequest(
            model="gpt-4o-mini",
            messages=[
                common_pb2.ChatMessage(role=user, content="When was client id 2480135 born?"),
                common_pb2.ChatMessage(
                    role=assistant,
                    content="Offline answer: Date of birth: 1984-06-12; driving licence D1234567.",
                    tool_calls=[common_pb2.ToolCall(id="c1", name="lookup", arguments='{"dob": "1984-06-12"}')],
                ),
                common_pb2.ChatMessage(role=tool, tool_call_id="c1", content='{"born": "1984-06-12"}'),
                common_pb2.ChatMessage(
                    role=user,
                    content="Her SSN is 123-45-6789 and card 4111 1111 1111 1111; is client id 2480135 ok?"
                    " Her husband's date of birth is 1979-02-03, his driver's license number is S123-4567-8901"
                    " and his card's security code is 482.",
                ),
            ],
            tools=[common_pb2.Tool(name="lookup")],
        )
        await collect(stub, history)
        # The router's own data tools: the model asks for the 360 view.
        emulator.queue = [
            Script(text="", tool_calls=[("t1", "get_customer_360", orjson.dumps({"entity_id": "x"}).decode())]),
        ]
        entity = mesh.customers[0].entity_id
        emulator.queue[0].tool_calls[0] = ("t1", "get_customer_360", orjson.dumps({"entity_id": entity}).decode())
        await collect(stub, chat_request("Tell me about client id 2480135", model="gpt-4o-mini"))
        await stub.ChatBatch(
            router_pb2.ChatBatchRequest(requests=[history, chat_request("DOB of client id 2480135?", "gpt-4o-mini")]),
            timeout=10,
        )
        assert len(emulator.requests) >= 5
        for sent in emulator.requests:
            text = orjson.dumps(sent["messages"]).decode()
            for secret in SECRETS:
                assert secret not in text, (secret, text[:300])
        tool_result = next(m for s in emulator.requests for m in s["messages"] if m["role"] == "tool" and "t1" in
                           m.get("tool_call_id", ""))  # fmt: skip
        assert "[withheld: date of birth]" in tool_result["content"]


async def test_the_mode_fields_over_grpc_name_what_is_wrong(mesh):
    stub = router_pb2_grpc.RouterServiceStub(mesh.channel("router"))
    web = (("x-mesh-principal", "key=web;tenant=t;audience=client;customer=edwina.hawthorne@example.com;scopes=chat"),)
    for fields, code, field in (
        ({"agent_mode": common_pb2.AGENT_MODE_AGENT, "metadata": web}, grpc.StatusCode.PERMISSION_DENIED,
         "agent_mode"),
        ({"category": "weather"}, grpc.StatusCode.INVALID_ARGUMENT, "category"),
        ({"prompt_id": "no/such"}, grpc.StatusCode.INVALID_ARGUMENT, "prompt_id"),
        ({"prompt_id": "nope"}, grpc.StatusCode.NOT_FOUND, "prompt_id"),
        ({"prompt_version": 42}, grpc.StatusCode.NOT_FOUND, "prompt_version"),
    ):  # fmt: skip
        metadata = fields.pop("metadata", None)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await collect(stub, chat_request("status of edwina.hawthorne@example.com?", **fields), metadata=metadata)
        assert (caught.value.code(), field_violations(caught.value)) == (code, [field]), fields


async def test_a_cloud_model_in_client_mode_sees_the_customers_own_account_and_no_tools(tmp_path):
    async with running_mesh(tmp_path, Script(text="You were last called on 2024.")) as (mesh, emulator):
        stub = router_pb2_grpc.RouterServiceStub(mesh.channel("router"))
        request = chat_request(
            "I am edwina.hawthorne@example.com, when did you last call me?",
            model="gpt-4o-mini",
            agent_mode=common_pb2.AGENT_MODE_CLIENT,
            category="status",
        )
        text, _ = await collect(stub, request)
        assert text == "You were last called on 2024."
        [sent] = emulator.requests
        system = sent["messages"][0]["content"]
        assert system.startswith("You are the customer-service assistant") and "Lead with the account" in system
        context = system[system.index("Customer data from Tilores") :]
        assert "Calls on file: 2" in context
        assert "agent" not in context and "campaign" not in context and "record" not in context
        assert "Records in all" not in context and "Salesforce contact id" not in context
        assert "tools" not in sent  # nothing that could search another customer
