"""Customer 360: one structured, LLM-ready view of an entity. Every value is
copied from a record (normalised forms are labelled as such) and carries
that record's id, so an answer can cite it; a value that is not on file is
simply absent, never filled in.

Sections, in order: identity, contact, status, enrollment, billing,
transactions, calls, tickets, relationships, history, credit. Counts (calls,
tickets, failed payments, records) are stated as facts of their own, so an
answer to "how many" is a value on file, not a model's arithmetic.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from services.runtime.conversation import Fact
from services.tilores_data import normalize
from services.tilores_data.credit_report import INSUFFICIENT_DATA, assess, bureau_summaries
from services.tilores_data.entity_quality import consistency
from services.tilores_data.field_catalog import pii_kind
from services.tilores_data.store import EntityView

SECTIONS = (
    "identity", "contact", "status", "enrollment", "billing", "transactions", "calls", "tickets",
    "relationships", "history", "credit",
)  # fmt: skip
RECENT_TRANSACTIONS = 6
RECENT_CALLS = 5
RECENT_TICKETS = 10
# The profile fields completeness is measured on.
PROFILE_FIELDS = (
    "FIRST_NAME", "LAST_NAME", "EMAIL", "PHONE_NUMBER", "CLIENT_ID", "DATE_OF_BIRTH", "MAILING_STREET",
    "MAILING_CITY", "MAILING_STATE", "MAILING_POSTAL_CODE", "STATUS", "CURRENT_PRODUCT", "ENROLL_DATE",
)  # fmt: skip
FAILED_RESULTS = {"declined", "failed", "error", "rejected"}
REFUND_TYPES = {"refund", "chargeback", "credit"}
OPEN_TICKET = {"open", "on hold", "escalated", "pending"}
RULE_REASONS = {
    "R1EXACT": "same e-mail",
    "R2EXACT": "same client id",
    "R3PHONE": "same phone number",
    "R4RECORD": "same record id",
    "R5NAME": "same name and date of birth or postal code",
}


@dataclass
class Insights:
    primary_identifier: str = ""
    has_email: bool = False
    has_phone: bool = False
    has_financial_data: bool = False
    completeness_percent: float = 0.0
    consistency: float = 1.0
    data_quality: float = 0.0
    pii_kinds: list[str] = field(default_factory=list)


@dataclass
class Customer360:
    entity_id: str
    customer_name: str
    sections: dict[str, list[Fact]]
    insights: Insights


class _Section:
    def __init__(self, name: str):
        self.name = name
        self.facts: list[Fact] = []

    def add(self, label: str, record: dict[str, Any] | None, key: str, *, pii: str | None = None) -> None:
        if record is None:
            return
        value = record.get(key)
        if value in (None, ""):
            return
        text = ("yes" if value else "no") if isinstance(value, bool) else str(value)
        self.facts.append(
            Fact(self.name, label, text, str(record.get("id", "")), pii_kind(key) if pii is None else pii)
        )

    def value(self, label: str, value: str, record: dict[str, Any], pii: str = "") -> None:
        if value:
            self.facts.append(Fact(self.name, label, value, str(record.get("id", "")), pii))


def _first_with(records: list[dict[str, Any]], key: str, prefer_source: str = "Contact") -> dict[str, Any] | None:
    preferred = [r for r in records if r.get("SOURCE") == prefer_source and r.get(key) not in (None, "")]
    return preferred[0] if preferred else next((r for r in records if r.get(key) not in (None, "")), None)


def _by(records: list[dict[str, Any]], source: str, date_key: str) -> list[dict[str, Any]]:
    return sorted((r for r in records if r.get("SOURCE") == source), key=lambda r: str(r.get(date_key) or ""))


def build_customer360(view: EntityView) -> Customer360:
    records = view.records
    sections = {name: _Section(name) for name in SECTIONS}
    first = _first_with(records, "FIRST_NAME")
    name_parts = [str(first.get(k)) for k in ("FIRST_NAME", "LAST_NAME") if first and first.get(k)]
    customer_name = normalize.person_name(" ".join(name_parts)) if name_parts else ""
    _identity(records, sections["identity"], first, customer_name)
    _contact(records, sections["contact"])
    _status(records, sections["status"], sections["enrollment"])
    _billing(records, sections["billing"], sections["transactions"])
    _calls_and_tickets(records, sections["calls"], sections["tickets"])
    _relationships(view, sections["relationships"])
    _history(records, sections["history"])
    summaries = _credit(records, sections["credit"])
    insights = _insights(records, sections, summaries)
    return Customer360(
        entity_id=view.id,
        customer_name=customer_name,
        sections={name: s.facts for name, s in sections.items() if s.facts},
        insights=insights,
    )


def _identity(
    records: list[dict[str, Any]], identity: _Section, first: dict[str, Any] | None, customer_name: str
) -> None:
    if first is not None and customer_name:
        identity.value("Name", customer_name, first)
    identity.add("Client ID", _first_with(records, "CLIENT_ID"), "CLIENT_ID")
    contact_record = next((r for r in records if str(r.get("id", "")).startswith("003")), None)
    if contact_record is not None:
        identity.value("Salesforce contact id", str(contact_record["id"]), contact_record)
    identity.add("Date of birth", _first_with(records, "DATE_OF_BIRTH"), "DATE_OF_BIRTH")
    identity.add("Age", _first_with(records, "CUSTOMER_AGE"), "CUSTOMER_AGE")
    identity.add("Language", _first_with(records, "LANGUAGE"), "LANGUAGE")
    identity.add("Driving licence number", _first_with(records, "DRIVING_LICENSE_NUMBER"), "DRIVING_LICENSE_NUMBER")


def _contact(records: list[dict[str, Any]], contact: _Section) -> None:
    email_record = _first_with(records, "EMAIL")
    if email_record is not None:
        contact.value("Email", normalize.email(email_record["EMAIL"]), email_record)
    phone_record = _first_with(records, "PHONE_NUMBER") or _first_with(records, "PHONE_EXTERNAL", "calls")
    if phone_record is not None:
        raw = phone_record.get("PHONE_NUMBER") or phone_record.get("PHONE_EXTERNAL")
        contact.value("Phone", str(raw), phone_record)
        contact.value("Phone (E.164)", normalize.phone_e164(str(raw)), phone_record)
    for label, key in (
        ("Mailing street", "MAILING_STREET"),
        ("Mailing city", "MAILING_CITY"),
        ("Mailing state", "MAILING_STATE"),
        ("Mailing postal code", "MAILING_POSTAL_CODE"),
    ):
        contact.add(label, _first_with(records, key), key)


def _status(records: list[dict[str, Any]], status: _Section, enrollment: _Section) -> None:
    for label, key in (
        ("Account status", "STATUS"),
        ("Product", "CURRENT_PRODUCT"),
        ("Product type", "CURRENT_PRODUCT_TYPE"),
        ("Active", "ACTIVE"),
        ("Sales stage", "STAGE_NAME"),
        ("KYC status", "KYC_STATUS"),
        ("Cancelled on", "CANCEL_DATE"),
        ("Cancel reason", "CANCEL_REASON"),
    ):
        status.add(label, _first_with(records, key), key)

    for label, key in (
        ("Enrolled on", "ENROLL_DATE"),
        ("Days since enrollment", "DAYS_SINCE_ENROLL"),
        ("Re-enrolled on", "RE_ENROLL_DATE"),
        ("Next subscription date", "NEXT_SUBSCRIPTION_DATE"),
        ("Enrollment balance", "ENROLLMENT_BALANCE"),
        ("Contract signed", "CONTRACT_SIGNED"),
    ):
        enrollment.add(label, _first_with(records, key), key)


def _billing(records: list[dict[str, Any]], billing: _Section, transactions: _Section) -> None:
    charges = _by(records, "Transaction", "TRANSACTION_CREATED_DATE")
    billing.add("Monthly fee", _first_with(records, "RECURRING_MONTHLY_FEE"), "RECURRING_MONTHLY_FEE")
    billing.add("Net balance due", _first_with(records, "NET_BALANCE_DUE"), "NET_BALANCE_DUE")
    approved = [c for c in charges if str(c.get("RESPONSE_STATUS", "")).lower() == "approved"]
    failed = [c for c in charges if str(c.get("RESPONSE_STATUS", "")).lower() in FAILED_RESULTS]
    if approved:
        billing.add("Last approved payment date", approved[-1], "TRANSACTION_CREATED_DATE")
        billing.add("Last approved payment amount", approved[-1], "TRANSACTION_AMOUNT")
    if failed:
        billing.add("Last failed payment date", failed[-1], "TRANSACTION_CREATED_DATE")
        billing.add("Last failed payment amount", failed[-1], "TRANSACTION_AMOUNT")
    billing.add(
        "Next payment date",
        _first_with(list(reversed(charges)), "NEXT_TRANSACTION_DATE", "Transaction"),
        "NEXT_TRANSACTION_DATE",
    )
    billing.add(
        "Payment method", _first_with(list(reversed(charges)), "PAYMENT_METHOD", "Transaction"), "PAYMENT_METHOD"
    )
    if charges:
        refunds = [c for c in charges if str(c.get("TYPE", "")).lower() in REFUND_TYPES]
        # What is counted, said in the label: approved payments of all charges.
        billing.value("Approved payments", f"{len(approved)} of {len(charges)} charges", charges[-1])
        billing.value("Failed payments", str(len(failed)), failed[-1] if failed else charges[-1])
        billing.value("Refunds", str(len(refunds)), refunds[-1] if refunds else charges[-1])
        # The items behind the counts, newest first: a person asking "any
        # failed payments?" wants when and how much, not only how many.
        for label, items in (("Failed payment", failed), ("Refund", refunds)):
            for charge in reversed(items[-RECENT_TRANSACTIONS:]):
                billing.value(
                    f"{label} on {charge.get('TRANSACTION_CREATED_DATE', 'unknown date')}", _charge(charge), charge
                )
    card = next((c for c in reversed(charges) if c.get("CARD_TYPE") and c.get("CARD_LAST_4")), None)
    if card is not None:
        billing.value("Payment card", f"{card['CARD_TYPE']} ending {card['CARD_LAST_4']}", card)

    for charge in reversed(charges[-RECENT_TRANSACTIONS:]):
        transactions.value(
            f"Charge on {charge.get('TRANSACTION_CREATED_DATE', 'unknown date')}", _charge(charge), charge
        )


def _charge(charge: dict[str, Any]) -> str:
    """`49.99, Declined, Recurring`: a charge's amount, result and type."""
    return ", ".join(str(charge[k]) for k in ("TRANSACTION_AMOUNT", "RESPONSE_STATUS", "TYPE") if charge.get(k))


