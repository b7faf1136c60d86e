"""How trustworthy an entity is, from its own records and edges.

consistency  the share of identity attributes (e-mail, first name, last
             name, client id, phone, date of birth) carried by the entity
             whose records agree on one value (case and phone formatting
             ignored); 1.0 when no record carries any of them.
link_score   how strongly the records are joined: a record linked by an
             exact identifier rule (e-mail, client id, phone, record id)
             counts 1, one linked only by the name rule counts 0.5; the
             mean over the records. A single-record entity scores 1.0.
"""

from __future__ import annotations

import re
from typing import Any

NAME_RULES = frozenset({"R5NAME"})
_NON_DIGIT = re.compile(r"\D+")

IDENTITY_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "email": ("EMAIL", "ZOHO_EMAIL"),
    "first_name": ("FIRST_NAME",),
    "last_name": ("LAST_NAME",),
    "client_id": ("CLIENT_ID",),
    "phone": ("PHONE_NUMBER", "PHONE_EXTERNAL", "ZOHO_PHONE"),
    "date_of_birth": ("DATE_OF_BIRTH",),
}


def _normalised(attribute: str, value: object) -> str:
    text = str(value).strip()
    if attribute == "phone":
        return _NON_DIGIT.sub("", text)[-10:]
    return text.lower()


def consistency(records: list[dict[str, Any]]) -> float:
    carried = agreeing = 0
    for attribute, names in IDENTITY_ATTRIBUTES.items():
        values = {_normalised(attribute, r[n]) for r in records for n in names if r.get(n) not in (None, "")}
        values.discard("")
        if values:
            carried += 1
            agreeing += len(values) == 1
    return round(agreeing / carried, 4) if carried else 1.0


def link_score(records: list[dict[str, Any]], edges: list[str]) -> float:
    if len(records) <= 1:
        return 1.0
    strong: set[str] = set()
    weak: set[str] = set()
    for edge in edges:
        a, b, rule = edge.rsplit(":", 2)
        (weak if rule in NAME_RULES else strong).update((a, b))
    total = sum(1.0 if str(r.get("id")) in strong else 0.5 if str(r.get("id")) in weak else 0.0 for r in records)
    return round(total / len(records), 4)
