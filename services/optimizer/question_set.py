"""QuestionSet: agent-style questions over real customers, each with the
values a right answer states, computed here from the customer's raw records
and links — by code of its own, not by the Customer 360 view or the credit
report under test — so an evaluation can find where those are wrong.

Seven spectrums (the seed's): identity, financial/credit, contact,
transactions, relationships, risk, behaviour/interactions; every identifier
kind (e-mail, client id, phone, Salesforce contact id, name); and customers
that do not exist, whose right answer is that no customer matches.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from services.optimizer.claims import DATE, EMAIL, NUMBER, PHONE, SERIES, values_of

SPECTRUMS = (
    "identity",
    "financial/credit",
    "contact",
    "transactions",
    "relationships",
    "risk",
    "behaviour/interactions",
)
IDENTIFIER_KINDS = ("email", "client_id", "phone", "contact_id", "name")
TEXT = "text"
# FICO ranges as lenders publish them: (floor, band, risk level).
FICO = ((800, "Exceptional", "Very Low"), (740, "Very Good", "Low"), (670, "Good", "Moderate"),
        (580, "Fair", "High"), (300, "Poor", "Very High"))  # fmt: skip
# Figures an answer may state that are about the scales, not the customer:
# the late-payment buckets, the utilization guideline, the FICO range edges.
DOMAIN_CONSTANTS = {(SERIES, "30/60/90"), (NUMBER, "30")} | {
    (NUMBER, str(n)) for n in (300, 579, 580, 669, 670, 739, 740, 799, 800, 850)
}
RULE_NAMES = {"R1EXACT": "e-mail", "R2EXACT": "client id", "R3PHONE": "phone", "R4RECORD": "record id"}


@dataclass(frozen=True)
class Expected:
    """One value a right answer states: (kind, normalised value) as the
    claims module reads it, or TEXT for words compared case-insensitively."""

    what: str
    kind: str
    value: str


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    spectrum: str
    identifier_kind: str  # one of IDENTIFIER_KINDS, or "unknown" for a customer that does not exist
    entity_id: str  # "" for a customer that does not exist
    expected: tuple[Expected, ...]
    # A follow-up: the user's earlier messages, each asked and answered in
    # turn before `text`, which alone is graded.
    earlier: tuple[str, ...] = ()

    @property
    def expects_customer(self) -> bool:
        return bool(self.entity_id)


@dataclass(frozen=True)
class CustomerRecords:
    """A customer as Tilores holds it: the entity's records and its links
    (edges "recordA:recordB:RULE")."""

    entity_id: str
    records: tuple[dict[str, Any], ...]
    edges: tuple[str, ...] = ()


class Truth:
    """What the raw records say, computed directly."""

    def __init__(self, customer: CustomerRecords):
        records = list(customer.records)
        self.entity_id = customer.entity_id
        self.records = records
        self.edges = customer.edges
        by = Counter(str(r.get("SOURCE") or "unknown") for r in records)
        self.sources = by
        plain = [r for r in records if r.get("SOURCE") == "Contact" and "CREDIT_RESPONSE" not in r]
        self.contact = next((r for r in plain if str(r.get("id", "")).startswith("003")), plain[0] if plain else {})
        c = self.contact
        self.name = " ".join(str(c[k]) for k in ("FIRST_NAME", "LAST_NAME") if c.get(k))
        self.email = str(c.get("EMAIL") or "")
        self.client_id = str(c.get("CLIENT_ID") or "")
        self.phone = str(c.get("PHONE_NUMBER") or "")
        self.contact_id = str(c.get("id") or "") if str(c.get("id", "")).startswith("003") else ""
        charges = sorted(
            (r for r in records if r.get("SOURCE") == "Transaction"), key=lambda r: str(r["TRANSACTION_CREATED_DATE"])
        )
        self.charges = charges
        approved = [r for r in charges if str(r.get("RESPONSE_STATUS")).lower() == "approved"]
        self.approved = approved
        self.last_paid = approved[-1] if approved else None
        self.failed = [r for r in charges if str(r.get("RESPONSE_STATUS")).lower() in ("declined", "failed")]
        self.next_payment = next(
            (str(r["NEXT_TRANSACTION_DATE"]) for r in reversed(charges) if r.get("NEXT_TRANSACTION_DATE")), ""
        )
        self.calls = sorted((r for r in records if r.get("SOURCE") == "calls"), key=lambda r: str(r["CALL_START_TIME"]))
        self.tickets = [r for r in records if r.get("SOURCE") == "zoho_tickets"]
        self.open_tickets = [t for t in self.tickets if str(t.get("ZOHO_STATUS")).lower() == "open"]
        reports: dict[str, list[dict[str, Any]]] = {}
        for r in records:
            if isinstance(r.get("CREDIT_RESPONSE"), dict):
                report = r["CREDIT_RESPONSE"]
                reports.setdefault(report["CREDIT_BUREAU"], []).append(report)
        self.reports = {b: sorted(rs, key=lambda x: x["CreditReportFirstIssuedDate"]) for b, rs in reports.items()}

    def latest_score(self, bureau: str) -> int:
        return int(self.reports[bureau][-1]["CREDIT_SCORE"][0]["Value"])

    def band(self) -> tuple[int, str, str] | None:
        if not self.reports:
            return None
        lowest = min(self.latest_score(b) for b in self.reports)
        _floor, band, risk = next(f for f in FICO if lowest >= f[0])
        return lowest, band, risk

    def utilization(self, bureau: str) -> str:
        data = self.reports[bureau][-1]["CREDIT_SUMMARY"]["DATA_SET"]
        return next(str(d["Value"]) for d in data if d["ID"] == "PT016")

    def lates(self, bureau: str) -> str:
        totals = [0, 0, 0]
        for liability in self.reports[bureau][-1].get("CREDIT_LIABILITY", ()):
            counts = liability.get("LateCount") or {}
            for n, key in enumerate(("Days30", "Days60", "Days90")):
                totals[n] += int(counts.get(key) or 0)
        return "/".join(map(str, totals))

    def inquiries(self, bureau: str) -> int:
        return len(self.reports[bureau][-1].get("CREDIT_INQUIRY") or ())

    def newest_inquiry(self, bureau: str) -> str:
        """The date of the newest inquiry on the newest report ("" without)."""
        return max((str(i["Date"]) for i in self.reports[bureau][-1].get("CREDIT_INQUIRY") or ()), default="")

    def late_creditors(self, bureau: str) -> list[str]:
        """The creditors of the accounts with late payments on the newest report."""
        return [
            str(liability["Creditor"]["Name"])
            for liability in self.reports[bureau][-1].get("CREDIT_LIABILITY", ())
            if any(int((liability.get("LateCount") or {}).get(k) or 0) for k in ("Days30", "Days60", "Days90"))
        ]

    def rules(self) -> Counter[str]:
        return Counter(edge.rsplit(":", 1)[-1].split("_", 1)[0] for edge in self.edges)

    def newest_link(self, rule: str) -> tuple[str, str]:
        """The two records of the rule's link between the newest records."""
        keys = ("TRANSACTION_CREATED_DATE", "CALL_START_TIME", "CREATEDTIME", "CREATED_DATE")
        dated = {str(r.get("id")): str(next((r[k] for k in keys if r.get(k)), "")) for r in self.records}
        links = [e.split(":")[:2] for e in self.edges if e.rsplit(":", 1)[-1].split("_", 1)[0] == rule]
        a, b = max(links, key=lambda pair: (max(dated.get(pair[0], ""), dated.get(pair[1], "")), pair))
        return a, b

    def age(self) -> str:
        return str(self.contact.get("CUSTOMER_AGE") or "")