def _calls_and_tickets(records: list[dict[str, Any]], calls: _Section, tickets: _Section) -> None:
    all_calls = _by(records, "calls", "CALL_START_TIME")
    if all_calls:
        latest = all_calls[-1]
        calls.value("Calls on file", str(len(all_calls)), latest)
        calls.value(
            "Last call",
            ", ".join(str(latest[k]) for k in ("CALL_START_TIME", "CALL_TYPE") if latest.get(k)),
            latest,
        )
    all_tickets = _by(records, "zoho_tickets", "CREATEDTIME")
    if all_tickets:
        still_open = [t for t in all_tickets if str(t.get("ZOHO_STATUS", "")).lower() in OPEN_TICKET]
        tickets.value("Tickets on file", str(len(all_tickets)), all_tickets[-1])
        tickets.value("Open tickets", str(len(still_open)), still_open[-1] if still_open else all_tickets[-1])
        latest = all_tickets[-1]
        tickets.value("Last ticket", f"{_ticket_number(latest)}: {_ticket(latest)}", latest)
        for ticket in reversed(still_open[-RECENT_TICKETS:]):  # which ones are open, newest first
            tickets.value(f"Open ticket {_ticket_number(ticket)}", _ticket(ticket), ticket)
    for call in reversed(all_calls[-RECENT_CALLS:]):
        details = [str(call.get("CALL_TYPE") or ""), *_present(call, CALL_DETAILS)]
        calls.value(f"Call at {call.get('CALL_START_TIME', 'unknown time')}", ", ".join(d for d in details if d), call)

    for ticket in reversed(all_tickets[-RECENT_TICKETS:]):
        tickets.value(f"Ticket {_ticket_number(ticket)}", _ticket(ticket), ticket)


