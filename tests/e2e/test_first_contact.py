"""What a new user, an SRE and a hostile caller meet first, through Envoy
with real clients: probes, model retrieval, bad numbers and strings, bad
protobuf, secrets in query strings, metric labels and small mismatches."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import grpc
import openai
import pytest
from grpc_health.v1 import health_pb2
from langchain_openai import ChatOpenAI
from tilores_x.v1 import common_pb2, router_pb2, router_pb2_grpc

from gateway.openapi import OPERATIONS
from tests.docs import doc
from tests.e2e.conftest import API_KEY, http, http_json, wait_for_log

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
USER = {"role": "user", "content": "What is the status of edwina.hawthorne@example.com?"}


def _chat(mesh, body: dict):
    return http_json("POST", f"{mesh.rest_url}/v1/chat/completions", body)


def test_the_gateway_liveness_probe_answers_a_whole_json_body(mesh):
    # What the kubelet asks the gateway's own port, every 10 s.
    status, headers, body = http("GET", f"{mesh.gateway_url}/health/live", context=mesh.ssl_context())
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body) == {"status": "ok"}
    assert "Traceback" not in mesh.log_path("gateway").read_text()


def test_both_probes_answer_through_envoy_and_the_detail_stays_on_the_gateways_port(mesh):
    for path, word in (("/health", "ok"), ("/health/ready", "ready"), ("/health/live", "ok")):
        status, headers, body = http("GET", f"{mesh.rest_url}{path}")
        assert status == 200 and headers["content-type"] == "application/json", path
        assert json.loads(body)["status"] == word, path
    status, _, _ = http("GET", f"{mesh.rest_url}/health/detailed")
    assert status == 404
    status, _, body = http("GET", f"{mesh.gateway_url}/health/detailed", context=mesh.ssl_context())
    assert status == 200 and "services" in json.loads(body)


def test_sdk_retrieves_one_model(client):
    model = client.models.retrieve("offline")
    assert (model.id, model.object, model.owned_by) == ("offline", "model", "tilores-x")
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("no-such-model")
    assert caught.value.code == "model_not_found" and caught.value.param == "model"
    assert "no-such-model" in caught.value.message


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is installed by make test")
def test_node_sdk_lists_retrieves_streams_completes_and_embeds(mesh):
    script = REPO / "tests" / "e2e" / "clients" / "models.mjs"
    run = subprocess.run(
        ["node", str(script), f"{mesh.rest_url}/v1", API_KEY],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout)
    assert "offline" in seen["listed"] and "gpt-4o-mini" in seen["listed"]
    assert seen["offline"]["id"] == "offline" and seen["offline"]["object"] == "model"
    assert seen["missing"] == {"status": 404, "code": "model_not_found", "param": "model"}
    assert "Edwina Hawthorne" in seen["text"] and seen["chunks"] > 5  # streamed in pieces
    assert seen["model"] == "offline"
    assert "Edwina Hawthorne" in seen["completion"] and "712" in seen["completion"]
    assert seen["embeddings"] == [256, 256]


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("max_tokens", 2**31, "integer_above_max_value"),
        ("max_completion_tokens", 2**31, "integer_above_max_value"),
        ("max_tokens", 2**70, "integer_above_max_value"),  # beyond 64 bits
        ("seed", 2**63, "integer_above_max_value"),
        ("seed", -(2**63) - 1, "integer_below_min_value"),
        ("seed", 10**22, "integer_above_max_value"),
    ],
)
def test_integers_beyond_their_range_are_400_naming_the_field(mesh, field, value, code):
    status, body = _chat(mesh, {"model": "offline", "messages": [USER], field: value})
    assert status == 400
    assert body["error"]["param"] == field and body["error"]["code"] == code
    assert body["error"]["type"] == "invalid_request_error"


def test_a_bad_number_in_a_batch_fails_only_its_own_item(mesh):
    status, reply = http_json(
        "POST",
        f"{mesh.rest_url}/v1/chat/batch",
        {
            "requests": [
                {"custom_id": "big", "body": {"model": "offline", "messages": [USER], "max_tokens": 2**31}},
                {"custom_id": "seed", "body": {"model": "offline", "messages": [USER], "seed": 2**63}},
                {"custom_id": "fine", "body": {"model": "offline", "messages": [USER]}},
                {"custom_id": "unknown", "body": {"model": "gpt-9", "messages": [USER]}},
            ]
        },
    )
    assert status == 200
    lines = {line["custom_id"]: line["response"] for line in reply["data"]}
    assert lines["big"]["status_code"] == 400 and lines["big"]["body"]["error"]["param"] == "max_tokens"
    assert lines["seed"]["status_code"] == 400 and lines["seed"]["body"]["error"]["param"] == "seed"
    assert lines["fine"]["status_code"] == 200
    assert "Edwina Hawthorne" in lines["fine"]["body"]["choices"][0]["message"]["content"]
    # The same error a top-level request gets for an unknown model.
    assert lines["unknown"]["status_code"] == 404
    unknown = lines["unknown"]["body"]["error"]
    assert (unknown["param"], unknown["code"]) == ("model", "model_not_found")
    status, top = _chat(mesh, {"model": "gpt-9", "messages": [USER]})
    assert status == 404 and (top["error"]["param"], top["error"]["code"]) == ("model", "model_not_found")


@pytest.mark.parametrize("concurrency", [0, 17, True, "4"])
def test_batch_concurrency_outside_1_to_16_is_named(mesh, concurrency):
    status, body = http_json(
        "POST",
        f"{mesh.rest_url}/v1/chat/batch",
        {"requests": [{"body": {"model": "offline", "messages": [USER]}}], "concurrency": concurrency},
    )
    assert status == 400 and body["error"]["param"] == "concurrency"
    assert "from 1 to 16 (default 4)" in body["error"]["message"]


@pytest.mark.parametrize(
    ("method", "path", "body", "param"),
    [
        ("POST", "/v1/prompts/general/activate", {"version": 2**31}, "version"),
        ("GET", "/v1/experiments/1234567890123456789012", None, "experiment_id"),
        ("POST", "/v1/experiments/1234567890123456789012/stop", {}, "experiment_id"),
        (
            "POST",
            "/v1/experiments",
            {"prompt": "general", "arms": [{"version": 1}], "min_samples": 2**40},
            "min_samples",
        ),
        ("POST", "/v1/experiments", {"prompt": "general", "arms": [{"version": 2**31}]}, "arms[0].version"),
        ("POST", "/v1/experiments", {"prompt": "general", "arms": [{"version": 1, "weight": 1e308 * 10}]}, None),
        ("POST", "/v1/experiments", {"prompt": "x" * 100_000, "arms": [{"version": 1}]}, "prompt"),
    ],
)
def test_admin_values_beyond_their_range_are_400_naming_the_field(mesh, method, path, body, param):
    raw = json.dumps(body).encode() if body is not None else None
    if body is not None and param is None:  # 1e309 is not JSON at all
        raw = raw.replace(b"Infinity", b"1e999")
        param = "arms[0].weight"
    status, error = http_json(method, f"{mesh.rest_url}{path}", key=mesh.admin_key, raw=raw)
    assert status == 400, error
    assert error["error"]["param"] == param


def test_admin_answers_carry_numbers_and_plain_words(mesh):
    url = f"{mesh.rest_url}/v1"
    admin = mesh.admin_key
    status, created = http_json("POST", f"{url}/prompts/general/versions", {"template": "Hi.\n\n{context}"}, key=admin)
    assert status == 200
    arms = [{"version": 1}, {"version": created["version"]["version"]}]
    status, started = http_json("POST", f"{url}/experiments", {"prompt": "general", "arms": arms}, key=admin)
    assert status == 200
    experiment = started["experiment"]
    try:
        assert isinstance(experiment["id"], int) and experiment["state"] == "running"
        assert experiment["arms"][0]["turns"] == 0 and experiment["arms"][0]["p_quality"] is None
    finally:
        http_json("POST", f"{url}/experiments/{experiment['id']}/stop", {"reason": "test"}, key=admin)


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/chat/completions", {"model": "m" * 1_000_000, "messages": [USER]}, "model"),
        ("/v1/chat/completions", {"model": "offline", "messages": [USER], "user": "u" * 1_000_000}, "user"),
        ("/v1/feedback", {"completion_id": "c" * 1_000_000, "rating": "up"}, "completion_id"),
        ("/v1/chat/batch", {"requests": [{"custom_id": "i" * 1_000_000, "body": {}}]}, "requests[0].custom_id"),
    ],
)
def test_megabyte_ids_are_400_not_a_retryable_429(mesh, path, body, param):
    status, error = http_json("POST", f"{mesh.rest_url}{path}", body)
    assert status == 400
    assert error["error"]["param"] == param and error["error"]["code"] == "string_above_max_length"


def test_a_long_model_id_through_grpc_is_refused_cleanly(mesh):
    with grpc.secure_channel(mesh.grpc_addr, mesh.client_credentials()) as channel:
        router = router_pb2_grpc.RouterServiceStub(channel)
        request = router_pb2.ChatRequest(
            model="m" * 1_000_000, messages=[common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content="hi")]
        )
        with pytest.raises(grpc.RpcError) as caught:
            list(router.Chat(request, timeout=10))
    assert caught.value.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)
    assert len(caught.value.details()) < 2000


@pytest.mark.parametrize(
    ("method", "stream", "metadata"),
    [
        ("/tilores_x.v1.TiloresDataService/SearchEntities", False, ()),
        ("/tilores_x.v1.RouterService/Chat", True, ()),
        ("/tilores_x.v1.LlmGatewayService/Generate", True, ()),
        ("/tilores_x.v1.OptimizerService/GetPrompt", False, ()),
        ("/tilores_x.v1.CacheService/Get", False, ()),
        ("/grpc.health.v1.Health/Check", False, (("x-mesh-service", "router"),)),
    ],
)
def test_malformed_protobuf_is_invalid_argument_without_internals(mesh, method, stream, metadata):
    garbage = b"\x0a\xff\xff\xff\xff\x0f\x12"  # a field claiming more bytes than follow
    with grpc.secure_channel(mesh.grpc_addr, mesh.client_credentials()) as channel:
        call = (channel.unary_stream if stream else channel.unary_unary)(method)
        with pytest.raises(grpc.RpcError) as caught:
            reply = call(garbage, timeout=10, metadata=metadata)
            if stream:
                list(reply)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    details = caught.value.details()
    assert "Error" not in details and "class" not in details and "Traceback" not in details
    # The service is fine afterwards.
    with grpc.secure_channel(mesh.grpc_addr, mesh.client_credentials()) as channel:
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        service = method.split(".")[1].split("/")[0] if "tilores_x" in method else "router"
        names = {
            "TiloresDataService": "tilores_data",
            "RouterService": "router",
            "LlmGatewayService": "llm_gateway",
            "OptimizerService": "optimizer",
            "CacheService": "cache",
        }
        reply = check(health_pb2.HealthCheckRequest(), metadata=(("x-mesh-service", names.get(service, "router")),))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_keys_in_query_strings_reach_no_log(mesh):
    secret = "sk-query-secret-5f1c2e"
    for query in (f"api_key={secret}", f"key={secret}", f"token={secret}&x=1"):
        status, _, _ = http("GET", f"{mesh.rest_url}/v1/models?{query}", headers={"Authorization": f"Bearer {API_KEY}"})
        assert status == 200
        http("GET", f"{mesh.rest_url}/v1/nothing-here?{query}")
    mesh_logs = [mesh.log_path(name) for name in ("envoy", "gateway")]
    # Envoy flushes its access log every second.
    assert wait_for_log(mesh, "envoy", lambda entry: entry.get("route") == "unmatched")
    for path in mesh_logs:
        text = path.read_text()
        assert secret not in text, path.name
    assert any(json.loads(line).get("route") == "/v1/models" for line in _json_lines(mesh.log_path("envoy")))


def _json_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.startswith("{")]


def test_metric_labels_never_take_a_path_a_client_made_up(mesh):
    email = "edwina.hawthorne@example.com"
    for path in (f"/v1/{email}", f"/v1/models/{urllib.parse.quote(email)}/x", "/v1/prompts/" + "p" * 300):
        http("GET", f"{mesh.rest_url}{path}", headers={"Authorization": f"Bearer {API_KEY}"})
    http("BREW", f"{mesh.rest_url}/v1/models", headers={"Authorization": f"Bearer {API_KEY}"})
    status, _, body = http("GET", f"{mesh.gateway_url}/metrics", context=mesh.ssl_context())
    assert status == 200
    text = body.decode()
    assert "edwina" not in text and "ppppp" not in text and "BREW" not in text
    routes = {
        line.split('route="')[1].split('"')[0] for line in text.splitlines() if line.startswith("http_requests_total{")
    }
    assert "unmatched" in routes
    # Only the templates of the routes the gateway serves (its OpenAPI document lists them).
    assert routes <= {"unmatched"} | {template for _method, template in OPERATIONS}
    assert email not in mesh.log_path("gateway").read_text()


def test_no_log_line_names_a_customer_whatever_the_path(mesh, customers):
    """Identifiers in paths (a credit report by e-mail, phone, client id or
    name; a made-up path holding an e-mail) and in questions reach no log
    of any process: Envoy logs the gateway's route template instead."""
    ours = next(c for c in customers if c.records[0]["EMAIL"] == "edwina.hawthorne@example.com").records[0]
    phone = "+1 (312) 555-0142"
    typed = [ours["EMAIL"], ours["CLIENT_ID"], phone, "Edwina Hawthorne", "zz.unlisted@example.org"]
    auth = {"Authorization": f"Bearer {mesh.admin_key}"}
    for value in typed:
        http("GET", f"{mesh.rest_url}/v1/credit-report/{urllib.parse.quote(value)}", headers=auth)
        http("GET", f"{mesh.rest_url}/v1/{urllib.parse.quote(value)}/x", headers=auth)
    http_json("POST", f"{mesh.rest_url}/v1/chat/completions",
              {"model": "offline", "messages": [{"role": "user", "content": f"status of {phone}?"}]})  # fmt: skip
    assert wait_for_log(mesh, "envoy", lambda entry: entry.get("route") == "/v1/credit-report/{identifier}")
    time.sleep(1.2)  # Envoy flushes its access log every second
    for log in mesh.log_dir.glob("*.log"):
        text = log.read_text(errors="replace")
        for value in (*typed, urllib.parse.quote(ours["EMAIL"]), "3125550142"):
            assert value not in text, (log.name, value)


