"""Offline answers in one process: the sample store, the question set over
its customers, and for each question the facts, the context and the answer
the mesh's own code gives (Customer 360 and credit report as tilores_data
builds them, the router's profile and context, the offline model), without
starting the mesh. The planted-error measurement and its test build on it;
`make eval` asks the running mesh instead.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

from services.llm_gateway.providers.events import GenerationRequest, Grounding
from services.llm_gateway.providers.offline import compose_answer
from services.optimizer.question_set import CustomerRecords, Question, build_question_set
from services.router.grounding import CustomerGrounding, found
from services.router.peers.customer_data import profile_of
from services.runtime.conversation import Fact, Message
from services.tilores_data.credit_report import assess, bureau_summaries
from services.tilores_data.customer360 import build_customer360
from services.tilores_data.seed import seed
from services.tilores_data.store import EmbeddedEntityStore, EntityView
from services.tilores_data.wire import credit_report_message, customer360_message


@dataclass(frozen=True)
class AnsweredQuestion:
    question: Question
    status: str
    context: str
    facts: tuple[Fact, ...]
    answer: str


def sample_customers(count: int, seed_value: int = 7) -> list[CustomerRecords]:
    """The first `count` customers of the sample store, with their links."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "tilores.db")
        seed(path, count, seed_value)
        store = EmbeddedEntityStore(path)
        try:
            views = [store.get_entity_by_record(c["id"]) for c in store.first_contacts(count)]
        finally:
            store.close()
    return [CustomerRecords(v.id, tuple(v.records), tuple(v.edges)) for v in views if v is not None]


def grounding_of(customer: CustomerRecords, query: str) -> CustomerGrounding:
    view = EntityView(customer.entity_id, list(customer.records), list(customer.edges))
    summaries = bureau_summaries(view.records)
    profile = profile_of(
        customer360_message(build_customer360(view)), credit_report_message(view.id, summaries, assess(summaries))
    )
    return found(query, profile.customer_name, profile.facts())


def answer_offline(question: Question, customers: dict[str, CustomerRecords]) -> AnsweredQuestion:
    if question.entity_id:
        grounding = grounding_of(customers[question.entity_id], question.identifier_kind)
    else:
        grounding = CustomerGrounding("not_found", question.text)
    request = GenerationRequest(
        "offline",
        [Message("user", question.text)],
        grounding=Grounding(grounding.status, grounding.query, grounding.customer_name, tuple(grounding.facts)),
    )
    return AnsweredQuestion(
        question, grounding.status, grounding.text(), tuple(grounding.facts), compose_answer(request)
    )


def offline_answers(customer_count: int = 60, questions: int = 350, seed_value: int = 11) -> list[AnsweredQuestion]:
    customers = sample_customers(customer_count)
    names = [" ".join(str(r.get(k, "")) for k in ("FIRST_NAME", "LAST_NAME")).lower() for c in customers
             for r in c.records[:1]]  # fmt: skip
    shared = frozenset(n for n in names if names.count(n) > 1)
    question_set = build_question_set(customers, questions, seed_value, ambiguous_names=shared)
    by_id = {c.entity_id: c for c in customers}
    return [answer_offline(q, by_id) for q in question_set]