def _ticket_number(ticket: dict[str, Any]) -> str:
    return str(ticket.get("TICKETNUMBER", ticket.get("id")))


# The fields an item names after its kind or subject, each in its words.
CALL_DETAILS = (("CALL_DURATION", "{} s"), ("AGENT_USERNAME", "agent {}"), ("CAMPAIGN_NAME", "campaign {}"))
TICKET_DETAILS = (
    ("CATEGORY", "category {}"),
    ("PRIORITY", "priority {}"),
    ("CREATEDTIME", "opened {}"),
    ("CLOSEDTIME", "closed {}"),
)


def _present(record: dict[str, Any], details: tuple[tuple[str, str], ...]) -> list[str]:
    return [words.format(record[key]) for key, words in details if record.get(key)]


def _ticket(ticket: dict[str, Any]) -> str:
    """`Card declined, Open, category Billing, priority High, opened …`."""
    details = [f"{ticket.get('SUBJECT', '')}".strip(), str(ticket.get("ZOHO_STATUS") or "")]
    return ", ".join(d for d in [*details, *_present(ticket, TICKET_DETAILS)] if d)


def _relationships(view: EntityView, relationships: _Section) -> None:
    records = view.records
    sources = Counter(str(r.get("SOURCE") or "unknown") for r in records)
    anchor = records[0] if records else {}
    relationships.value("Records in all", str(len(records)), anchor)
    relationships.value("Records on file", ", ".join(f"{s} {n}" for s, n in sorted(sources.items())), anchor)
    rules = Counter(edge.rsplit(":", 1)[-1] for edge in view.edges)
    if rules:
        linked = ", ".join(f"{RULE_REASONS.get(rule, rule)} ({n})" for rule, n in sorted(rules.items()))
        relationships.value("Records linked by", linked, anchor)
    _links(view, relationships, anchor)