def test_a_model_whose_provider_has_no_key_answers_from_its_chain(client):
    # No OPENAI_API_KEY here: gpt-4o-mini falls along its chain to offline,
    # whose answer says so, chunk by chunk.
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", stream=True, messages=[USER]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Edwina Hawthorne" in text and text.startswith("Offline answer")
    assert {c.model for c in chunks} == {"offline"}
    whole = client.chat.completions.create(model="gpt-4o-mini", messages=[USER])
    assert whole.model == "offline" and "Edwina Hawthorne" in whole.choices[0].message.content


def test_client_tools_on_a_model_without_its_key_fall_to_offline_which_calls_them(client):
    parameters = {"type": "object", "properties": {"email": {"type": "string"}}, "required": ["email"]}
    tools = [{"type": "function", "function": {"name": "lookup_status", "parameters": parameters}}]
    whole = client.chat.completions.create(model="gpt-4o-mini", messages=[USER], tools=tools)
    assert whole.model == "offline" and whole.choices[0].finish_reason == "tool_calls"
    call = whole.choices[0].message.tool_calls[0]
    assert json.loads(call.function.arguments) == {"email": "edwina.hawthorne@example.com"}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[USER], tools=tools, extra_body={"no_fallback": True}
        )
    assert "provider 'openai', which is not configured" in caught.value.message and caught.value.param == "model"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        (
            {"tools": [{"type": "function", "function": {"name": "a"}}], "tool_choice": {"type": "function",
             "function": {"name": "b"}}},
            "tool_choice.function.name",
        ),
        ({"parallel_tool_calls": "no"}, "parallel_tool_calls"),
    ],
)  # fmt: skip
def test_bad_tool_choices_are_named(mesh, extra, param):
    status, body = _chat(mesh, {"model": "offline", "messages": [USER], **extra})
    assert status == 400 and body["error"]["param"] == param


