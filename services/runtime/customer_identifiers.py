"""extract_identifiers: find which customer a conversation or a string is about.

Looks for a Salesforce contact id (003…, 15 or 18 characters), a client id
(7–10 digits; never an amount, a date or part of a phone number), an e-mail
and a phone number (normalised to E.164). The newest user message that names
a customer wins, so a follow-up ("and her last payment?") keeps the customer
of an earlier turn.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers

EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
CONTACT_ID = re.compile(r"\b003[A-Za-z0-9]{12}(?:[A-Za-z0-9]{3})?\b")
CLIENT_ID_CUE = re.compile(r"\b(?:client|customer|account)[\s_-]*(?:id|number|no\.?|#)\s*[:#]?\s*(\d{7,10})\b", re.I)
# Digits that stand alone: not after a currency sign or decimal point, not
# followed by decimals, not inside a date, a phone number or a longer id.
BARE_NUMBER = re.compile(r"(?<![\w$€£.,/:-])(\d{7,10})(?![\w.,/:-]\d|\w|%)")


@dataclass(frozen=True)
class Identifiers:
    """What one message says about which customer is meant."""

    contact_id: str = ""
    client_id: str = ""
    email: str = ""
    phone: str = ""  # E.164, e.g. +13125550142

    def __bool__(self) -> bool:
        return bool(self.contact_id or self.client_id or self.email or self.phone)

    def search_parameters(self) -> dict[str, str]:
        """Tilores search parameters for the most precise identifier: contact
        id > client id > email > phone. A bare ten-digit number is both a
        client id and a phone candidate; the search matches either."""
        if self.contact_id:
            return {"id": self.contact_id}
        if self.client_id:
            params = {"CLIENT_ID": self.client_id}
            if self.phone and self.phone[-10:] == self.client_id:
                params["PHONE_NUMBER"] = self.phone
            return params
        if self.email:
            return {"EMAIL": self.email}
        return {"PHONE_NUMBER": self.phone} if self.phone else {}

    def describe(self) -> str:
        """How an answer names the lookup, e.g. "email a@example.com"."""
        if self.contact_id:
            return f"Salesforce contact id {self.contact_id}"
        if self.client_id:
            return f"client id {self.client_id}"
        if self.email:
            return f"email {self.email}"
        return f"phone {self.phone}"


def _phones(text: str) -> list[tuple[int, int, str]]:
    found = []
    for match in phonenumbers.PhoneNumberMatcher(text, "US", leniency=phonenumbers.Leniency.POSSIBLE):
        number = match.number
        # Only full national numbers: a 7-digit client id is not a phone.
        if len(str(number.national_number)) == 10:
            found.append(
                (match.start, match.end, phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
            )
    return found


def identifiers_in(text: str) -> Identifiers:
    """Identifiers in one message."""
    contact = CONTACT_ID.search(text)
    email = EMAIL.search(text)
    scrubbed = EMAIL.sub(" ", text)
    cue = CLIENT_ID_CUE.search(scrubbed)
    client_id = cue.group(1) if cue else ""
    phones = [] if cue else _phones(scrubbed)
    phone = phones[0][2] if phones else ""
    if not client_id:
        # A bare number that is not a formatted phone number.
        without_phones = scrubbed
        for start, end, _ in reversed(phones):
            raw = scrubbed[start:end]
            if not raw.isdigit():
                without_phones = without_phones[:start] + " " + without_phones[end:]
        bare = BARE_NUMBER.search(without_phones)
        client_id = bare.group(1) if bare else ""
    return Identifiers(
        contact_id=contact.group(0) if contact else "",
        client_id=client_id,
        email=email.group(0).lower() if email else "",
        phone=phone,
    )


def extract_identifiers(messages: list[tuple[str, str]]) -> Identifiers:
    """Identifiers from the newest user message that has any."""
    for role, content in reversed(messages):
        if role != "user":
            continue
        found = identifiers_in(content)
        if found:
            return found
    return Identifiers()