LINKS_SHOWN = 3  # per rule, newest first, then how many there are in all


def _links(view: EntityView, relationships: _Section, anchor: dict[str, Any]) -> None:
    """The links a rule count stands for: which two records each joined,
    those of the newest records first."""
    by_id = {str(r.get("id")): r for r in view.records}
    pairs: dict[str, list[tuple[str, str, str]]] = {}
    for edge in view.edges:
        parts = edge.split(":")
        if len(parts) != 3:
            continue
        a, b, rule = parts
        newest = max(_when(by_id.get(a, {})), _when(by_id.get(b, {})))
        pairs.setdefault(rule, []).append((newest, a, b))
    for rule, links in sorted(pairs.items()):
        links.sort(reverse=True)
        # One sentence (commas, not semicolons), so each pair reads as the rule's.
        shown = [f"{_source(by_id, a)} {a} with {_source(by_id, b)} {b}" for _, a, b in links[:LINKS_SHOWN]]
        more = f", … {len(links)} links in all" if len(links) > LINKS_SHOWN else ""
        relationships.value(f"Linked by {RULE_REASONS.get(rule, rule)}", ", ".join(shown) + more, anchor)


def _when(record: dict[str, Any]) -> str:
    key = ACTIVITY_DATES.get(str(record.get("SOURCE")), "CREATED_DATE")
    return str(record.get(key) or record.get("CREATED_DATE") or "")


def _source(by_id: dict[str, dict[str, Any]], record_id: str) -> str:
    return str(by_id.get(record_id, {}).get("SOURCE") or "record")


# Where each kind of record keeps the date it happened on.
ACTIVITY_DATES = {"Transaction": "TRANSACTION_CREATED_DATE", "calls": "CALL_START_TIME", "zoho_tickets": "CREATEDTIME"}
ACTIVITY_NAMES = {"Transaction": "charge", "calls": "call", "zoho_tickets": "ticket opened"}


def _history(records: list[dict[str, Any]], history: _Section) -> None:
    created = sorted((r for r in records if r.get("CREATED_DATE")), key=lambda r: str(r["CREATED_DATE"]))
    if created:
        history.add("Customer since", created[0], "CREATED_DATE")
    charges = _by(records, "Transaction", "TRANSACTION_CREATED_DATE")
    if charges:
        history.add("First charge on", charges[0], "TRANSACTION_CREATED_DATE")
    dated = [(str(r[key]), source, r) for source, key in ACTIVITY_DATES.items() for r in records
             if r.get("SOURCE") == source and r.get(key)]  # fmt: skip
    if dated:
        when, source, record = max(dated, key=lambda d: d[0])
        history.value("Last activity", f"{ACTIVITY_NAMES[source]} on {when}", record)