def test_tool_choice_none_with_the_clients_tools_on_offline_answers_in_words(client):
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    reply = client.chat.completions.create(model="offline", messages=[USER], tools=tools, tool_choice="none")
    assert "Edwina Hawthorne" in reply.choices[0].message.content
    assert reply.choices[0].finish_reason == "stop" and not reply.choices[0].message.tool_calls


def test_langchain_json_mode_on_the_offline_model(mesh):
    chat = ChatOpenAI(model="offline", base_url=f"{mesh.rest_url}/v1", api_key=API_KEY, max_retries=0)
    structured = chat.with_structured_output(method="json_mode")
    answer = structured.invoke("As JSON: the credit score of edwina.hawthorne@example.com?")
    assert answer["customer"] == "Edwina Hawthorne" and answer["status"] == "found"
    scores = {f["label"].split(" (")[0]: f["value"] for f in answer["facts"] if f["topic"] == "credit"}
    assert scores["TransUnion credit score"] == "712"
    assert all(f["record_id"] for f in answer["facts"])
    # A schema nothing on file fills is refused by the property's name, not ignored.
    schema = {"title": "Score", "type": "object", "properties": {"shoe_size": {"type": "integer"}}}
    schema["required"] = ["shoe_size"]
    with pytest.raises(openai.BadRequestError) as caught:
        chat.with_structured_output(schema, method="json_schema").invoke("score of edwina.hawthorne@example.com?")
    assert caught.value.param == "response_format.json_schema.schema.shoe_size"


