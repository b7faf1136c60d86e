"""Deterministic answer quality: four evaluators, each a score 0..1 with a
reason, run on every recorded answer.

groundedness  every figure, date, e-mail and record id the answer states
              appears in what the model was given (the context or the
              question); an unsupported one is named in the reason
coverage      each topic the question asks about (the words of
              services/runtime/topics.py, which the offline model answers
              by) is answered from that topic's facts or said to be not on
              file
refusal       no customer found -> the answer says so; a customer found ->
              it does not claim otherwise
format        not empty, no template placeholder left, not cut short, at
              most 4,000 characters

overall = 0.4 groundedness + 0.3 coverage + 0.2 refusal + 0.1 format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.runtime.conversation import Fact
from services.runtime.topics import TOPIC_WORDS, topics_asked

WEIGHTS = {"groundedness": 0.4, "coverage": 0.3, "refusal": 0.2, "format": 0.1}
MAX_CHARS = 4000
CATEGORIES = ("customer profile", "credit", "transactions/billing", "calls and tickets", "relationships", "general")

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d[\d,]*(?:\.\d+)?%?")
NOT_ON_FILE = re.compile(
    r"\b(not on file|no \w+( \w+)? (is|are) on file|not in the data|no record|unavailable)\b", re.I
)
NOT_FOUND = re.compile(r"\b(no customer matches|not found|could not find|no match|no customer)\b", re.I)


@dataclass(frozen=True)
class Score:
    name: str
    value: float
    reason: str


def category_of(question: str, status: str) -> str:
    """The question category used for rolling quality."""
    if status in ("", "no_identifier"):
        return "general"
    q = question.lower()
    if re.search(r"\b(relationship|linked|related|records? of)\b", q):
        return "relationships"
    if TOPIC_WORDS["credit"].search(q):
        return "credit"
    if TOPIC_WORDS["billing"].search(q):
        return "transactions/billing"
    if TOPIC_WORDS["tickets"].search(q) or TOPIC_WORDS["calls"].search(q):
        return "calls and tickets"
    return "customer profile"


def _claims(answer: str) -> list[str]:
    claims = _EMAIL.findall(answer) + _DATE.findall(answer)
    rest = _DATE.sub(" ", _EMAIL.sub(" ", answer))
    claims += [n.rstrip("%").replace(",", "") for n in _NUMBER.findall(rest)]
    return [c for c in claims if c.strip("+-")]


def groundedness(answer: str, context: str, question: str) -> Score:
    known = f"{context}\n{question}".lower().replace(",", "")
    claims = _claims(answer)
    if not claims:
        return Score("groundedness", 1.0, "states no figures, dates or e-mails")
    unsupported = [c for c in claims if c.lower().lstrip("+") not in known]
    value = 1 - len(unsupported) / len(claims)
    if unsupported:
        return Score("groundedness", value, "not in the context: " + ", ".join(dict.fromkeys(unsupported)))
    return Score("groundedness", value, f"all {len(claims)} figures are in the context")


def coverage(question: str, answer: str, facts: list[Fact]) -> Score:
    asked = topics_asked(question)
    if not asked:
        return Score("coverage", 1.0, "asks about no particular topic")
    missing = []
    for topic in asked:
        values = [f.value for f in facts if f.topic == topic]
        answered = any(v and v in answer for v in values) or NOT_ON_FILE.search(answer)
        if not answered:
            missing.append(topic)
    value = 1 - len(missing) / len(asked)
    reason = "answers " + ", ".join(asked) if not missing else "does not answer " + ", ".join(missing)
    return Score("coverage", value, reason)


def refusal(status: str, answer: str) -> Score:
    says_not_found = bool(NOT_FOUND.search(answer))
    if status == "not_found":
        if says_not_found:
            return Score("refusal", 1.0, "says no customer matches")
        return Score("refusal", 0.0, "no customer matched, but the answer does not say so")
    if status == "found" and says_not_found:
        return Score("refusal", 0.0, "claims no match although the customer was found")
    return Score("refusal", 1.0, "nothing to refuse")


def format_score(answer: str) -> Score:
    problems = []
    if not answer.strip():
        problems.append("empty")
    if "{context}" in answer or re.search(r"\{\w+\}", answer):
        problems.append("a template placeholder is left")
    if len(answer) > MAX_CHARS:
        problems.append(f"longer than {MAX_CHARS} characters")
    if answer.strip() and answer.rstrip()[-1] not in ".!?)]\"'`":
        problems.append("ends mid-sentence")
    value = 1 - len(problems) / 4
    return Score("format", value, "; ".join(problems) or "well formed")


def evaluate(question: str, answer: str, status: str, context: str, facts: list[Fact]) -> tuple[float, list[Score]]:
    scores = [
        groundedness(answer, context, question),
        coverage(question, answer, facts),
        refusal(status, answer),
        format_score(answer),
    ]
    overall = sum(WEIGHTS[s.name] * s.value for s in scores)
    return round(overall, 4), scores
