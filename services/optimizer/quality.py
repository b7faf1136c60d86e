"""Deterministic answer quality: four evaluators, each a score 0..1 with a
reason, run on every recorded answer.

groundedness  every claim of the answer (figure, amount, date, e-mail,
              phone, identifier: whole normalised values, services/
              optimizer/claims.py) is traced to a record of this customer's
              facts or to the question; a claim cited to a record is
              checked against that record. A changed figure, a shifted
              date, an invented amount or another customer's value is named
              in the reason
coverage      what the question asks for (services/runtime/topics.py) and
              the facts hold is stated in the answer; an omission is named
refusal       no customer found -> the answer says so; a customer found ->
              it does not claim otherwise
format        not empty, no template placeholder left, not cut short, at
              most 4,000 characters

overall = 0.4 groundedness + 0.3 coverage + 0.2 refusal + 0.1 format, and
an answer with an error in any of the first three scores at most 0.80: one
wrong figure or one omission puts it below the critical level (0.85), so
rolling quality, alerts and the improvement cycle see it.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from functools import lru_cache

import re2

from services.optimizer.claims import IDENTIFIER, NUMBER, SERIES, Claim, claims_of, values_of
from services.runtime.conversation import FOUND, NO_IDENTIFIER, NOT_FOUND, Fact
from services.runtime.limits import read_edges
from services.runtime.topics import label_matches, labels_asked, topics_asked

WEIGHTS = {"groundedness": 0.4, "coverage": 0.3, "refusal": 0.2, "format": 0.1}
ERROR_CEILING = 0.80
MAX_CHARS = 4000
QUALITY_CATEGORIES = (
    "customer profile",
    "credit",
    "transactions/billing",
    "calls and tickets",
    "relationships",
    "general",
)
CATEGORY_OF_TOPIC = {
    "relationships": "relationships",
    "history": "relationships",
    "credit": "credit",
    "billing": "transactions/billing",
    "tickets": "calls and tickets",
    "calls": "calls and tickets",
}

NOT_ON_FILE = re.compile(
    r"\b(not on file|no \w+( \w+)? (is|are) on file|not in the data|no record|unavailable)\b", re.I
)
SAYS_NO_MATCH = re.compile(r"\b(no customer matches|not found|could not find|no match|no customer)\b", re.I)
_CITATION = re.compile(r"[\[(]records? ([\w, ]+?)[\])]", re.I)
_WITHHELD = re.compile(r"withheld", re.I)


@dataclass(frozen=True)
class Score:
    name: str
    value: float
    reason: str


def category_of(question: str, status: str) -> str:
    """The question category used for rolling quality: the first topic
    asked, in the order of CATEGORY_OF_TOPIC."""
    if status in ("", NO_IDENTIFIER):
        return "general"
    asked = set(topics_asked(question))
    return next((category for topic, category in CATEGORY_OF_TOPIC.items() if topic in asked), "customer profile")


_SEGMENT = re.compile(r"[.;!?](?=\s|$)|\n")
# Label words too common to tell one fact from another.
_GENERIC = {"credit", "score", "scores", "report", "date", "with", "from", "since", "that", "this", "the", "days"}
_WORD = re.compile(r"[a-z]{3,}")
# An e-mail address or a figure in a fact's value (record text: RE2, linear).
_ADDRESS_OR_FIGURE = re2.compile(r"[\w.+-]+@\S+|\d\S*")
_LIST_SEPARATOR = re.compile(r"[,\s]+")
_PLACEHOLDER = re.compile(r"\{\w+\}")


def _keywords(label: str) -> set[str]:
    return set(_singular(w for w in _WORD.findall(label.lower()) if w not in _GENERIC))


def _match(keywords: frozenset[str] | set[str], words: frozenset[str] | set[str]) -> float:
    """How well a sentence names a fact: the share of its label's words in it."""
    return len(keywords & words) / len(keywords) if keywords else 0.0


def _segments(answer: str) -> list[tuple[int, int]]:
    """Sentence and list-item spans: where a claim and its label sit."""
    cuts = [0, *(m.end() for m in _SEGMENT.finditer(answer)), len(answer)]
    return [(a, b) for a, b in itertools.pairwise(cuts) if b > a]