def _unique_named(customers, first_names: tuple[str, ...] = (), last_names: tuple[str, ...] = ()) -> dict:
    """The Contact record of a customer whose full name no other customer has."""
    counts: dict[tuple[str, str], int] = {}
    for customer in customers:
        contact = customer.records[0]
        key = (contact["FIRST_NAME"], contact["LAST_NAME"])
        counts[key] = counts.get(key, 0) + 1
    for customer in customers:
        contact = customer.records[0]
        if (
            counts[(contact["FIRST_NAME"], contact["LAST_NAME"])] == 1
            and (not first_names or contact["FIRST_NAME"] in first_names)
            and (not last_names or contact["LAST_NAME"] in last_names)
        ):
            return contact
    raise AssertionError("no such customer in the sample")


def _ask(client, *turns: str) -> str:
    messages = []
    for n, turn in enumerate(turns):
        messages.append({"role": "user" if n % 2 == 0 else "assistant", "content": turn})
    return client.chat.completions.create(model="offline", messages=messages).choices[0].message.content


def test_names_as_agents_type_them_find_the_customer(client, customers):
    contact = _unique_named(customers[1:])
    first, last = contact["FIRST_NAME"], contact["LAST_NAME"]
    status = f"Account status: {contact['STATUS']}"
    for question in (
        f"what is the status of {first.lower()} {last.lower()}?",
        f"Does {first} {last} have an active account?",
        f"Is {first} {last} still active?",
        f"{first} {last}'s status please",
    ):
        answer = _ask(client, question)
        assert f"{first} {last}" in answer and status in answer, (question, answer)


