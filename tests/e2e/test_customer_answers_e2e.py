"""A call-centre agent's questions through Envoy with the openai SDK: the
right customer for each kind of identifier, follow-ups, several matches,
no match, a tool-calling round trip and the PII policy at a provider
emulator, single-flight lookups, cache promotion, and Redis dying and
coming back without a failed request."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from google.protobuf.struct_pb2 import Struct
from tilores_x.v1 import cache_pb2, cache_pb2_grpc, tilores_data_pb2, tilores_data_pb2_grpc

from tests.e2e.conftest import http_json, start_local_mesh
from tests.emulators.base import Script

pytestmark = pytest.mark.e2e
DEMO_EMAIL = "edwina.hawthorne@example.com"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory, emulators):
    # No near-cache in the router: every lookup goes through the cache service.
    mesh = start_local_mesh(
        tmp_path_factory.mktemp("answers"),
        ROUTER_NEAR_CACHE_TTL_S="0",
        LLM_BREAKER_FAILURES="100000",
        **emulators.env(),
    )
    yield mesh
    mesh.stop()


def ask(client, *questions: str, model: str = "offline") -> str:
    messages = []
    answer = ""
    for question in questions:  # earlier questions and answers stay in the conversation
        messages.append({"role": "user", "content": question})
        stream = client.chat.completions.create(model=model, stream=True, messages=messages)
        answer = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        messages.append({"role": "assistant", "content": answer})
    return answer


def grpc_stub(mesh, stub_type, service: str):
    channel = grpc.secure_channel(mesh.grpc_addr, mesh.client_credentials())
    return channel, stub_type(channel), (("x-mesh-service", service),)


@pytest.mark.parametrize(
    "question",
    [
        "What is the status of edwina.hawthorne@example.com?",
        "What is the status of client id 2480135?",
        "What is the status of the customer on (312) 555-0142?",
        "What is the status of Edwina Hawthorne?",
    ],
    ids=["email", "client id", "phone", "name"],
)
def test_each_identifier_finds_edwina(client, question):
    answer = ask(client, question)
    assert "Edwina Hawthorne" in answer and "Active" in answer


def test_the_salesforce_contact_id_finds_her(client, mesh):
    channel, stub, metadata = grpc_stub(mesh, tilores_data_pb2_grpc.TiloresDataServiceStub, "tilores_data")
    with channel:
        found = stub.SearchEntities(
            tilores_data_pb2.SearchEntitiesRequest(parameters={"EMAIL": DEMO_EMAIL}), metadata=metadata
        )
    contact_id = next(r.id for r in found.entities[0].records if r.id.startswith("003"))
    assert "Edwina Hawthorne" in ask(client, f"What is the credit score for contact {contact_id}?")


def test_a_follow_up_keeps_the_customer(client):
    answer = ask(client, "What is the credit score of client id 2480135?", "And when was her last payment?")
    assert "Last approved payment date" in answer and "Edwina" in answer


def test_several_matches_ask_which_one(client, mesh):
    channel, stub, metadata = grpc_stub(mesh, tilores_data_pb2_grpc.TiloresDataServiceStub, "tilores_data")
    records = []
    for n, email in enumerate(("zora.featherstone@example.com", "z.featherstone@example.org")):
        record = Struct()
        record.update({"id": f"003ZORA00000000{n}AA", "SOURCE": "Contact", "FIRST_NAME": "Zora",
                       "LAST_NAME": "Featherstone", "EMAIL": email, "CLIENT_ID": f"555000{n}"})  # fmt: skip
        records.append(record)
    with channel:
        stub.SubmitRecords(tilores_data_pb2.SubmitRecordsRequest(records=records), metadata=metadata)
    answer = ask(client, "What is the status of Zora Featherstone?")
    assert "several customers match" in answer and "Which one do you mean?" in answer
    assert "5550000" in answer and "5550001" in answer


def test_no_match_says_so_and_invents_nothing(client):
    answer = ask(client, "What is the credit score of nobody.here@example.com?")
    assert "no customer matches" in answer
    assert not any(ch.isdigit() for ch in answer.split("nobody.here@example.com")[-1])


def test_a_tool_round_trip_with_a_provider_and_the_pii_policy_at_it(client, mesh, emulators):
    emulators.openai.script = Script(text="Her date of birth is withheld here; her TransUnion score is 712.")
    emulators.openai.queue = [
        Script(text="", tool_calls=[("call_1", "search_customer", '{"query": "client id 2480135"}')])
    ]
    before = len(emulators.openai.requests)
    answer = ask(client, "When was client id 2480135 born, and what is her TransUnion score?", model="gpt-4o-mini")
    assert answer == "Her date of birth is withheld here; her TransUnion score is 712."
    first, second = emulators.openai.requests[before:]
    system = first["messages"][0]["content"]
    assert "Date of birth: [withheld: date of birth]" in system and "1984-06-12" not in system
    assert "TransUnion credit score" in system
    tool_result = json.loads(second["messages"][-1]["content"])
    assert "Edwina Hawthorne" in tool_result["customers"][0]["summary"]


def test_concurrent_questions_about_one_customer_make_one_lookup(client, mesh, customers):
    customer = customers[123]
    client_id = customer.records[0]["CLIENT_ID"]
    log = mesh.log_path("tilores_data")
    searches_before = log.read_text().count('TiloresDataService/SearchEntities"')
    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(lambda _: ask(client, f"What is the status of client id {client_id}?"), range(10)))
    assert all(customer.records[0]["FIRST_NAME"] in a for a in answers)
    time.sleep(0.5)  # access logs are written as calls end
    assert log.read_text().count('TiloresDataService/SearchEntities"') - searches_before == 1


def test_a_value_in_redis_is_promoted_after_the_cache_restarts(client, mesh, customers):
    customer = customers[77]
    question = f"What is the status of client id {customer.records[0]['CLIENT_ID']}?"
    ask(client, question)  # cached in both tiers
    mesh.restart("cache")  # the in-process tier is gone, Redis still has it
    deadline = time.monotonic() + 10
    while http_json("GET", f"{mesh.rest_url}/health")[1].get("peers", {}).get("cache") != "SERVING":
        assert time.monotonic() < deadline, "the router did not reconnect to the restarted cache"
        time.sleep(0.1)
    assert customer.records[0]["FIRST_NAME"] in ask(client, question)
    channel, stub, metadata = grpc_stub(mesh, cache_pb2_grpc.CacheServiceStub, "cache")
    with channel:
        stats = stub.Stats(cache_pb2.StatsRequest(), metadata=metadata)
    tiers = {(t.tier, t.namespace): t for t in stats.tiers}
    assert stats.promotions >= 1 and tiers[("l2", "customer")].hits >= 1
    assert stats.redis_state == cache_pb2.REDIS_STATE_CONNECTED


def test_redis_killed_and_restarted_under_load_fails_no_request(client, mesh, customers):
    questions = [f"What is the status of client id {c.records[0]['CLIENT_ID']}?" for c in customers[200:260]]
    failures: list[BaseException] = []
    answered = 0
    stop = threading.Event()

    def agent(offset: int) -> None:
        nonlocal answered
        n = offset
        while not stop.is_set():
            try:
                ask(client, questions[n % len(questions)])
                answered += 1
            except Exception as error:  # every failure is the finding
                failures.append(error)
            n += 4

    threads = [threading.Thread(target=agent, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    mesh.restart("redis", kill=True)  # SIGKILL, then a new server on the same port
    degraded_seen = False
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        _, body = http_json("GET", f"{mesh.rest_url}/health")
        degraded_seen |= body.get("cache_redis") == "degraded"
        if degraded_seen and body.get("cache_redis") == "connected":
            break
        time.sleep(0.1)
    time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join(30)
    assert failures == [] and answered > 10
    assert http_json("GET", f"{mesh.rest_url}/health")[1]["cache_redis"] == "connected"
