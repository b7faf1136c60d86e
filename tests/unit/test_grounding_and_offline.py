"""The router's facts and the offline provider's answers: only values that
are in the records, and an honest answer when there are none."""

import asyncio
import json

import orjson
import pytest

from bench.offline_answers import grounding_of, sample_customers
from services.llm_gateway.providers.events import GenerationRequest, Grounding
from services.llm_gateway.providers.offline import OfflineProvider, compose_answer, requested_topics
from services.router.grounding import AMBIGUOUS, FOUND, NOT_FOUND, CustomerGrounding, ambiguous, found
from services.router.peers.customer_data import profile_of
from services.router.ports import CustomerMatch
from services.runtime.conversation import Fact, Finish, Message, ResponseFormat, Tool, ToolChoice, Usage
from services.runtime.faults import InvalidArgument
from services.runtime.field_policy import FieldPolicy, PolicyError
from services.runtime.topics import TOPIC_NAMES
from services.tilores_data.credit_report import assess, bureau_summaries
from services.tilores_data.customer360 import build_customer360
from services.tilores_data.sample import generate_customers
from services.tilores_data.store import EntityView
from services.tilores_data.wire import credit_report_message, customer360_message


def _demo_records():
    return next(iter(generate_customers(1))).records


def _view(customer) -> tuple:
    view = EntityView(customer.entity_id, customer.records, [])
    summaries = bureau_summaries(customer.records)
    return (
        customer360_message(build_customer360(view)),
        credit_report_message(customer.entity_id, summaries, assess(summaries)),
    )


def _demo_grounding():
    profile = profile_of(*_view(next(iter(generate_customers(1)))))
    return found("email edwina.hawthorne@example.com", profile.customer_name, profile.facts())


def _as_provider_grounding(grounding) -> Grounding:
    return Grounding(
        status=grounding.status,
        query=grounding.query,
        customer_name=grounding.customer_name,
        facts=tuple(Fact(f.topic, f.label, f.value, f.record_id) for f in grounding.facts),
    )


def _match(customer) -> CustomerMatch:
    return CustomerMatch(customer.entity_id, tuple(orjson.dumps(r).decode() for r in customer.records))


def test_facts_come_from_the_360_view_with_their_record_ids():
    records = _demo_records()
    grounding = _demo_grounding()
    assert grounding.customer_name == "Edwina Hawthorne"
    by_label = {f.label: f for f in grounding.facts}
    assert by_label["Account status"].value == "Active"
    assert by_label["Account status"].record_id == records[0]["id"]
    scores = {f.label.split()[0]: f.value for f in grounding.facts if " credit score" in f.label}
    assert scores == {"TransUnion": "712", "Equifax": "705", "Experian": "698"}
    record_ids = {r["id"] for r in records}
    assert all(f.record_id in record_ids for f in grounding.facts)
    assert by_label["Date of birth"].pii_kind == "date_of_birth"
    # Only the topics answers are organised by.
    assert {f.topic for f in grounding.facts} == set(TOPIC_NAMES)


def test_grounding_states():
    assert (
        CustomerGrounding(NOT_FOUND, "email x@example.com")
        .text()
        .endswith("There is no customer data for this question.")
    )
    one = _demo_grounding()
    assert one.status == FOUND and "Edwina Hawthorne" in one.text()
    customers = list(generate_customers(3))
    many = ambiguous("name Ada Abbott", [_match(c).summary() for c in customers[:2]])
    assert many.status == AMBIGUOUS
    text = many.text()
    assert "Candidate 1" in text and "Candidate 2" in text and "client id 2480135" in text