def test_first_names_that_are_also_words_are_names_when_capitalised(client, customers):
    contact = _unique_named(customers, ("Kit", "Hazel", "Iris", "Pearl", "Dean", "Opal", "June"))
    answer = _ask(client, f"Does {contact['FIRST_NAME']} {contact['LAST_NAME']} have a ticket open?")
    assert f"{contact['FIRST_NAME']} {contact['LAST_NAME']}" in answer and "no customer matches" not in answer


def test_a_lower_case_name_whose_last_name_is_also_a_word_finds_the_customer(client, customers):
    contact = _unique_named(customers, last_names=("Nash", "Crane", "Gale", "Wren", "Mercer", "Sterling"))
    first, last = contact["FIRST_NAME"], contact["LAST_NAME"]
    answer = _ask(client, f"what is the status of {first.lower()} {last.lower()}?")
    assert f"{first} {last}" in answer and f"Account status: {contact['STATUS']}" in answer, answer
    assert "identifier" not in answer


def test_an_unknown_name_is_no_match_not_a_request_for_an_identifier(client):
    answer = _ask(client, "Does Zebedee Quackenbush have a credit score on file?")
    assert "no customer matches name Zebedee Quackenbush" in answer


def test_word_pairs_that_name_nobody_keep_the_earlier_customer(client):
    answer = _ask(
        client,
        "What is the status of edwina.hawthorne@example.com?",
        "Edwina Hawthorne is Active.",
        "thanks, anything overdue lately?",
    )
    assert "Edwina Hawthorne" in answer and "no customer matches" not in answer