def _e(what: str, kind: str, value: object) -> Expected:
    return Expected(what, kind, str(value))


def _number(what: str, value: object) -> Expected:
    (kind, normal), *_ = values_of(str(value)) or {(NUMBER, str(value))}
    return Expected(what, kind, normal)


# Each template: spectrum, phrasings ({who} is the customer's identifier),
# and the expected values from the truth; None when the customer has no
# data for it (the template is then not asked of that customer).
Template = tuple[str, tuple[str, ...], Callable[[Truth], list[Expected] | None]]


def _scores(t: Truth) -> list[Expected] | None:
    return [_number(f"{b} score", t.latest_score(b)) for b in sorted(t.reports)] or None


def _bureau_scores(bureau: str) -> Callable[[Truth], list[Expected] | None]:
    return lambda t: [_number(f"{bureau} score", t.latest_score(bureau))] if bureau in t.reports else None


def _utilization(t: Truth) -> list[Expected] | None:
    return [_number(f"{b} utilization", t.utilization(b)) for b in sorted(t.reports)] or None


def _trend(t: Truth) -> list[Expected] | None:
    out = []
    for b, reports in sorted(t.reports.items()):
        if len(reports) > 1:
            change = int(reports[-1]["CREDIT_SCORE"][0]["Value"]) - int(reports[-2]["CREDIT_SCORE"][0]["Value"])
            out.append(_number(f"{b} change", change))
    return out or None