def test_context_is_trimmed_to_fit_least_needed_topics_first():
    grounding = _demo_grounding()
    whole = grounding.text()
    short = grounding.text(max_chars=len(whole) // 2)
    assert len(short) <= len(whole) // 2
    assert "Account status: Active" in short and "credit score" in short  # identity, status and credit stay
    assert "Call at" not in short and "left out to fit the model's context window" in short


def test_field_policy_masks_what_a_provider_may_not_see():
    policy = FieldPolicy.bundled()
    grounding = _demo_grounding()
    cloud = policy.apply(grounding.facts, policy.allowed(["openai", "offline"]))
    birth = next(f for f in cloud if f.label == "Date of birth")
    assert birth.value == "[withheld: date of birth]" and birth.record_id
    assert next(f for f in cloud if f.label == "Mailing street").value != "[withheld: address]"
    local = policy.apply(grounding.facts, policy.allowed(["offline"]))
    assert next(f for f in local if f.label == "Date of birth").value == "1984-06-12"
    # A provider the policy does not know sees none of it.
    assert policy.allowed(["some_new_provider"]) == frozenset()


def test_field_policy_is_configuration_checked_by_name():
    policy = FieldPolicy.from_yaml("providers:\n  openai: [date_of_birth]\ndefault: []\n")
    assert policy.allowed(["openai"]) == {"date_of_birth"}
    with pytest.raises(PolicyError, match=r"providers\.openai: unknown kind 'dob'"):
        FieldPolicy.from_yaml("providers:\n  openai: [dob]\n")


def test_requested_topics_match_whole_words():
    assert requested_topics("What is the status and credit score?") == ["status", "credit"]
    assert requested_topics("and her last payment?") == ["billing"]
    assert requested_topics("because of the mortgage") == ["status", "credit", "billing"]


def _request(question: str, grounding) -> GenerationRequest:
    return GenerationRequest(upstream_model="offline", messages=[Message("user", question)], grounding=grounding)


def test_offline_answer_states_only_facts_and_cites_records():
    grounding = _as_provider_grounding(_demo_grounding())
    answer = compose_answer(_request("What is the status and credit score of edwina.hawthorne@example.com?", grounding))
    assert answer.startswith("Offline answer")
    assert "Edwina Hawthorne" in answer and "Active" in answer and "712" in answer
    numbers = {token.strip(".;,()[]%:") for token in answer.split() if any(ch.isdigit() for ch in token)}
    # Every number in the answer is one a fact states (in its value or its label).
    stated = {
        token.strip(".;,()[]%:")
        for f in grounding.facts
        for token in f"{f.label} {f.value} {f.record_id}".split()
        if any(ch.isdigit() for ch in token)
    }
    assert numbers <= stated


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
    by_email = Tool("lookup", parameters={"type": "object", "properties": {"email": {"type": "string"}},
                                          "required": ["email"]})  # fmt: skip
    needs_score = {"type": "object", "properties": {"credit_score": {"type": "integer"}}, "required": ["credit_score"]}
    for field, request in (
        (
            "tools[0].function.parameters.email",
            GenerationRequest(
                "offline", [Message("user", "hi")], tools=(by_email,), tool_choice=ToolChoice("required")
            ),
        ),
        (
            "response_format.json_schema.schema.credit_score",
            GenerationRequest(
                "offline",
                [Message("user", "hi")],
                response_format=ResponseFormat("json_schema", {"name": "s", "schema": needs_score}),
            ),
        ),
    ):
        try:
            asyncio.run(collect(request))
        except InvalidArgument as fault:
            assert fault.field == field
        else:
            raise AssertionError(f"{field} was accepted")
    # Offered a tool it cannot fill, with tool_choice auto: it answers in words.
    events = asyncio.run(collect(GenerationRequest("offline", [Message("user", "hi")], tools=(by_email,))))
    assert "e-mail" in "".join(e for e in events if isinstance(e, str)) and events[-2] == Finish("stop")


def test_offline_answers_a_json_object_from_the_facts_only():
    grounding = Grounding(
        status="found",
        query="email e@example.com",
        customer_name="Edwina Hawthorne",
        facts=(
            Fact("identity", "Name", "Edwina Hawthorne", "003A"),
            Fact("credit", "TransUnion credit score", "712", "TU-1"),
            Fact("billing", "Last approved payment date", "2026-10-01", "T-9"),
        ),
    )
    request = GenerationRequest(
        "offline",
        [Message("user", "What is her credit score? Answer in JSON.")],
        response_format=ResponseFormat("json_object"),
        grounding=grounding,
    )

    async def collect():
        return [e async for e in OfflineProvider().stream(request)]

    events = asyncio.run(collect())
    pieces = [e for e in events if isinstance(e, str)]
    answer = json.loads("".join(pieces))
    assert len(pieces) > 5  # streams in pieces like any answer
    assert answer["customer"] == "Edwina Hawthorne" and answer["status"] == "found"
    assert answer["source"].startswith("offline")
    assert {"topic": "credit", "label": "TransUnion credit score", "value": "712", "record_id": "TU-1"} in answer[
        "facts"
    ]
    assert all(f["topic"] != "billing" for f in answer["facts"])  # not asked about
    assert "712" in answer["answer"]


def _with(customers, predicate):
    return next(c for c in customers if predicate(c.records))


def _offline(customer, question: str) -> str:
    profile = profile_of(*_view(customer))
    grounding = _as_provider_grounding(found("x", profile.customer_name, profile.facts()))
    return compose_answer(GenerationRequest(upstream_model="offline", messages=[Message("user", question)],
                                            grounding=grounding))  # fmt: skip


def test_the_answer_names_the_items_a_count_stands_for_newest_first():
    customers = list(generate_customers(60))

    def failed(records):
        return [r for r in records if r.get("SOURCE") == "Transaction" and r.get("RESPONSE_STATUS") == "Declined"]

    def still_open(records):
        return [r for r in records if r.get("SOURCE") == "zoho_tickets" and r.get("ZOHO_STATUS") == "Open"]

    payer = _with(customers, lambda records: len(failed(records)) >= 1)
    answer = _offline(payer, "Has she had any failed payments?")
    newest = max(failed(payer.records), key=lambda r: r["TRANSACTION_CREATED_DATE"])
    assert f"Failed payment on {newest['TRANSACTION_CREATED_DATE']}: {newest['TRANSACTION_AMOUNT']}" in answer
    charges = [r for r in payer.records if r.get("SOURCE") == "Transaction"]
    approved = [r for r in charges if r.get("RESPONSE_STATUS") == "Approved"]
    whole = _offline(payer, "How many payments did she make?")
    assert f"Approved payments: {len(approved)} of {len(charges)} charges" in whole
    assert "Payments on file" not in whole
    holder = _with(customers, lambda records: len(still_open(records)) >= 1)
    answer = _offline(holder, "Does she have open tickets?")
    for ticket in still_open(holder.records):
        assert f"Open ticket {ticket['TICKETNUMBER']}: {ticket['SUBJECT']}, Open" in answer
    last = max((r for r in holder.records if r.get("SOURCE") == "zoho_tickets"), key=lambda r: r["CREATEDTIME"])
    answer = _offline(holder, "What was her last ticket about and is it still open?")
    assert f"Last ticket: {last['TICKETNUMBER']}: {last['SUBJECT']}, {last['ZOHO_STATUS']}" in answer


def test_credit_counts_come_with_the_inquiries_and_the_late_accounts():
    edwina = next(iter(generate_customers(1)))
    answer = _offline(edwina, "How many credit inquiries does she have, and any late payments?")
    reports = [r["CREDIT_RESPONSE"] for r in edwina.records if isinstance(r.get("CREDIT_RESPONSE"), dict)]
    newest = {}
    for report in sorted(reports, key=lambda r: r["CreditReportFirstIssuedDate"]):
        newest[report["CREDIT_BUREAU"]] = report  # the newest of each bureau, last
    for bureau, report in newest.items():
        for inquiry in report.get("CREDIT_INQUIRY") or ():
            assert f"{bureau} inquiry on {inquiry['Date']}: {inquiry['Name']}, {inquiry['PurposeType']}" in answer
        for account in report["CREDIT_LIABILITY"]:
            lates = "/".join(account["LateCount"][k] for k in ("Days30", "Days60", "Days90"))
            if lates != "0/0/0":
                creditor = account["Creditor"]["Name"]
                assert f"{bureau} late payments on {creditor} (30/60/90 days): {lates}" in answer, (creditor, answer)


def test_link_counts_come_with_the_links_they_stand_for_newest_first():
    edwina = sample_customers(1)[0]
    grounding = grounding_of(edwina, "email edwina.hawthorne@example.com")
    facts = {f.label: f.value for f in grounding.facts}
    dates = {str(r["id"]): str(r.get("TRANSACTION_CREATED_DATE") or r.get("CALL_START_TIME") or r.get("CREATEDTIME")
                                or r.get("CREATED_DATE") or "") for r in edwina.records}  # fmt: skip
    by_email = [e.split(":") for e in edwina.edges if e.endswith(":R1EXACT")]
    assert f"same e-mail ({len(by_email)})" in facts["Records linked by"]
    shown = facts["Linked by same e-mail"]
    assert shown.endswith(f", … {len(by_email)} links in all")
    newest = max(max(dates[a], dates[b]) for a, b, _ in by_email)
    first = shown.split(", ")[0]  # "Transaction 9016… with zoho_tickets 4112…"
    a, b = first.split(" ")[1], first.split(" ")[-1]
    assert max(dates[a], dates[b]) == newest and [a, b, "R1EXACT"] in by_email
    answer = _offline_grounded(grounding, "How are her records linked?")
    assert f"Linked by same e-mail: {shown}" in answer


def _offline_grounded(grounding, question: str) -> str:
    return compose_answer(GenerationRequest(upstream_model="offline", messages=[Message("user", question)],
                                            grounding=_as_provider_grounding(grounding)))  # fmt: skip
