"""The router's facts and the offline provider's answers: only values that
are in the records, and an honest answer when there are none."""

import asyncio

from services.llm_gateway.providers.events import (
    Fact,
    Finish,
    GenerationRequest,
    Grounding,
    Message,
    ResponseFormat,
    Tool,
    Usage,
)
from services.llm_gateway.providers.offline import OfflineProvider, compose_answer, requested_topics
from services.router.grounding import AMBIGUOUS, FOUND, NOT_FOUND, customer_facts, ground
from services.runtime.faults import InvalidArgument
from services.tilores_data.sample import generate_customers


def _demo_records():
    return next(iter(generate_customers(1))).records


def _as_provider_grounding(grounding) -> Grounding:
    return Grounding(
        status=grounding.status,
        query=grounding.query,
        customer_name=grounding.customer_name,
        facts=tuple(Fact(f.topic, f.label, f.value, f.record_id) for f in grounding.facts),
    )


def test_facts_come_from_the_records_with_their_record_ids():
    records = _demo_records()
    name, facts = customer_facts(records)
    assert name == "Edwina Hawthorne"
    by_label = {f.label: f for f in facts}
    assert by_label["Account status"].value == "Active"
    assert by_label["Account status"].record_id == records[0]["id"]
    scores = {f.label.split()[0]: f.value for f in facts if "credit score" in f.label}
    assert scores == {"TransUnion": "712", "Equifax": "705", "Experian": "698"}
    record_ids = {r["id"] for r in records}
    assert all(f.record_id in record_ids for f in facts)
    # Sensitive values never become facts.
    assert not any(f.value == records[0]["DATE_OF_BIRTH"] for f in facts)


def test_grounding_states():
    assert ground("email x@example.com", []).status == NOT_FOUND
    one = ground("email edwina.hawthorne@example.com", [_demo_records()])
    assert one.status == FOUND and "Edwina Hawthorne" in one.text()
    others = [c.records for c in generate_customers(3)]
    many = ground("phone +13125550142", others[:2])
    assert many.status == AMBIGUOUS
    assert "Candidate 1" in many.text() and "Candidate 2" in many.text()


def test_requested_topics_match_whole_words():
    assert requested_topics("What is the status and credit score?") == ["status", "credit"]
    assert requested_topics("and her last payment?") == ["billing"]
    assert requested_topics("because of the mortgage") == ["status", "credit", "billing"]


def _request(question: str, grounding) -> GenerationRequest:
    return GenerationRequest(upstream_model="offline", messages=[Message("user", question)], grounding=grounding)


def test_offline_answer_states_only_facts_and_cites_records():
    grounding = _as_provider_grounding(ground("email edwina.hawthorne@example.com", [_demo_records()]))
    answer = compose_answer(_request("What is the status and credit score of edwina.hawthorne@example.com?", grounding))
    assert answer.startswith("Offline answer")
    assert "Edwina Hawthorne" in answer and "Active" in answer and "712" in answer
    numbers = {token.strip(".;,()[]%:") for token in answer.split() if any(ch.isdigit() for ch in token)}
    allowed = {f.value for f in grounding.facts} | {f.record_id for f in grounding.facts}
    allowed |= {part for f in grounding.facts for part in f.label.replace(")", "").split()}
    assert numbers <= {n.strip("%") for n in allowed} | allowed


def test_offline_answer_says_when_a_topic_is_not_on_file():
    grounding = Grounding(status="found", query="client id 1", customer_name="Ada Abbott", facts=())
    assert "No credit score is on file" in compose_answer(_request("credit score?", grounding))


def test_offline_answer_for_an_unknown_customer_invents_nothing():
    grounding = Grounding(status="not_found", query="email nobody@example.com")
    answer = compose_answer(_request("status of nobody@example.com?", grounding))
    assert "no customer matches email nobody@example.com" in answer
    assert not any(ch.isdigit() for ch in answer)


def test_offline_stream_ends_with_usage_and_finish():
    grounding = Grounding(status="no_identifier")

    async def collect():
        return [e async for e in OfflineProvider().stream(_request("hello", grounding))]

    events = asyncio.run(collect())
    text = "".join(e for e in events if isinstance(e, str))
    assert "e-mail, client id" in text
    assert events[-2] == Finish("stop")
    assert isinstance(events[-1], Usage) and events[-1].completion_tokens == len(events) - 2


def test_offline_stream_honours_max_tokens():
    grounding = Grounding(status="no_identifier")
    request = GenerationRequest(
        upstream_model="offline", messages=[Message("user", "hi")], grounding=grounding, max_tokens=3
    )

    async def collect():
        return [e async for e in OfflineProvider().stream(request)]

    events = asyncio.run(collect())
    assert len([e for e in events if isinstance(e, str)]) == 3
    assert events[-2] == Finish("length")


def test_offline_stream_honours_stop_and_refuses_what_it_cannot_do():
    grounding = Grounding(status="no_identifier")

    async def collect(request):
        return [e async for e in OfflineProvider().stream(request)]

    stopped = GenerationRequest(
        upstream_model="offline", messages=[Message("user", "hi")], grounding=grounding, stop=("client id",)
    )
    events = asyncio.run(collect(stopped))
    text = "".join(e for e in events if isinstance(e, str))
    assert "client id" not in text and text.rstrip().endswith("e-mail,")
    assert events[-2] == Finish("stop")
    for field, request in (
        ("tools", GenerationRequest("offline", [Message("user", "hi")], tools=(Tool("f"),))),
        (
            "response_format",
            GenerationRequest("offline", [Message("user", "hi")], response_format=ResponseFormat("json_object")),
        ),
    ):
        try:
            asyncio.run(collect(request))
        except InvalidArgument as fault:
            assert fault.field == field
        else:
            raise AssertionError(f"{field} was accepted")
