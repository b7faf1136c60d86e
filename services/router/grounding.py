"""CustomerGrounding: the facts of a chat turn and the context text a model
sees. Facts come from tilores_data's Customer 360 view and credit report,
each with the id of the record it came from and its kind of personal data;
the router adds nothing the data does not say. The text is trimmed to fit
the model's context window, least needed topics first, and says so."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from services.runtime.conversation import AMBIGUOUS, FOUND, NO_IDENTIFIER, NOT_FOUND, UNAVAILABLE, Fact

__all__ = ["AMBIGUOUS", "FOUND", "NOT_FOUND", "NO_IDENTIFIER", "UNAVAILABLE", "CustomerGrounding"]
# A conversation about one customer named someone else: refused, nothing shown.
OTHER_CUSTOMER = "other_customer"
MAX_CANDIDATES = 10

# When the context must be shortened, facts of the topics the question asks
# about stay longest; of the others, the later topics here go first.
TOPIC_PRIORITY = ("identity", "status", "credit", "billing", "contact", "tickets", "calls", "relationships", "history")


@dataclass
class CustomerGrounding:
    status: str
    query: str = ""
    customer_name: str = ""
    facts: list[Fact] = field(default_factory=list)

    def text(self, max_chars: int | None = None, asked: Sequence[str] = ()) -> str:
        """The context block for the system prompt, at most `max_chars`;
        when it must be cut, the facts of the `asked` topics go last."""
        if self.status == FOUND:
            header = f"Customer data from Tilores (lookup by {self.query}). Customer: {self.customer_name}."
            return _fit(
                header,
                self.facts,
                max_chars,
                lambda f: f"- [{f.topic}] {f.label}: {f.value}{_cited(f)}",
                asked,
            )
        if self.status == NOT_FOUND:
            return f"Tilores lookup by {self.query}: no customer matches. There is no customer data for this question."
        if self.status == AMBIGUOUS:
            if not self.facts:  # the candidates may not be shown
                return (
                    f"Tilores lookup by {self.query}: several customers match. Ask for the client id or the "
                    "e-mail address on the account."
                )
            header = f"Tilores lookup by {self.query}: several customers match. Ask which one is meant."
            return _fit(header, self.facts, max_chars, lambda f: f"- {f.label}: {f.value}{_cited(f)}")
        if self.status == UNAVAILABLE:
            return f"Tilores lookup by {self.query} failed: customer data is unavailable right now."
        return "No customer identifier was given, so no customer data was looked up."


def _cited(fact: Fact) -> str:
    return f" (record {fact.record_id})" if fact.record_id else ""


def _fit(
    header: str, facts: list[Fact], max_chars: int | None, line: Callable[[Fact], str], asked: Sequence[str] = ()
) -> str:
    kept = list(facts)
    text = "\n".join([header, *map(line, kept)])
    if max_chars is None or len(text) <= max_chars:
        return text
    order = [*asked, *(t for t in TOPIC_PRIORITY if t not in asked)]
    rank = {topic: n for n, topic in enumerate(order)}
    # Drop the last fact of the least needed topic until the text fits.
    while kept and len(text) > max_chars:
        victim = max(range(len(kept)), key=lambda i: (rank.get(kept[i].topic, len(rank)), i))
        kept.pop(victim)
        omitted = len(facts) - len(kept)
        note = f"({omitted} more facts are on file but left out to fit the model's context window.)"
        text = "\n".join([header, *map(line, kept), note])
    return text


def fact_kinds(facts: list[Fact]) -> set[str]:
    """What an access record names of facts: their topics and kinds of
    personal data, never their values."""
    return {f.topic for f in facts} | {f.pii_kind for f in facts if f.pii_kind}


def found(query: str, customer_name: str, facts: list[Fact]) -> CustomerGrounding:
    return CustomerGrounding(FOUND, query, customer_name, facts)


def ambiguous(query: str, candidates: list[tuple[str, str]]) -> CustomerGrounding:
    """Several customers match: each candidate's summary and record, at most
    MAX_CANDIDATES, then how many more."""
    facts = [
        Fact("identity", f"Candidate {n}", summary, record_id)
        for n, (summary, record_id) in enumerate(candidates[:MAX_CANDIDATES], start=1)
    ]
    if len(candidates) > MAX_CANDIDATES:
        facts.append(Fact("identity", "More candidates", f"{len(candidates) - MAX_CANDIDATES} more match", ""))
    return CustomerGrounding(AMBIGUOUS, query, facts=facts)
