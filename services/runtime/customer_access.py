"""CustomerAccess: one look at (or change of) one customer's data, as the
access log records it. It names the customer by entity id and the data by
the kinds of its fields (`date_of_birth`, `address`, `credit`), never by
value, so the log itself holds no customer data."""

from __future__ import annotations

from dataclasses import dataclass

MAX_TEXT = 200
MAX_KINDS = 32


@dataclass(frozen=True)
class CustomerAccess:
    who: str  # `key/<id>`, `client/<name>`, `service/<name>`
    entity_id: str
    action: str  # `chat.turn`, `tool.get_credit_report`, `TiloresDataService.GetCustomer360`
    field_kinds: tuple[str, ...] = ()
    tenant: str = ""
    completion_id: str = ""  # why
    request_id: str = ""
    recorded_by: str = ""  # the service that touched the data (set by the audit service)
    at: float = 0.0  # seconds since the epoch (set when recorded)

    def problem(self) -> str:
        """What makes the record unfit for the log ("" when it is fit)."""
        for name in ("who", "entity_id", "action"):
            if not getattr(self, name):
                return f"{name} is required"
        for name in ("who", "entity_id", "action", "tenant", "completion_id", "request_id"):
            if len(getattr(self, name)) > MAX_TEXT:
                return f"{name} is longer than {MAX_TEXT} characters"
        if len(self.field_kinds) > MAX_KINDS or any(len(k) > MAX_TEXT for k in self.field_kinds):
            return f"field_kinds: at most {MAX_KINDS} kinds of at most {MAX_TEXT} characters"
        return ""