@dataclass(frozen=True)
class _FactValues:
    fact: Fact
    values: frozenset[tuple[str, str]]
    keywords: frozenset[str]
    # What a sentence must hold to state the fact (see _stated), read once.
    stated: frozenset[tuple[str, str]]
    words: frozenset[str]
    head: frozenset[str]


def _indexed(facts: Sequence[Fact]) -> list[_FactValues]:
    return [_fact_values(f) for f in facts]


@lru_cache(maxsize=20_000)
def _record_values(record_id: str) -> frozenset[tuple[str, str]]:
    return frozenset(values_of(record_id))


# A customer's facts come back turn after turn: each is read into values once.
@lru_cache(maxsize=20_000)
def _fact_values(fact: Fact) -> _FactValues:
    values = values_of(f"{fact.label}: {fact.value}")
    stated = values_of(fact.value) - {(IDENTIFIER, fact.record_id), (NUMBER, fact.record_id)}
    if _ITEM.search(fact.label):
        stated |= values_of(fact.label)  # an item's date or number is in its label: "Refund on 2026-10-26"
    # The words a sentence must say: all of a short value's ("Inbound",
    # "Active"); of a long one (a ticket's subject, status, category and
    # priority) its first phrase and at least half of the rest.
    words = _value_words(fact.value)
    head = _value_words(fact.value.split(",", 1)[0])
    return _FactValues(
        fact,
        frozenset(values | _parts(values)),
        frozenset(_keywords(fact.label)),
        frozenset(stated),
        frozenset(words),
        frozenset(head),
    )


