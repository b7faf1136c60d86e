"""extract_identifiers: find which customer a conversation or a string is about.

Looks for a Salesforce contact id (003…, 15 or 18 characters), a client id
(7–10 digits; never an amount, a date or part of a phone number), an e-mail
a phone number (normalised to E.164) and a "First Last" name. The newest user
message that names a customer wins, so a follow-up ("and her last
payment?") keeps the customer of an earlier turn. Within a message the most
precise identifier is searched: contact id > client id > e-mail > phone >
name.
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
# "First Last": two capitalised words, O'Brien and Smith-Jones included.
_NAME_WORD = r"(?:[A-Z]['’][A-Z][a-z]+|Ma?c[A-Z][a-z]+|[A-Z][a-z]+(?:-[A-Z][a-z]+)?)"
NAME = re.compile(rf"\b({_NAME_WORD})\s+({_NAME_WORD})\b")
# Capitalised words that are not names: sentence openers, question words,
# the domain's own vocabulary, bureaus, days and months.
NOT_NAMES = frozenset(
    """
    a an and any are as at be but by can could did do does for from get give has have he hello her hi his how i if
    in is it its let look me my no not of on or our please pull she show so tell thanks thank that the their them
    then there they this to up was we what when where which who why will with would you your
    account active address balance bill billing call calls card client contact credit customer data date due email
    enrolled experian equifax fee history id info last latest next number payment phone plan product profile record
    report score status summary ticket tickets transunion new san los las north south east west saint st mr mrs ms
    dr sir madam
    monday tuesday wednesday thursday friday saturday sunday january february march april may june july august
    september october november december
    """.split()
)
BARE_NUMBER = re.compile(r"(?<![\w$€£.,/:-])(\d{7,10})(?![\w.,/:-]\d|\w|%)")


@dataclass(frozen=True)
class Identifiers:
    """What one message says about which customer is meant."""

    contact_id: str = ""
    client_id: str = ""
    email: str = ""
    phone: str = ""  # E.164, e.g. +13125550142
    first_name: str = ""
    last_name: str = ""

    def __bool__(self) -> bool:
        return bool(self.contact_id or self.client_id or self.email or self.phone or self.last_name)

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
        if self.phone:
            return {"PHONE_NUMBER": self.phone}
        return {"FIRST_NAME": self.first_name, "LAST_NAME": self.last_name} if self.last_name else {}

    def describe(self) -> str:
        """How an answer names the lookup, e.g. "email a@example.com"."""
        if self.contact_id:
            return f"Salesforce contact id {self.contact_id}"
        if self.client_id:
            return f"client id {self.client_id}"
        if self.email:
            return f"email {self.email}"
        if self.phone:
            return f"phone {self.phone}"
        return f"name {self.first_name} {self.last_name}"


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
    first = last = ""
    for match in NAME.finditer(scrubbed):
        if match.group(1).lower() not in NOT_NAMES and match.group(2).lower() not in NOT_NAMES:
            first, last = match.group(1), match.group(2)
            break
    return Identifiers(
        contact_id=contact.group(0) if contact else "",
        client_id=client_id,
        email=email.group(0).lower() if email else "",
        phone=phone,
        first_name=first,
        last_name=last,
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
