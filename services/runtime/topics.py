"""The topics a question can ask about, in one word list: the offline model
answers by them and the quality evaluators check coverage by them, so the
two never disagree about what was asked. Whole words only ("case" is not
"because")."""

from __future__ import annotations

import re

TOPIC_WORDS = {
    topic: re.compile(pattern, re.I)
    for topic, pattern in {
        "identity": r"\b(name|who|born|birth\w*|age|profile)\b",
        "contact": r"\b(e-?mail|phone|address|contact|reach|lives?|city)\b",
        "status": r"\b(status|account|active|cancel\w*|enrol\w*|product|plan|subscription)\b",
        "credit": r"\b(credit|scores?|fico|bureaus?|utili[sz]ation|reports?)\b",
        "billing": r"\b(payments?|paid|pay|billing|bill|charges?|transactions?|balance|due|card|fees?)\b",
        "tickets": r"\b(tickets?|support|complaints?|zoho|cases?)\b",
        "calls": r"\b(calls?|called|phoned)\b",
    }.items()
}


def topics_asked(question: str) -> list[str]:
    """The topics a question names, in TOPIC_WORDS order; none for a general one."""
    return [topic for topic, pattern in TOPIC_WORDS.items() if pattern.search(question)]