def _band(t: Truth) -> list[Expected] | None:
    band = t.band()
    return [_e("band", TEXT, band[1]), _number("lowest score", band[0])] if band else None


def _risk(t: Truth) -> list[Expected] | None:
    band = t.band()
    return [_e("risk level", TEXT, band[2])] if band else None


def _lates(t: Truth) -> list[Expected] | None:
    """Per bureau the counts, and which accounts they are on."""
    counts = [_e(f"{b} lates", SERIES, t.lates(b)) for b in sorted(t.reports)]
    accounts = [_e(f"{b} late account", TEXT, c) for b in sorted(t.reports) for c in t.late_creditors(b)]
    return [*counts, *accounts] or None


def _inquiries(t: Truth) -> list[Expected] | None:
    """Per bureau the count, and the newest inquiry's date."""
    counts = [_number(f"{b} inquiries", t.inquiries(b)) for b in sorted(t.reports)]
    newest = [_e(f"{b} newest inquiry", DATE, t.newest_inquiry(b)) for b in sorted(t.reports) if t.newest_inquiry(b)]
    return [*counts, *newest] or None


def _last_payment(t: Truth) -> list[Expected] | None:
    if t.last_paid is None:
        return None
    return [
        _e("last payment date", DATE, t.last_paid["TRANSACTION_CREATED_DATE"]),
        _number("last payment amount", t.last_paid["TRANSACTION_AMOUNT"]),
    ]


def _next_payment(t: Truth) -> list[Expected] | None:
    return [_e("next payment date", DATE, t.next_payment)] if t.next_payment else None


def _fee(t: Truth) -> list[Expected] | None:
    fee = t.contact.get("RECURRING_MONTHLY_FEE")
    return [_number("monthly fee", fee)] if fee else None


def _failed(t: Truth) -> list[Expected] | None:
    """How many, and (when any) the newest: its date and amount."""
    if not t.charges:
        return None
    newest = [_e("last failed payment date", DATE, t.failed[-1]["TRANSACTION_CREATED_DATE"])] if t.failed else []
    return [_number("failed payments", len(t.failed)), *newest]


def _balance(t: Truth) -> list[Expected] | None:
    due = t.contact.get("NET_BALANCE_DUE")
    return [_number("balance due", due)] if due is not None else None


def _calls(t: Truth) -> list[Expected] | None:
    if not t.calls:
        return None
    return [_number("calls", len(t.calls))]


def _last_call(t: Truth) -> list[Expected] | None:
    if not t.calls:
        return None
    return [_e("last call", DATE, str(t.calls[-1]["CALL_START_TIME"])[:10])]


def _tickets(t: Truth) -> list[Expected] | None:
    return [_number("tickets", len(t.tickets))] if t.tickets else None


def _open_tickets(t: Truth) -> list[Expected] | None:
    """How many, and which: each open ticket's number and subject."""
    if not t.tickets:
        return None
    which = [
        e for ticket in t.open_tickets for e in (_number("open ticket", ticket["TICKETNUMBER"]),
                                                  _e("open ticket subject", TEXT, ticket["SUBJECT"]))
    ]  # fmt: skip
    return [_number("open tickets", len(t.open_tickets)), *which]


def _last_ticket(t: Truth) -> list[Expected] | None:
    """The newest ticket's subject and whether it is still open."""
    if not t.tickets:
        return None
    last = max(t.tickets, key=lambda r: str(r.get("CREATEDTIME") or ""))
    return [_e("last ticket subject", TEXT, last["SUBJECT"]), _e("last ticket status", TEXT, last["ZOHO_STATUS"])]


def _records(t: Truth) -> list[Expected] | None:
    return [_number("records", len(t.records))] + [
        _number(f"{source} records", n) for source, n in sorted(t.sources.items())
    ]