def _parts(values: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """A series' figures one by one: "2/1/0" late payments are also "two
    30 days late, one 60 days late" in a sentence."""
    return {(NUMBER, part) for kind, value in values if kind == SERIES for part in value.split("/")}


def groundedness(answer: str, facts: Sequence[Fact], question: str, tool_results: Sequence[str] = ()) -> Score:
    """Each claim traced to a fact: the fact its sentence names (by its
    label's words) where it names one, of the record it cites where it
    cites one, else any fact of this customer; or to the question, or to
    what the caller's own tools returned."""
    indexed = _indexed(facts)
    anywhere = set().union(*(f.values for f in indexed)) if indexed else set()
    from_question = values_of(read_edges(question)).union(*(values_of(read_edges(r)) for r in tool_results))
    record_ids = set().union(*(_record_values(f.record_id) for f in facts if f.record_id))
    citations = [
        (m.start(), m.end(), set(_LIST_SEPARATOR.split(m.group(1).strip()))) for m in _CITATION.finditer(answer)
    ]
    claims = claims_of(answer)
    if not claims:
        return Score("groundedness", 1.0, "states no figures, dates or identifiers")
    segments = _segments(answer)
    problems: list[str] = []
    words_of: dict[int, set[str]] = {}  # per sentence, read once
    for claim in claims:
        key = (claim.kind, claim.value)
        if any(start <= claim.start < end for start, end, _ in citations):
            if key not in record_ids:
                problems.append(f"cites record {claim.text}, which is not among this customer's records")
            continue
        if key in from_question:
            continue
        if key not in anywhere:
            problems.append(f"{claim.text} is not in this customer's records")
            continue
        start, end = next(((a, b) for a, b in segments if a <= claim.start < b), (0, len(answer)))
        cited = set().union(*(ids for s, _e, ids in citations if start <= s < end))
        if start not in words_of:
            words_of[start] = set(_singular(_WORD.findall(answer[start:end].lower())))
        problem = _against_sentence(claim, answer[start:end], start, words_of[start], indexed, cited)
        if problem:
            problems.append(problem)
    value = 1 - len(problems) / len(claims)
    if problems:
        return Score("groundedness", round(value, 4), "; ".join(dict.fromkeys(problems)))
    return Score("groundedness", 1.0, f"all {len(claims)} claims are traced to records")


def _against_sentence(
    claim: Claim, segment: str, start: int, words: set[str], indexed: list[_FactValues], cited: set[str]
) -> str:
    """What is wrong with a claim of this customer's values, read in its
    sentence (`words`, singular) and the records it cites; "" if nothing."""
    key = (claim.kind, claim.value)
    candidates = [f for f in indexed if not cited or f.fact.record_id in cited]
    scored = [(f, _match(f.keywords, words)) for f in candidates]
    best = max((score for _, score in scored), default=0.0)
    # The facts the sentence names: "last payment of $79 on October 26"
    # names both the date and the amount of the last payment.
    named = [f for f, score in scored if best > 0 and score >= best / 2]
    closest = [f for f, score in scored if best > 0 and score == best]
    if not any(kind == claim.kind for f in named for kind, _ in f.values):
        named = []  # "call Ida at 214-555-0000": the calls hold no phone number; the sentence names no phone
    near = _near(segment, claim.start - start, claim.text)
    fully = [f for f in closest if len(f.keywords) > 1 and f.keywords <= near]
    nearly = [f for f in named if 3 * len(f.keywords & near) >= 2 * len(f.keywords)]
    if fully and not any(key in f.values for f in (*closest, *nearly)):
        # The sentence names one fact best and the words next to the figure
        # name it outright ("3 tickets on file"): it must be that fact's (or
        # one the words next to it nearly name: "last payment of $79 was
        # approved" is the amount's), whatever else the sentence holds.
        return f"{claim.text} is not what the records say of {fully[0].fact.label}"
    if named and (not any(key in f.values for f in named) or _repeated_beyond(claim, segment, start, closest)):
        return f"{claim.text} is not what the records say of {closest[0].fact.label}"
    if not named and not any(key in f.values for f in candidates):
        return f"{claim.text} is not what record {', '.join(sorted(cited))} says"
    return ""


_NEAR_WORDS = 4  # words either side of a figure that name what it is
_LIST_ITEM = re.compile(r"[,;()]")


def _near(segment: str, at: int, text: str) -> frozenset[str]:
    """The words just before and after a claim in its list item, singular."""
    before = _LIST_ITEM.split(segment[:at].lower())[-1]
    after = _LIST_ITEM.split(segment[at + len(text) :].lower())[0]
    return _singular(_WORD.findall(before)[-_NEAR_WORDS:] + _WORD.findall(after)[:_NEAR_WORDS])


def _singular(words: Iterable[str]) -> frozenset[str]:
    return frozenset(w[:-3] + "y" if w.endswith("ies") else w.removesuffix("s") for w in words)


@lru_cache(maxsize=20_000)
def _held(value: str) -> Counter[tuple[str, str]]:
    """How often a fact's value holds each of its values (read only)."""
    return Counter((c.kind, c.value) for c in claims_of(value))


def _repeated_beyond(claim: Claim, segment: str, start: int, named: list[_FactValues]) -> bool:
    """In a sentence naming one composite fact ("Contact 7, Opportunity 1,
    calls 2"), a value stated more often than the fact holds it is a
    changed one."""
    if len(named) != 1:
        return False
    held = _held(named[0].fact.value)
    if sum(held.values()) < 3:
        return False
    key = (claim.kind, claim.value)
    said = [c for c in claims_of(segment) if (c.kind, c.value) == key]
    # Only the occurrences beyond what the fact holds are wrong.
    return len(said) > held[key] and said[-1].start + start == claim.start


@dataclass(frozen=True)
class _Sentence:
    """A segment of the answer as _stated reads it, read once per answer."""

    text: str  # lower case
    values: set[tuple[str, str]]
    said: set[str]
    named: frozenset[str]


def _sentences(answer: str, segments: list[tuple[int, int]]) -> list[_Sentence]:
    read = []
    for start, end in segments:
        segment = answer[start:end]
        said = set(_WORD.findall(segment.lower()))
        read.append(_Sentence(segment.lower(), values_of(segment), said, _singular(said)))
    return read


def _stated(fact: _FactValues, sentences: list[_Sentence], indexed: list[_FactValues]) -> bool:
    """A sentence of the answer holds the fact's values (and its words
    beyond them) and names it at least as well as any other fact holding
    those values ("Open tickets: 2" does not state "Tickets on file: 2")."""
    f, values, words, head = fact.fact, fact.stated, fact.words, fact.head
    rivals = [r for r in indexed if r is not fact and values and values <= r.values]
    for sentence in sentences:
        if values and not _holds(sentence.values, values):
            continue
        if not values and f.value.lower() not in sentence.text:
            continue
        said = sentence.said
        if not (words <= said or (head <= said and 2 * len(words & said) >= len(words))):
            continue
        mine = _match(fact.keywords, sentence.named)
        if not values and len(words) < 2 and fact.keywords and not mine:
            continue  # one word said of something else ("Active: yes" is not "Account status: Active")
        if any(_match(r.keywords, sentence.named) > mine for r in rivals):
            continue
        return True
    return False


_ITEM = re.compile(r"(?: on | at |icket )\d")


def _value_words(value: str) -> set[str]:
    return set(_WORD.findall(_ADDRESS_OR_FIGURE.sub(" ", value.lower())))


def _holds(said: AbstractSet[tuple[str, str]], values: AbstractSet[tuple[str, str]]) -> bool:
    """A sentence states these values: each as written, or a series by
    its figures other than 0 ("two 30 days late, one 60 days late, none
    90 days late" states 2/1/0)."""
    for kind, value in values:
        if (kind, value) in said:
            continue
        if kind != SERIES or not all((NUMBER, part) in said for part in value.split("/") if part != "0"):
            return False
    return True


def coverage(question: str, answer: str, facts: Sequence[Fact], context: str = "") -> Score:
    """What the question asks for and the facts hold must be stated."""
    asked = labels_asked(question)
    if not asked:
        return Score("coverage", 1.0, "asks about no particular topic")
    sentences = _sentences(answer, _segments(answer))
    indexed = {id(f): values for f, values in zip(facts, _indexed(facts), strict=True)}
    everything = list(indexed.values())
    missing: list[str] = []
    wanted = 0
    for topic, patterns in asked.items():
        matching = [f for f in facts if f.topic == topic and any(label_matches(p, f.label) for p in patterns)]
        needed = [f for f in matching if not _WITHHELD.search(f.value) and (not context or f.label in context)]
        if matching and not needed:
            continue  # withheld from this model by the field policy, or cut to fit its window
        wanted += max(1, len(needed))
        if not needed:
            if not NOT_ON_FILE.search(answer):
                missing.append(f"that no {topic} data is on file")
            continue
        missing += [f.label for f in needed if not _stated(indexed[id(f)], sentences, everything)]
    if not wanted:
        return Score("coverage", 1.0, "the records hold nothing the question asks for")
    value = max(0.0, 1 - len(missing) / wanted)
    if missing:
        return Score("coverage", round(value, 4), "leaves out " + ", ".join(dict.fromkeys(missing)))
    return Score("coverage", 1.0, "states what was asked: " + ", ".join(asked))


def refusal(status: str, answer: str) -> Score:
    says_not_found = bool(SAYS_NO_MATCH.search(answer))
    if status == NOT_FOUND:
        if says_not_found:
            return Score("refusal", 1.0, "says no customer matches")
        return Score("refusal", 0.0, "no customer matched, but the answer does not say so")
    if status == FOUND and says_not_found:
        return Score("refusal", 0.0, "claims no match although the customer was found")
    return Score("refusal", 1.0, "nothing to refuse")


def format_score(answer: str) -> Score:
    problems = []
    if not answer.strip():
        problems.append("empty")
    if "{context}" in answer or _PLACEHOLDER.search(answer):
        problems.append("a template placeholder is left")
    if len(answer) > MAX_CHARS:
        problems.append(f"longer than {MAX_CHARS} characters")
    if answer.strip() and answer.rstrip()[-1] not in ".!?)]\"'`":
        problems.append("ends mid-sentence")
    value = 1 - len(problems) / 4
    return Score("format", value, "; ".join(problems) or "well formed")


# The scorer reads an answer's first 64 KiB (about 16,000 tokens, past any
# answer a chat turn asks for): each claim costs microseconds, and an
# outcome recorded over gRPC may carry megabytes.
MAX_SCORED_ANSWER_CHARS = 65_536


def evaluate(
    question: str, answer: str, status: str, context: str, facts: list[Fact], tool_results: Sequence[str] = ()
) -> tuple[float, list[Score]]:
    answer = answer[:MAX_SCORED_ANSWER_CHARS]
    found = status == FOUND
    scores = [
        groundedness(answer, facts, question, tool_results),
        coverage(question, answer, facts, context) if found else Score("coverage", 1.0, "no customer data to cover"),
        refusal(status, answer),
        format_score(answer),
    ]
    overall = sum(WEIGHTS[s.name] * s.value for s in scores)
    if any(s.value < 1 for s in scores if s.name != "format"):
        overall = min(overall, ERROR_CEILING)
    return round(overall, 4), scores