def _wait_status(url: str, key: str, expected: int) -> int:
    status = 0
    for _ in range(60):  # the gateway re-reads its key file within a second
        status, _ = http_json("GET", url, key=key)
        if status == expected:
            break
        time.sleep(0.1)
    return status


def test_keys_are_added_scoped_and_revoked_without_a_restart(mesh):
    key_file = mesh.data_dir / "gateway-keys.yaml"
    assert "sk-" not in key_file.read_text()  # hashes only
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.api_keys",
            "add",
            "--file",
            str(key_file),
            "--id",
            "desk-7",
            "--scopes",
            "chat",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    key = run.stdout.strip()
    assert key.startswith("sk-") and key not in key_file.read_text()
    status, answer = http_json("POST", f"{mesh.rest_url}/v1/chat/completions", {"model": "offline", "messages": [USER]},
                               key=key)  # fmt: skip
    for _ in range(60):
        if status == 200:
            break
        time.sleep(0.1)
        status, answer = http_json(
            "POST", f"{mesh.rest_url}/v1/chat/completions", {"model": "offline", "messages": [USER]}, key=key
        )
    assert status == 200 and "Edwina Hawthorne" in answer["choices"][0]["message"]["content"]
    # Its scopes are all it may use.
    status, error = http_json("GET", f"{mesh.rest_url}/v1/models", key=key)
    assert (
        status == 403 and error["error"]["code"] == "insufficient_permissions" and "models" in error["error"]["message"]
    )
    subprocess.run(
        [sys.executable, "-m", "gateway.api_keys", "revoke", "--file", str(key_file), "--id", "desk-7"], check=True
    )
    assert _wait_status(f"{mesh.rest_url}/v1/models", key, 401) == 401
    # By its value, as docs/security.md revokes a key given in GATEWAY_API_KEYS.
    add = [sys.executable, "-m", "gateway.api_keys", "add", "--file", str(key_file), "--id", "desk-8"]
    other = subprocess.run([*add, "--scopes", "models"], capture_output=True, text=True, check=True).stdout.strip()
    assert _wait_status(f"{mesh.rest_url}/v1/models", other, 200) == 200
    readme = doc("docs/security.md")
    line = next(line for line in readme.splitlines() if "--key-from-stdin" in line and line.startswith("echo"))
    line = line.replace(".venv/bin/python", sys.executable).replace(".data/gateway-keys.yaml", str(key_file))
    subprocess.run(["bash", "-c", line], env={**os.environ, "OLD_KEY": other}, check=True)
    assert _wait_status(f"{mesh.rest_url}/v1/models", other, 401) == 401
    # The printed dev keys still work.
    assert http_json("GET", f"{mesh.rest_url}/v1/models")[0] == 200
    assert http_json("GET", f"{mesh.rest_url}/v1/quality", key=mesh.admin_key)[0] == 200