def _credit(records: list[dict[str, Any]], credit: _Section) -> list[Any]:
    """The bureaus' figures and the assessment; the bureau summaries."""
    anchor = records[0] if records else {}
    summaries = bureau_summaries(records)
    for summary in summaries:
        latest = summary.latest
        report = {"id": summary.record_id}
        if latest is not None:
            credit.value(
                f"{summary.bureau} credit score (report of {latest.date})", str(latest.value), {"id": latest.record_id}
            )
            if summary.score_change is not None:
                credit.value(
                    f"{summary.bureau} score change since the previous report",
                    f"{summary.score_change:+d}",
                    {"id": latest.record_id},
                )
        if summary.utilization_percent is not None:
            credit.value(f"{summary.bureau} revolving utilization", f"{summary.utilization_percent:g}%", report)
        lates = (summary.late_30_days, summary.late_60_days, summary.late_90_days)
        credit.value(f"{summary.bureau} late payments (30/60/90 days)", "/".join(map(str, lates)), report)
        for creditor, counts in summary.late_accounts:  # which accounts the lates are on
            credit.value(f"{summary.bureau} late payments on {creditor} (30/60/90 days)", counts, report)
        credit.value(f"{summary.bureau} inquiries", str(summary.inquiries), report)
        for date, asker, purpose in summary.inquiry_items:  # who asked, newest first
            credit.value(f"{summary.bureau} inquiry on {date}", ", ".join(p for p in (asker, purpose) if p), report)
    assessment = assess(summaries)
    if assessment.status == INSUFFICIENT_DATA:
        if anchor:
            credit.value("Credit assessment", "insufficient data: no bureau score on file", anchor)
    else:
        weakest = min((s.latest for s in summaries if s.latest), key=lambda s: s.value)
        credit.value(
            "Credit band (FICO ranges, lowest latest score)",
            f"{assessment.band} ({assessment.score})",
            {"id": weakest.record_id},
        )
        credit.value("Credit risk level", assessment.risk_level, {"id": weakest.record_id})

    return summaries


def _insights(records: list[dict[str, Any]], sections: dict[str, _Section], summaries: list[Any]) -> Insights:
    def has(key: str) -> dict[str, Any] | None:
        return _first_with(records, key)

    primary = ""
    for label, key in (("client id", "CLIENT_ID"), ("email", "EMAIL"), ("phone", "PHONE_NUMBER")):
        record = has(key)
        if record is not None:
            value = normalize.email(record[key]) if key == "EMAIL" else str(record[key])
            primary = f"{label} {value}"
            break
    carried = sum(1 for key in PROFILE_FIELDS if has(key) is not None)
    completeness = round(100 * carried / len(PROFILE_FIELDS), 1)
    agreement = consistency(records)
    kinds = sorted({kind for r in records for kind in _pii_kinds(r)})
    return Insights(
        primary_identifier=primary,
        has_email=has("EMAIL") is not None or has("ZOHO_EMAIL") is not None,
        has_phone=any(has(k) is not None for k in ("PHONE_NUMBER", "PHONE_EXTERNAL", "ZOHO_PHONE")),
        has_financial_data=bool(sections["billing"].facts or sections["transactions"].facts or summaries),
        completeness_percent=completeness,
        consistency=agreement,
        data_quality=round((completeness / 100 + agreement) / 2, 4),
        pii_kinds=kinds,
    )


def _pii_kinds(value: object, path: str = "") -> set[str]:
    """Kinds of personal data with a value anywhere in a record."""
    if isinstance(value, dict):
        return {k for key, inner in value.items() for k in _pii_kinds(inner, f"{path}.{key}" if path else key)}
    if isinstance(value, list):
        return {k for item in value for k in _pii_kinds(item, f"{path}.0")}
    if value in (None, ""):
        return set()
    kind = pii_kind(path)
    return {kind} if kind else set()