def _links(t: Truth) -> list[Expected] | None:
    rules = t.rules()
    if not rules:
        return None
    expected = []
    for rule, n in sorted(rules.items()):
        expected.append(_number(f"links by {RULE_NAMES.get(rule, rule)}", n))
        # The items behind the count: the newest link's two records.
        expected += [_record(f"newest {RULE_NAMES.get(rule, rule)} link", r) for r in t.newest_link(rule)]
    return expected


def _record(what: str, record_id: str) -> Expected:
    (kind, value), *_ = values_of(record_id) or {(TEXT, record_id)}
    return Expected(what, kind, value)


def _status(t: Truth) -> list[Expected] | None:
    c = t.contact
    return [_e("status", TEXT, c["STATUS"]), _e("product", TEXT, c["CURRENT_PRODUCT"])] if c.get("STATUS") else None


def _enrolled(t: Truth) -> list[Expected] | None:
    enrolled = t.contact.get("ENROLL_DATE")
    return [_e("enrolled on", DATE, enrolled)] if enrolled else None


def _birth(t: Truth) -> list[Expected] | None:
    born = t.contact.get("DATE_OF_BIRTH")
    return [_e("date of birth", DATE, born)] if born else None


def _age(t: Truth) -> list[Expected] | None:
    return [_number("age", t.age())] if t.age() else None


def _client_id(t: Truth) -> list[Expected] | None:
    return [_number("client id", t.client_id)] if t.client_id else None


def _email(t: Truth) -> list[Expected] | None:
    return [_e("email", EMAIL, t.email.lower())] if t.email else None


def _phone(t: Truth) -> list[Expected] | None:
    digits = "".join(ch for ch in t.phone if ch.isdigit())[-10:]
    return [_e("phone", PHONE, digits)] if digits else None


def _address(t: Truth) -> list[Expected] | None:
    c = t.contact
    if not c.get("MAILING_CITY"):
        return None
    return [_e("city", TEXT, c["MAILING_CITY"]), _number("postal code", c.get("MAILING_POSTAL_CODE", ""))]


def _since(t: Truth) -> list[Expected] | None:
    created = sorted(str(r["CREATED_DATE"]) for r in t.records if r.get("CREATED_DATE"))
    return [_e("customer since", DATE, created[0])] if created else None


