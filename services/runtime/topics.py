"""What a question asks for, defined once: the offline model answers by it,
the quality scorer checks coverage by it and the optimizer groups quality
by it, so the three never disagree about what was asked.

A question names topics (broad: "billing") and asks (narrow: "when is the
next charge"). Each names the facts an answer must state: an ask its own
facts, a topic asked about broadly its headline facts. Facts are named by
their labels in the Customer 360 view (services/tilores_data/customer360.py).
Whole words only ("case" is not "because"), and the customer's identifier
is taken out first: "contact id 003…" asks nothing about contact details.

Questions are user text of any length: a long one is read in its edges
(limits.read_edges), every pattern here is RE2 (time linear in the text, no
backtracking), and the topics' and asks' words are one RE2 set, so a
question is read once for all of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import re2

from services.runtime.limits import read_edges


@dataclass(frozen=True)
class Topic:
    name: str
    title: str
    words: str  # an RE2 pattern, matched case-insensitively as whole words
    # Label patterns (matched from the label's start) of the facts a broad
    # question about the topic must be answered with.
    headline: tuple[str, ...]


@dataclass(frozen=True)
class Ask:
    topic: str
    words: str  # an RE2 pattern, as Topic.words
    labels: tuple[str, ...]


def _words(pattern: str) -> str:
    return rf"\b(?:{pattern})\b"


BUREAU_SCORE = r"(?:TransUnion|Equifax|Experian) credit score"

TOPICS = (
    Topic(
        "identity",
        "Identity",
        _words(r"name|who|born|birth\w*|dob|age|old|profile|identity|language|licen[cs]e|kyc"),
        ("Name$", "Client ID$"),
    ),
    Topic(
        "contact",
        "Contact",
        _words(r"e-?mail|phones?|address|contact details|reach|lives?|city|zip|postal|mailing|street"),
        ("Email$", "Phone$"),
    ),
    Topic(
        "status",
        "Account",
        _words(
            r"status|account|active|cancel\w*|enrol\w*|product|plan|subscri\w*|signed up|stage|kyc|verified|"
            r"member|program"
        ),
        ("Account status$", "Product$"),
    ),
    Topic(
        "credit",
        "Credit",
        _words(
            r"credit|scores?|fico|bureaus?|transunion|equifax|experian|utili[sz]ation|reports?|inquir\w*|"
            r"late payments?|lates|delinquen\w*|risk\w*|band|rating|creditworth\w*|trend|improv\w*"
        ),
        (BUREAU_SCORE, "Credit band"),
    ),
    Topic(
        "billing",
        "Billing",
        _words(
            r"payments?|paid|pay|paying|billing|bill|billed|charges?|charged|transactions?|balance|due|owe\w*|"
            r"cards?|fees?|refund\w*|invoice\w*|monthly|each month|per month|cost|price|declined|failed"
        ),
        (
            "Last approved payment date$",
            "Last approved payment amount$",
            "Next payment date$",
            "Monthly fee$",
            "Net balance due$",
        ),
    ),
    Topic(
        "tickets",
        "Support tickets",
        _words(r"tickets?|support|complain\w*|zoho|cases?|issues?|requests?"),
        ("Tickets on file$", "Open tickets$"),
    ),
    Topic(
        "calls",
        "Calls",
        _words(r"calls?|called|calling|phoned|rang|speak|spoke|spoken|talk|talked|conversations?|interactions?"),
        ("Calls on file$", "Last call$"),
    ),
    Topic(
        "relationships",
        "Records and links",
        _words(
            r"relationships?|linked|links?|related|connected|merged?|joined|duplicates?|sources?|resolved|matched|"
            r"entity|how many records|number of records"
        ),
        ("Records on file$", "Records in all$", "Records linked by$"),
    ),
    Topic(
        "history",
        "History",
        _words(
            r"history|timeline|since when|how long|customer since|first (?:charge|payment|record|contact)|tenure|"
            r"activity|been with us"
        ),
        ("Customer since$", "Last activity$"),
    ),
)
TOPIC_NAMES = tuple(t.name for t in TOPICS)
TOPIC_BY_NAME = {t.name: t for t in TOPICS}

ASKS = (
    Ask("billing", _words(r"next (?:payment|charge|bill\w*|due)|charged next|be (?:charged|billed)|next due"),
        ("Next payment date$",)),
    Ask("billing", _words(r"monthly|each month|per month|a month|fee|subscription cost|how much .* (?:billed|charged)"),
        ("Monthly fee$",)),
    Ask("billing", _words(r"last (?:payment|paid|charge)|(?:latest|recent) payment|last (?:time )?\w+ paid|last pay"),
        ("Last approved payment date$", "Last approved payment amount$")),
    Ask("billing", _words(r"fail\w*|declined|bounced|missed payments?"), ("Failed payments$", "Failed payment on ")),
    Ask("billing", _words(r"refund\w*"), ("Refunds$", "Refund on ")),
    Ask("billing", _words(r"how many payments|number of payments|payments? count"), ("Approved payments$",)),
    Ask("billing", _words(r"balance|owe\w*|outstanding|amount due"), ("Net balance due$",)),
    Ask("billing", _words(r"card|payment method|pay with|pays? by"), ("Payment method$", "Payment card$")),
    Ask("calls", _words(r"how many (?:times|calls)|number of calls|calls? count|count of calls|how often"),
        ("Calls on file$",)),
    Ask("calls", _words(r"(?:last|latest|recent) call|last (?:speak|spoke|talk\w*)|when did we (?:call|speak|talk)"),
        ("Last call$",)),
    Ask("tickets", _words(r"how many (?:\w+ )?tickets|number of (?:\w+ )?tickets|tickets? count"),
        ("Tickets on file$",)),
    Ask("tickets", _words(r"open tickets?|unresolved|still open|pending tickets?"), ("Open tickets$", "Open ticket ")),
    Ask("tickets", _words(r"(?:last|latest|recent|newest) (?:\w+ )?tickets?|tickets? (?:was |is )?about"),
        ("Last ticket$",)),
    Ask("credit", _words(r"utili[sz]ation"), (r"\w+ revolving utilization$",)),
    Ask("credit", _words(r"late payments?|lates|delinquen\w*|missed"), (r"\w+ late payments",)),
    Ask("credit", _words(r"inquir\w*"), (r"\w+ inquiries$", r"\w+ inquiry on ")),
    Ask("credit", _words(r"band|risk\w*|rating|creditworth\w*"), ("Credit band", "Credit risk level$")),
    Ask("credit", _words(r"trend|change[ds]?|improv\w*|went (?:up|down)|moved"), (r"\w+ score change",)),
    Ask("credit", _words(r"scores?|fico"), (BUREAU_SCORE,)),
    Ask("credit", _words(r"transunion"), ("TransUnion credit score",)),
    Ask("credit", _words(r"equifax"), ("Equifax credit score",)),
    Ask("credit", _words(r"experian"), ("Experian credit score",)),
    Ask("identity", _words(r"born|birth\w*|dob"), ("Date of birth$",)),
    Ask("identity", _words(r"age|how old"), ("Age$",)),
    Ask("identity", _words(r"client id|customer number|contact id|salesforce id"),
        ("Client ID$", "Salesforce contact id$")),
    Ask("identity", _words(r"language"), ("Language$",)),
    Ask("contact", _words(r"e-?mail"), ("Email$",)),
    Ask("contact", _words(r"phones?|mobile|cell"), ("Phone$",)),
    Ask("contact", _words(r"address|lives?|city|zip|postal|mailing|street"),
        ("Mailing street$", "Mailing city$", "Mailing state$", "Mailing postal code$")),
    Ask("status", _words(r"enrol\w*|signed up|joined"), ("Enrolled on$",)),
    Ask("status", _words(r"cancel\w*"), ("Account status$", "Cancelled on$", "Cancel reason$")),
    Ask("status", _words(r"product|plan|program"), ("Product$",)),
    Ask("relationships", _words(r"how many records|number of records|records? count|sources?"),
        ("Records on file$", "Records in all$")),
    Ask("relationships", _words(r"linked|links?|joined|connected|merged?|matched|rules?"),
        ("Records linked by$", "Linked by ", "Records on file$")),
)  # fmt: skip

# The customer's identifier is not part of the question's subject.
_IDENTIFIER = re2.compile(
    r"(?i)(?:\be-?mail(?: address)?(?: is|:)\s*)?[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
    r"|\b(?:client|contact|customer|record|salesforce|entity)(?: contact)? (?:id|number)\b[:#]?\s*\S*\d\S*"
    r"|\b(?:phone(?: number)?|number|tel)\b[:#]?\s*[+\d(][\d()\s.+-]{6,}"
    r"|[+(]?\d[\d()\s.-]{6,}\d"
)


def _word_set(patterns: list[str]) -> re2.Set:
    options = re2.Options()
    options.case_sensitive = False
    words = re2.Set.SearchSet(options)
    for pattern in patterns:
        words.Add(pattern)
    words.Compile()
    return words


# Index i < len(TOPICS) is TOPICS[i]; the rest are ASKS in order.
_WORDS = _word_set([t.words for t in TOPICS] + [a.words for a in ASKS])


def subject_of(question: str) -> str:
    """The question (its edges, if it is long) without the identifier of the
    customer it is about."""
    subject: str = _IDENTIFIER.sub(" ", read_edges(question))
    return subject


def _asked(question: str) -> tuple[set[str], list[Ask]]:
    """The topics a question names (by their own words or an ask of theirs),
    and the asks it makes, in ASKS order."""
    hits = sorted(_WORDS.Match(subject_of(question)) or ())
    asks = [ASKS[i - len(TOPICS)] for i in hits if i >= len(TOPICS)]
    topics = {TOPICS[i].name for i in hits if i < len(TOPICS)} | {a.topic for a in asks}
    return topics, asks


def topics_asked(question: str) -> list[str]:
    """The topics a question names, in TOPICS order; none for a general one."""
    named, _ = _asked(question)
    return [name for name in TOPIC_NAMES if name in named]


def labels_asked(question: str) -> dict[str, tuple[str, ...]]:
    """Per topic asked, the label patterns of the facts that answer it: the
    narrow asks' facts where the question is narrow, else the headline."""
    named, asks = _asked(question)
    out: dict[str, tuple[str, ...]] = {}
    for name in TOPIC_NAMES:
        if name in named:
            narrow = [label for a in asks if a.topic == name for label in a.labels]
            out[name] = tuple(dict.fromkeys(narrow)) or TOPIC_BY_NAME[name].headline
    return out


def label_matches(pattern: str, label: str) -> bool:
    """Whether a fact's label (the product's own vocabulary, never user
    text) matches a label pattern from its start."""
    return re.match(pattern, label) is not None
