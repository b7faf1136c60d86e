"""Grounding: the facts of a chat turn and the context text a model sees.

Facts come from tilores_data's Customer 360 view and credit report, each
with the id of the record it came from and its kind of personal data; the
router adds nothing the data does not say. The text is trimmed to fit the
model's context window, least needed topics first, and says so."""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson
from tilores_x.v1 import common_pb2, tilores_data_pb2

from services.runtime.conversation import Fact

FOUND = "found"
NOT_FOUND = "not_found"
AMBIGUOUS = "ambiguous"
NO_IDENTIFIER = "no_identifier"
UNAVAILABLE = "unavailable"
MAX_CANDIDATES = 10

# 360 sections -> the fact topics answers are organised by.
TOPIC_OF_SECTION = {"enrollment": "status", "transactions": "billing", "relationships": "identity"}
# When the context must be shortened, facts of the later topics go first.
TOPIC_PRIORITY = ("identity", "status", "credit", "billing", "contact", "tickets", "calls")


@dataclass
class CustomerGrounding:
    status: str
    query: str = ""
    customer_name: str = ""
    facts: list[Fact] = field(default_factory=list)

    def text(self, max_chars: int | None = None) -> str:
        """The context block for the system prompt, at most `max_chars`."""
        if self.status == FOUND:
            header = f"Customer data from Tilores (lookup by {self.query}). Customer: {self.customer_name}."
            return _fit(
                header, self.facts, max_chars, lambda f: f"- [{f.topic}] {f.label}: {f.value} (record {f.record_id})"
            )
        if self.status == NOT_FOUND:
            return f"Tilores lookup by {self.query}: no customer matches. There is no customer data for this question."
        if self.status == AMBIGUOUS:
            header = f"Tilores lookup by {self.query}: several customers match. Ask which one is meant."
            return _fit(header, self.facts, max_chars, lambda f: f"- {f.label}: {f.value} (record {f.record_id})")
        if self.status == UNAVAILABLE:
            return f"Tilores lookup by {self.query} failed: customer data is unavailable right now."
        return "No customer identifier was given, so no customer data was looked up."


def _fit(header: str, facts: list[Fact], max_chars: int | None, line) -> str:
    kept = list(facts)
    text = "\n".join([header, *map(line, kept)])
    if max_chars is None or len(text) <= max_chars:
        return text
    rank = {topic: n for n, topic in enumerate(TOPIC_PRIORITY)}
    # Drop the last fact of the least needed topic until the text fits.
    while kept and len(text) > max_chars:
        victim = max(range(len(kept)), key=lambda i: (rank.get(kept[i].topic, len(rank)), i))
        kept.pop(victim)
        omitted = len(facts) - len(kept)
        note = f"({omitted} more facts are on file but left out to fit the model's context window.)"
        text = "\n".join([header, *map(line, kept), note])
    return text


def found(
    query: str, view: tilores_data_pb2.GetCustomer360Response, credit: tilores_data_pb2.GetCreditReportResponse
) -> CustomerGrounding:
    facts = [
        Fact(TOPIC_OF_SECTION.get(section.name, section.name), f.label, f.value, f.record_id, f.pii_kind)
        for section in view.sections
        for f in section.facts
    ]
    for advice in credit.assessment.recommendations:
        # Advice is read from one bureau's report: cite that report.
        source = next((b.record_id for b in credit.bureaus if b.bureau in advice), "")
        facts.append(Fact("credit", "Credit advice", advice, source))
    return CustomerGrounding(FOUND, query, view.customer_name, facts)


def _candidate(entity: common_pb2.Entity) -> tuple[str, str]:
    records = [orjson.loads(r.data_json) for r in entity.records]
    contact = next((r for r in records if r.get("FIRST_NAME")), records[0] if records else {})
    name = " ".join(str(contact[k]) for k in ("FIRST_NAME", "LAST_NAME") if contact.get(k))
    parts = [name or "name not on file"]
    for label, key in (("client id", "CLIENT_ID"), ("email", "EMAIL")):
        value = next((r[key] for r in records if r.get(key)), "")
        if value:
            parts.append(f"{label} {value}")
    return ", ".join(parts), str(contact.get("id", ""))


def ambiguous(query: str, entities: list[common_pb2.Entity]) -> CustomerGrounding:
    facts = []
    for n, entity in enumerate(entities[:MAX_CANDIDATES], start=1):
        summary, record_id = _candidate(entity)
        facts.append(Fact("identity", f"Candidate {n}", summary, record_id))
    if len(entities) > MAX_CANDIDATES:
        facts.append(Fact("identity", "More candidates", f"{len(entities) - MAX_CANDIDATES} more match", ""))
    return CustomerGrounding(AMBIGUOUS, query, facts=facts)