TEMPLATES: tuple[Template, ...] = (
    ("identity", ("Who is {who}?", "What is the name on file for {who}?"), lambda t: [_e("name", TEXT, t.name)]),
    ("identity", ("What is the date of birth of {who}?", "When was {who} born?"), _birth),
    ("identity", ("How old is {who}?", "What age is {who}?"), _age),
    ("identity", ("What is the client id of {who}?",), _client_id),
    (
        "identity",
        ("What is the account status of {who}?", "Which product is {who} enrolled in, and is the account active?"),
        _status,
    ),
    ("identity", ("When did {who} enrol?", "When did {who} sign up?"), _enrolled),
    ("identity", ("How long has {who} been a customer?", "Customer since when is {who}?"), _since),
    ("contact", ("What is the e-mail address of {who}?", "Which e-mail do we have for {who}?"), _email),
    ("contact", ("What is the phone number of {who}?", "How can I reach {who} by phone?"), _phone),
    ("contact", ("Where does {who} live?", "What is the mailing address of {who}?"), _address),
    (
        "financial/credit",
        ("What is the credit score of {who}?", "What are the latest bureau scores for {who}?"),
        _scores,
    ),
    ("financial/credit", ("What is the TransUnion score of {who}?",), _bureau_scores("TransUnion")),
    ("financial/credit", ("What does Equifax report as the score of {who}?",), _bureau_scores("Equifax")),
    ("financial/credit", ("What is the Experian score of {who}?",), _bureau_scores("Experian")),
    (
        "financial/credit",
        ("What is the credit utilization of {who}?", "How much of the revolving credit does {who} use?"),
        _utilization,
    ),
    ("financial/credit", ("How has the credit score of {who} changed?", "Is the score of {who} improving?"), _trend),
    ("transactions", ("When was the last payment of {who}?", "What did {who} last pay, and when?"), _last_payment),
    ("transactions", ("When will {who} be charged next?", "When is the next payment of {who} due?"), _next_payment),
    ("transactions", ("How much is {who} billed each month?", "What is the monthly fee of {who}?"), _fee),
    ("transactions", ("Has {who} had any failed payments?", "How many payments of {who} were declined?"), _failed),
    ("transactions", ("What balance does {who} owe?", "What is the balance due for {who}?"), _balance),
    ("relationships", ("How are the records for {who} linked?", "Which rules joined the records of {who}?"), _links),
    (
        "relationships",
        ("Give me a relationship summary for {who}.", "How many records does {who} have, by source?"),
        _records,
    ),
    ("risk", ("What credit band is {who} in?", "How would you rate the credit of {who}?"), _band),
    ("risk", ("What is the risk level of {who}?", "How risky is {who} as a borrower?"), _risk),
    ("risk", ("How many late payments does {who} have on the credit reports?", "Any delinquencies for {who}?"), _lates),
    ("risk", ("How many credit inquiries does {who} have?",), _inquiries),
    (
        "behaviour/interactions",
        ("How many times have we called {who}?", "How many calls are on file for {who}?"),
        _calls,
    ),
    ("behaviour/interactions", ("When did we last speak to {who}?", "When was the last call with {who}?"), _last_call),
    ("behaviour/interactions", ("How many support tickets does {who} have?",), _tickets),
    (
        "behaviour/interactions",
        ("Does {who} have open tickets?", "How many tickets of {who} are still open?"),
        _open_tickets,
    ),
    (
        "behaviour/interactions",
        ("What was the last ticket of {who} about, and is it still open?", "What is the latest ticket of {who}?"),
        _last_ticket,
    ),
)
# Follow-ups, as a conversation goes on: (spectrum, earlier turns, the
# graded question, what it expects of the customer it is about). {who} is
# the customer the earlier turn named; {other} a second customer; {nobody}
# an identifier no customer has.
FOLLOW_UPS: tuple[tuple[str, tuple[str, ...], str, Callable[[Truth], list[Expected] | None], str], ...] = (
    ("transactions", ("What is the credit score of {who}?",), "And when was their last payment?", _last_payment,
     "who"),
    ("behaviour/interactions", ("What is the status of {who}?",), "Do they have open tickets?", _open_tickets,
     "who"),
    ("risk", ("When was the last payment of {who}?",), "What credit band are they in?", _band, "who"),
    ("transactions", ("What is the monthly fee of {who}?",), "What about {other}? When is their next payment due?",
     _next_payment, "other"),
    ("identity", ("What is the status of {nobody}?",), "Sorry, I meant {who}. What is their account status?",
     _status, "who"),
)  # fmt: skip
FOLLOW_UP_SHARE = 0.1
UNKNOWN_TEMPLATES = (
    ("identity", "Who is {who}?"),
    ("financial/credit", "What is the credit score of {who}?"),
    ("contact", "What is the phone number of {who}?"),
    ("transactions", "When was the last payment of {who}?"),
    ("relationships", "How are the records for {who} linked?"),
    ("risk", "What is the risk level of {who}?"),
    ("behaviour/interactions", "How many times have we called {who}?"),
)


def identifier_text(truth: Truth, kind: str) -> str:
    """How an agent names the customer by an identifier kind ("" if the
    customer has none of that kind)."""
    return {
        "email": truth.email,
        "client_id": f"client id {truth.client_id}" if truth.client_id else "",
        "phone": truth.phone,
        "contact_id": f"contact id {truth.contact_id}" if truth.contact_id else "",
        "name": truth.name,
    }[kind]


