"""The evaluation's question set: follow-up conversations whose last turn
leans on an earlier one, with what they expect of the customer they end
up about."""

from __future__ import annotations

from services.optimizer.question_set import CustomerRecords, Truth, build_question_set, identifier_text
from services.tilores_data.sample import generate_customers

CUSTOMERS = [CustomerRecords(c.entity_id, tuple(c.records)) for c in generate_customers(40)]
TRUTH = {c.entity_id: Truth(c) for c in CUSTOMERS}


def test_a_tenth_of_the_set_are_follow_ups_of_each_kind():
    questions = build_question_set(CUSTOMERS, 320)
    follow_ups = [q for q in questions if q.earlier]
    assert len(questions) == 320 and len(follow_ups) == 32
    finals = {q.text.split("?")[0].split(". ")[-1] for q in follow_ups}
    assert "And when was their last payment" in finals and "What is their account status" in finals
    for question in follow_ups:
        assert question.expected and question.entity_id in TRUTH
        named = identifier_text(TRUTH[question.entity_id], question.identifier_kind)
        # The customer is named in the earlier turn, or (a switch, a
        # correction) in the last one; a pronoun follow-up names nobody.
        assert named in question.text or named in question.earlier[0], question


def test_a_switch_expects_the_second_customer_and_a_correction_the_one_meant():
    questions = build_question_set(CUSTOMERS, 320)
    switch = next(q for q in questions if q.text.startswith("What about "))
    meant = next(q for q in questions if q.text.startswith("Sorry, I meant "))
    assert identifier_text(TRUTH[switch.entity_id], switch.identifier_kind) in switch.text
    assert identifier_text(TRUTH[switch.entity_id], switch.identifier_kind) not in switch.earlier[0]
    assert "example.invalid" in meant.earlier[0] and meant.expected[0].what == "status"
