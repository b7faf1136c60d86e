"""Grounding: the facts of a chat turn, taken from the customer's Tilores
records, and the context text a model sees. Only values present in the
records become facts; nothing is derived that the records do not say."""

from __future__ import annotations

from dataclasses import dataclass, field

FOUND = "found"
NOT_FOUND = "not_found"
AMBIGUOUS = "ambiguous"
NO_IDENTIFIER = "no_identifier"
UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class Fact:
    topic: str
    label: str
    value: str
    record_id: str


@dataclass
class CustomerGrounding:
    status: str
    query: str = ""
    customer_name: str = ""
    facts: list[Fact] = field(default_factory=list)

    def text(self) -> str:
        """The context block for the system prompt."""
        if self.status == FOUND:
            lines = [f"Customer data from Tilores (lookup by {self.query}). Customer: {self.customer_name}."]
            lines += [f"- [{f.topic}] {f.label}: {f.value} (record {f.record_id})" for f in self.facts]
            return "\n".join(lines)
        if self.status == NOT_FOUND:
            return f"Tilores lookup by {self.query}: no customer matches. There is no customer data for this question."
        if self.status == AMBIGUOUS:
            lines = [f"Tilores lookup by {self.query}: several customers match. Ask which one is meant."]
            lines += [f"- {f.label}: {f.value} (record {f.record_id})" for f in self.facts]
            return "\n".join(lines)
        if self.status == UNAVAILABLE:
            return f"Tilores lookup by {self.query} failed: customer data is unavailable right now."
        return "No customer identifier was given, so no customer data was looked up."


def _name(record: dict) -> str:
    return " ".join(p for p in (record.get("FIRST_NAME"), record.get("LAST_NAME")) if p)


def _add(facts: list[Fact], topic: str, label: str, record: dict, key: str) -> None:
    value = record.get(key)
    if value not in (None, ""):
        facts.append(Fact(topic, label, str(value), str(record.get("id", ""))))


def customer_facts(records: list[dict]) -> tuple[str, list[Fact]]:
    """The customer's name and the facts an answer may use."""
    contact = next((r for r in records if r.get("SOURCE") == "Contact" and r.get("FIRST_NAME")), None)
    contact = contact or next((r for r in records if r.get("FIRST_NAME")), {})
    facts: list[Fact] = []
    name = _name(contact)
    if name:
        facts.append(Fact("identity", "Name", name, str(contact.get("id", ""))))
    _add(facts, "identity", "Client ID", contact, "CLIENT_ID")
    _add(facts, "contact", "Email", contact, "EMAIL")
    _add(facts, "contact", "Phone", contact, "PHONE_NUMBER")
    _add(facts, "contact", "Mailing city", contact, "MAILING_CITY")
    _add(facts, "contact", "Mailing state", contact, "MAILING_STATE_CODE")
    _add(facts, "status", "Account status", contact, "STATUS")
    _add(facts, "status", "Product", contact, "CURRENT_PRODUCT")
    _add(facts, "status", "Enrolled on", contact, "ENROLL_DATE")
    _add(facts, "billing", "Monthly fee", contact, "RECURRING_MONTHLY_FEE")
    _add(facts, "billing", "Net balance due", contact, "NET_BALANCE_DUE")

    # Credit: the newest report per bureau.
    newest: dict[str, tuple[str, dict, dict]] = {}
    for record in records:
        report = record.get("CREDIT_RESPONSE")
        if not isinstance(report, dict):
            continue
        for score in report.get("CREDIT_SCORE") or []:
            bureau = score.get("CreditRepositorySourceType") or report.get("CREDIT_BUREAU") or "Unknown bureau"
            issued = report.get("CreditReportFirstIssuedDate") or score.get("Date") or ""
            if bureau not in newest or issued > newest[bureau][0]:
                newest[bureau] = (issued, score | {"_record": record.get("id", "")}, report)
    for bureau in sorted(newest):
        issued, score, report = newest[bureau]
        record_id = str(score["_record"])
        when = f" (report of {issued})" if issued else ""
        if score.get("Value"):
            facts.append(Fact("credit", f"{bureau} credit score{when}", str(score["Value"]), record_id))
        for item in (report.get("CREDIT_SUMMARY") or {}).get("DATA_SET") or []:
            if item.get("ID") == "PT016" and item.get("Value") not in (None, ""):
                facts.append(Fact("credit", f"{bureau} revolving utilization", f"{item['Value']}%", record_id))

    # Billing: the newest charge, and the summary fields the payment system keeps.
    charges = sorted(
        (r for r in records if r.get("SOURCE") == "Transaction" and r.get("TRANSACTION_CREATED_DATE")),
        key=lambda r: r["TRANSACTION_CREATED_DATE"],
    )
    for record in reversed(charges):
        if record.get("LAST_APPROVED_TRANSACTION"):
            _add(facts, "billing", "Last approved payment date", record, "LAST_APPROVED_TRANSACTION")
            _add(facts, "billing", "Last approved payment amount", record, "LAST_APPROVED_TRANSACTION_AMOUNT")
            _add(facts, "billing", "Next payment date", record, "NEXT_TRANSACTION_DATE")
            break
    if charges:
        latest = charges[-1]
        summary = ", ".join(
            str(latest[k])
            for k in ("TRANSACTION_CREATED_DATE", "TRANSACTION_AMOUNT", "RESPONSE_STATUS")
            if latest.get(k)
        )
        facts.append(Fact("billing", "Latest charge (date, amount, result)", summary, str(latest.get("id", ""))))
        if latest.get("CARD_TYPE") and latest.get("CARD_LAST_4"):
            card = f"{latest['CARD_TYPE']} ending {latest['CARD_LAST_4']}"
            facts.append(Fact("billing", "Payment card", card, str(latest.get("id", ""))))

    tickets = sorted(
        (r for r in records if r.get("SOURCE") == "zoho_tickets"), key=lambda r: r.get("CREATEDTIME") or ""
    )
    for ticket in tickets:
        value = f"{ticket.get('SUBJECT', '')} ({ticket.get('ZOHO_STATUS', '')}, opened {ticket.get('CREATEDTIME', '')})"
        facts.append(Fact("tickets", f"Ticket {ticket.get('TICKETNUMBER', '')}", value, str(ticket.get("id", ""))))
    calls = sorted((r for r in records if r.get("SOURCE") == "calls"), key=lambda r: r.get("CALL_START_TIME") or "")
    for call in calls:
        value = (
            f"{call.get('CALL_TYPE', '')} call at {call.get('CALL_START_TIME', '')}, {call.get('CALL_DURATION', '')} s"
        )
        facts.append(Fact("calls", "Call", value, str(call.get("id", ""))))
    return name, facts


def ground(query: str, entities: list[list[dict]]) -> CustomerGrounding:
    """Grounding for a lookup that returned these entities' records."""
    if not entities:
        return CustomerGrounding(NOT_FOUND, query)
    if len(entities) == 1:
        name, facts = customer_facts(entities[0])
        return CustomerGrounding(FOUND, query, name, facts)
    candidates = []
    for n, records in enumerate(entities[:10], start=1):
        name, facts = customer_facts(records)
        summary = ", ".join(f"{f.label} {f.value}" for f in facts if f.label in ("Name", "Client ID", "Email"))
        record_id = facts[0].record_id if facts else ""
        candidates.append(Fact("identity", f"Candidate {n}", summary or name, record_id))
    return CustomerGrounding(AMBIGUOUS, query, facts=candidates)