def build_question_set(
    customers: Sequence[CustomerRecords],
    size: int = 320,
    seed: int = 11,
    unknown_share: float = 0.1,
    ambiguous_names: frozenset[str] = frozenset(),
) -> list[Question]:
    """`size` questions, spread evenly over the spectrums, the customers and
    the identifier kinds; `unknown_share` of them about customers that do
    not exist. Names shared by several customers (`ambiguous_names`) are
    not used as identifiers."""
    if not customers:
        raise ValueError("customers: at least one customer is needed")
    rng = random.Random(seed)
    truths = [Truth(c) for c in customers]
    by_spectrum = {s: [t for t in TEMPLATES if t[0] == s] for s in SPECTRUMS}
    questions: list[Question] = []
    unknown = round(size * unknown_share)
    follow_ups = round(size * FOLLOW_UP_SHARE) if len(truths) > 1 else 0
    attempts = 0
    while len(questions) < size - unknown - follow_ups and attempts < size * 50:
        attempts += 1
        spectrum = SPECTRUMS[len(questions) % len(SPECTRUMS)]
        truth = truths[rng.randrange(len(truths))]
        spectrum_, phrasings, expect = rng.choice(by_spectrum[spectrum])
        expected = expect(truth)
        kind = IDENTIFIER_KINDS[(len(questions) // len(SPECTRUMS)) % len(IDENTIFIER_KINDS)]
        who = identifier_text(truth, kind)
        if not expected or not who or (kind == "name" and who.lower() in ambiguous_names):
            continue
        text = rng.choice(phrasings).format(who=who)
        questions.append(
            Question(f"q{len(questions) + 1:04d}", text, spectrum_, kind, truth.entity_id, tuple(expected))
        )
    questions += _follow_ups(rng, truths, follow_ups, ambiguous_names)
    for n in range(unknown):
        spectrum, phrasing = UNKNOWN_TEMPLATES[n % len(UNKNOWN_TEMPLATES)]
        who = _unknown_identifier(rng, n)
        questions.append(Question(f"u{n + 1:04d}", phrasing.format(who=who), spectrum, "unknown", "", ()))
    return questions


def _follow_ups(rng: random.Random, truths: list[Truth], count: int, ambiguous: frozenset[str]) -> list[Question]:
    """Conversations whose last turn leans on an earlier one: a pronoun
    for the customer named before, a switch to another customer, a
    correction after a customer that does not exist."""
    out: list[Question] = []
    attempts = 0
    while len(out) < count and attempts < count * 50:
        attempts += 1
        spectrum, earlier, final, expect, about = FOLLOW_UPS[len(out) % len(FOLLOW_UPS)]
        first, second = rng.sample(truths, 2)
        kinds = ("email", "client_id")
        who = identifier_text(first, kinds[len(out) % 2])
        other = identifier_text(second, kinds[(len(out) + 1) % 2])
        target = second if about == "other" else first
        expected = expect(target)
        if not expected or not who or not other or who.lower() in ambiguous:
            continue
        names = {"who": who, "other": other, "nobody": _unknown_identifier(rng, 0)}
        out.append(
            Question(
                f"f{len(out) + 1:04d}",
                final.format(**names),
                spectrum,
                kinds[(len(out) + (about == "other")) % 2],
                target.entity_id,
                tuple(expected),
                tuple(turn.format(**names) for turn in earlier),
            )
        )
    return out


def _unknown_identifier(rng: random.Random, n: int) -> str:
    """An identifier no customer has: reserved domains, client ids far
    outside the issued range, unassigned contact ids."""
    kind = n % 3
    if kind == 0:
        return f"nobody.{rng.randrange(10**6)}@example.invalid"
    if kind == 1:
        return f"client id {rng.randrange(90_000_000, 99_999_999)}"
    return f"contact id 003{''.join(rng.choices('ZQXJ', k=15))}"


def truth_values(customer: CustomerRecords) -> set[tuple[str, str]]:
    """Every value the records hold (each scalar, normalised) and every value
    a template expects of the customer: what a true answer may state."""
    values: set[tuple[str, str]] = set()

    def walk(value: object) -> None:
        if isinstance(value, dict):
            counts = value.get("Days30"), value.get("Days60"), value.get("Days90")
            if all(c is not None for c in counts):  # an account's late counts, as a series
                values.update(values_of("/".join(str(c) for c in counts)))
            for inner in value.values():
                walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)
        elif value not in (None, "") and not isinstance(value, bool):
            values.update(values_of(str(value)))

    for record in customer.records:
        walk(record)
    truth = Truth(customer)
    for _spectrum, _phrasings, expect in TEMPLATES:
        for item in expect(truth) or ():
            if item.kind != TEXT:
                values.add((item.kind, item.value))
    values |= {(NUMBER, str(len(truth.approved))), (NUMBER, "0")}
    # Late payments in all, per bureau, as a report's summary line adds them.
    values |= {(NUMBER, str(sum(map(int, truth.lates(b).split("/"))))) for b in truth.reports}
    return values | DOMAIN_CONSTANTS
