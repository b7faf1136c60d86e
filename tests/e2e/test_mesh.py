"""End to end: chat clients through Envoy to every service and back."""

import json
import sqlite3
import uuid

import grpc
import openai
import orjson
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tilores_x.v1 import common_pb2, router_pb2, router_pb2_grpc, tilores_data_pb2, tilores_data_pb2_grpc

from tests.e2e.conftest import API_KEY, http, http_json, wait_for_log

pytestmark = pytest.mark.e2e
QUESTION = "What is the status and credit score of edwina.hawthorne@example.com?"


def test_streamed_answer_holds_the_customers_facts(client):
    chunks = list(
        client.chat.completions.create(
            model="offline",
            stream=True,
            stream_options={"include_usage": True},
            messages=[{"role": "user", "content": QUESTION}],
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Edwina Hawthorne" in text
    assert "Account status: Active" in text
    assert "TransUnion credit score" in text and "712" in text
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    # In pieces as the tokens come, not one block: the first token alone (it
    # is never held), later ones a few to a message (STREAM_HOLD_MS).
    assert len(content_chunks) > 5
    assert len(content_chunks[0].choices[0].delta.content.split()) == 1
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == len(text.split())
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")


def test_whole_answer_for_another_customer(client, customers):
    contact = customers[123].records[0]
    reply = client.chat.completions.create(
        model="offline",
        messages=[{"role": "user", "content": f"What is the account status of {contact['EMAIL']}?"}],
    )
    answer = reply.choices[0].message.content
    assert f"{contact['FIRST_NAME']} {contact['LAST_NAME']}" in answer
    assert f"Account status: {contact['STATUS']}" in answer
    assert f"Product: {contact['CURRENT_PRODUCT']}" in answer
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens > 0


def test_follow_up_question_keeps_the_customer(client):
    reply = client.chat.completions.create(
        model="offline",
        messages=[
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": "Edwina Hawthorne is Active."},
            {"role": "user", "content": "And when was her last payment?"},
        ],
    )
    answer = reply.choices[0].message.content
    assert "Edwina Hawthorne" in answer and "Last approved payment date" in answer


def test_unknown_customer_gets_an_honest_answer(client, customers):
    reply = client.chat.completions.create(
        model="offline", messages=[{"role": "user", "content": "Credit score of nobody.at.all@example.com?"}]
    )
    answer = reply.choices[0].message.content
    assert "no customer matches email nobody.at.all@example.com" in answer
    names = {c.records[0]["LAST_NAME"] for c in customers}
    assert not any(name in answer for name in names)


def test_models_lists_the_catalog(client):
    models = {m.id: m for m in client.models.list()}
    assert models["offline"].model_extra["available"] is True
    assert models["gpt-4o-mini"].model_extra["available"] is False


def test_sdk_raises_typed_errors(mesh, client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.code == "model_not_found"
    with (
        openai.OpenAI(base_url=f"{mesh.rest_url}/v1", api_key="sk-wrong", max_retries=0) as wrong,
        pytest.raises(openai.AuthenticationError),
    ):
        wrong.chat.completions.create(model="offline", messages=[{"role": "user", "content": "hi"}])


def _error(message, kind="invalid_request_error", param=None, code=None):
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


USER = {"role": "user", "content": "hi"}


@pytest.mark.parametrize(
    ("body", "raw", "status", "expected"),
    [
        (
            None,
            b'{"model": "offline", "messages": [',
            400,
            _error(
                "We could not parse the JSON body of your request. The API expects a JSON payload "
                "(Content-Type: application/json)."
            ),
        ),
        (
            {"model": "offline"},
            None,
            400,
            _error("Missing required parameter: 'messages'.", param="messages", code="missing_required_parameter"),
        ),
        (
            {"model": "offline", "messages": []},
            None,
            400,
            _error(
                "Invalid 'messages': empty array. Expected an array with minimum length 1, "
                "but got an empty array instead.",
                param="messages",
                code="empty_array",
            ),
        ),
        (
            {"model": "offline", "messages": {"role": "user"}},
            None,
            400,
            _error(
                "Invalid type for 'messages': expected an array, but got an object instead.",
                param="messages",
                code="invalid_type",
            ),
        ),
        (
            {"model": "offline", "messages": [USER], "temperature": "hot"},
            None,
            400,
            _error(
                "Invalid type for 'temperature': expected a number, but got a string instead.",
                param="temperature",
                code="invalid_type",
            ),
        ),
        (
            {"model": "offline", "messages": [{"role": "robot", "content": "hi"}]},
            None,
            400,
            _error(
                "Invalid value: 'robot'. Supported values are: 'system', 'assistant', 'user', 'tool', and 'developer'.",
                param="messages[0].role",
                code="invalid_value",
            ),
        ),
        (
            {"model": "gpt-9", "messages": [USER]},
            None,
            404,
            _error(
                "The model `gpt-9` does not exist or you do not have access to it.",
                param="model",
                code="model_not_found",
            ),
        ),
    ],
)
def test_bad_input_gets_openai_error_json(mesh, body, raw, status, expected):
    got_status, got = http_json("POST", f"{mesh.rest_url}/v1/chat/completions", body, raw=raw)
    assert (got_status, got) == (status, expected)


def test_missing_and_wrong_api_keys_are_401(mesh):
    status, body = http_json(
        "POST", f"{mesh.rest_url}/v1/chat/completions", {"model": "offline", "messages": [USER]}, key=None
    )
    assert status == 401
    assert body == _error(
        "You didn't provide an API key. You need to provide your API key in an Authorization header "
        "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
    )
    status, body = http_json(
        "POST", f"{mesh.rest_url}/v1/chat/completions", {"model": "offline", "messages": [USER]}, key="sk-nope"
    )
    assert status == 401
    assert body == _error("Incorrect API key provided.", code="invalid_api_key")


def test_raw_sse_ends_with_done(mesh):
    status, headers, payload = http(
        "POST",
        f"{mesh.rest_url}/v1/chat/completions",
        b'{"model":"offline","stream":true,"messages":[{"role":"user","content":"status of client id 2480135"}]}',
        {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
    )
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = payload.split(b"\n\n")
    assert events[-2:] == [b"data: [DONE]", b""]
    assert all(e.startswith(b"data: ") for e in events[:-1])


def test_request_id_travels_to_every_hop(mesh, customers):
    request_id = uuid.uuid4().hex
    # A customer no other test asks about, so the lookup misses the cache.
    client_id = customers[201].records[0]["CLIENT_ID"]
    status, _, _ = http(
        "POST",
        f"{mesh.rest_url}/v1/chat/completions",
        json.dumps({"model": "offline", "messages": [{"role": "user", "content": f"client id {client_id}"}]}).encode(),
        {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json", "x-request-id": request_id},
    )
    assert status == 200
    for service in ("envoy", "gateway", "router", "cache", "tilores_data", "optimizer", "llm_gateway"):
        assert wait_for_log(mesh, service, lambda e: e.get("request_id") == request_id), service


def test_grpc_clients_reach_every_service_through_envoy(mesh):
    with grpc.secure_channel(mesh.grpc_addr, mesh.client_credentials()) as channel:
        router = router_pb2_grpc.RouterServiceStub(channel)
        request = router_pb2.ChatRequest(
            model="offline", messages=[common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content=QUESTION)]
        )
        text = "".join(e.delta for e in router.Chat(request, timeout=10) if e.WhichOneof("event") == "delta")
        assert "Edwina Hawthorne" in text and "712" in text
        tilores = tilores_data_pb2_grpc.TiloresDataServiceStub(channel)
        found = tilores.SearchEntities(
            tilores_data_pb2.SearchEntitiesRequest(parameters={"EMAIL": "edwina.hawthorne@example.com"}), timeout=5
        )
        assert len(found.entities) == 1
        assert orjson.loads(found.entities[0].records[0].data_json)["FIRST_NAME"] == "Edwina"
        with pytest.raises(grpc.RpcError) as caught:
            tilores.SearchEntities(tilores_data_pb2.SearchEntitiesRequest(parameters={"SALESFORCE_ID": "x"}), timeout=5)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "SALESFORCE_ID" in caught.value.details()
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("router", "llm_gateway", "tilores_data", "cache", "optimizer"):
            reply = health.Check(health_pb2.HealthCheckRequest(), metadata=(("x-mesh-service", service),), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, service


def test_every_service_reports_serving_on_its_own_port(mesh):
    for service in ("router", "llm_gateway", "tilores_data", "cache", "optimizer", "audit"):
        with grpc.secure_channel(mesh.service_addr(service), mesh.client_credentials()) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, service
    status, body = http_json("GET", f"{mesh.rest_url}/health", key=None)
    assert (status, body["status"], body["router"]) == (200, "ok", "SERVING")
    assert body["peers"] == {n: "SERVING" for n in ("audit", "cache", "llm_gateway", "optimizer", "tilores_data")}
    assert body["providers"]["offline"] == {
        "configured": True,
        "breaker": "closed",
        "retry_after_ms": 0,
        "failures_before_first_token": 0,
        "failures_mid_stream": 0,
        "successes": body["providers"]["offline"]["successes"],
    }
    assert body["providers"]["anthropic"]["configured"] is False


def test_health_shows_the_cache_on_redis(mesh):
    status, body = http_json("GET", f"{mesh.rest_url}/health")
    assert status == 200 and body["cache_redis"] == "connected"


def test_chat_batch_through_envoy(mesh):
    body = {
        "requests": [
            {"custom_id": "edwina", "body": {"model": "offline", "messages": [
                {"role": "user", "content": "What is the status of client id 2480135?"}]}},
            {"custom_id": "broken", "body": {"model": "offline"}},
            {"custom_id": "nobody", "body": {"model": "offline", "messages": [
                {"role": "user", "content": "Status of nobody.here@example.com?"}]}},
        ],
        "concurrency": 2,
    }  # fmt: skip
    status, reply = http_json("POST", f"{mesh.rest_url}/v1/chat/batch", body)
    assert status == 200 and reply["object"] == "list"
    results = {line["custom_id"]: line["response"] for line in reply["data"]}
    assert [line["custom_id"] for line in reply["data"]] == ["edwina", "broken", "nobody"]
    assert results["edwina"]["status_code"] == 200
    assert "Edwina Hawthorne" in results["edwina"]["body"]["choices"][0]["message"]["content"]
    assert results["broken"]["status_code"] == 400
    assert results["broken"]["body"]["error"]["param"] == "messages"
    assert "no customer matches" in results["nobody"]["body"]["choices"][0]["message"]["content"]
    status, error = http_json("POST", f"{mesh.rest_url}/v1/chat/batch", {"requests": []})
    assert status == 400 and error["error"]["param"] == "requests"


def test_feedback_on_an_answer(mesh):
    status, answer = http_json(
        "POST",
        f"{mesh.rest_url}/v1/chat/completions",
        {"model": "offline", "messages": [{"role": "user", "content": "Status of client id 2480135?"}]},
    )
    assert status == 200
    # At once, as a quick user does: the outcome is on its way, and the feedback waits for it.
    feedback = {"completion_id": answer["id"], "rating": "down", "comment": "the balance is out of date"}
    status, reply = http_json("POST", f"{mesh.rest_url}/v1/feedback", feedback)
    assert (status, reply) == (200, {"object": "feedback", "completion_id": answer["id"], "recorded": True})
    with sqlite3.connect(mesh.data_dir / "optimizer.db") as db:
        row = db.execute(
            "SELECT feedback, comment, score FROM outcomes WHERE completion_id = ?", (answer["id"],)
        ).fetchone()
    assert row[:2] == (0, "the balance is out of date") and row[2] is not None
    status, error = http_json(
        "POST", f"{mesh.rest_url}/v1/feedback", {"completion_id": "chatcmpl-nope", "rating": "up"}
    )
    assert status == 404 and error["error"]["param"] == "completion_id"
    status, error = http_json("POST", f"{mesh.rest_url}/v1/feedback", {"completion_id": answer["id"], "rating": "meh"})
    assert status == 400 and error["error"]["param"] == "rating"


def test_the_admin_api_runs_prompts_and_experiments(mesh):
    admin = mesh.admin_key
    url = f"{mesh.rest_url}/v1"
    # An ordinary key may chat but not administer.
    status, error = http_json("GET", f"{url}/prompts/customer")
    assert status == 403 and error["error"]["code"] == "insufficient_permissions"
    status, error = http_json("GET", f"{url}/prompts/customer", key=None)
    assert status == 401
    status, created = http_json(
        "POST", f"{url}/prompts/general/versions", {"template": "Be brief.\n\n{context}", "note": "e2e"}, key=admin
    )
    assert status == 200 and created["version"]["variables"] == ["context"]
    version = created["version"]["version"]
    status, error = http_json("POST", f"{url}/prompts/general/versions", {"template": "{secret}"}, key=admin)
    assert status == 400 and "{secret}" in error["error"]["message"]
    arms = [{"version": 1, "weight": 1}, {"version": version, "weight": 1}]
    status, started = http_json("POST", f"{url}/experiments", {"prompt": "general", "arms": arms}, key=admin)
    assert status == 200 and started["experiment"]["state"] == "running"
    experiment_id = started["experiment"]["id"]
    status, error = http_json("POST", f"{url}/experiments", {"prompt": "general", "arms": arms}, key=admin)
    assert status == 400 and "already has a running experiment" in error["error"]["message"]
    status, report = http_json("GET", f"{url}/experiments/{experiment_id}", key=admin)
    assert status == 200 and len(report["experiment"]["arms"]) == 2
    status, stopped = http_json("POST", f"{url}/experiments/{experiment_id}/stop", {"reason": "drill"}, key=admin)
    assert stopped["experiment"]["state"] == "killed"
    status, activated = http_json("POST", f"{url}/prompts/general/activate", {"version": version}, key=admin)
    assert status == 200 and activated["version"]["version"] == version
    status, rolled = http_json("POST", f"{url}/prompts/general/rollback", {"reason": "e2e"}, key=admin)
    assert status == 200 and rolled["version"]["version"] == 1
    status, missing = http_json("GET", f"{url}/prompts/nonexistent", key=admin)
    assert status == 404 and missing["error"]["param"] == "name"
    status, quality = http_json("GET", f"{url}/quality?check=now", key=admin)
    assert status == 200 and "groups" in quality
