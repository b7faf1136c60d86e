"""extract_identifiers: find which customer a conversation or a string is about.

Looks for a Salesforce contact id (003…, 15 or 18 characters), a client id
(7–10 digits; never an amount, a date or part of a phone number), an e-mail
a phone number (normalised to E.164) and candidate names. The newest user
message that names a customer wins, so a follow-up ("and her last
payment?") keeps the customer of an earlier turn. Within a message the most
precise identifier is searched: contact id > client id > e-mail > phone >
name.

A name is not decided here: every pair of neighbouring words that could be
a first and a last name is a candidate, most likely first (both words
capitalised as typed), and the store decides which of them names a
customer. Words that are never names (question words, the domain's own
vocabulary) make no candidate; words that are names and ordinary words
(June, May, Grace, Will) make one only when capitalised.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import phonenumbers
import re2

from services.runtime.limits import read_edges

# An e-mail address (group 2) that does not continue a longer token (group 1,
# kept when the address is taken out: RE2 has no look-behind).
EMAIL = re2.compile(r"(^|[^\w.+-])([A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})\b")
CONTACT_ID = re2.compile(r"\b003[A-Za-z0-9]{12}(?:[A-Za-z0-9]{3})?\b")
CLIENT_ID_CUE = re2.compile(r"(?i)\b(?:client|customer|account)[\s_-]*(?:id|number|no\.?|#)\s*[:#]?\s*(\d{7,10})\b")
# Digits that stand alone: not after a currency sign or decimal point, not
# followed by decimals, not inside a date, a phone number or a longer id.
# A word of a name as typed: letters, with O'Brien, Smith-Jones and a
# possessive 's allowed ("Hawthorne's").
_WORD = re.compile(r"[A-Za-z]+(?:['’][A-Za-z]+)*(?:-[A-Za-z]+)*")
_POSSESSIVE = re.compile(r"['’]s$", re.I)
# Words that are never a first or a last name here: function words, question
# words, the domain's own vocabulary, bureaus, days and honorifics.
NOT_NAMES = frozenset(
    """
    a about after again all also am an and any anything are as ask at back be because been before being below
    between both but by can cannot could did do does doing done down during each either else ever every few
    find for from further get gets getting give given go going good got had has have having he hello her here
    hers herself hey hi him himself his how i if in into is it its itself just know let like look looking make
    many me might mine more most much must my myself need no nor not now of off often on once one only or other
    our ours out over own please pull quick quickly really right same see send shall she should show since so
    some something still such sure tell than thanks thank that the their theirs them themselves then there these
    they thing this those through to today too under until up us very want was we well were what whatever when
    where whether which while who whom whose why with within without would yes yet you your yours yourself
    account accounts active address amount balance bank bill billing bureau call called calls card cards case
    cases check client contact credit customer customers data date dates day days due email emails enrolled
    enrollment experian equifax fee fees file history id info information late latest lookup month months next
    number numbers owe owed paid past pay payment payments phone plan plans previous product products profile
    rating record records report reports score scores status summary ticket tickets total transaction
    transactions transunion utilization year years new san los las north south east west saint st mr mrs ms
    dr sir madam monday tuesday wednesday thursday friday saturday sunday january february march september
    october november december
    """.split()
)
# Ordinary words that are also names. In lower case such a word does not
# begin a name ("will smith pay", "may i"), though it may end one ("ada nash").
NAME_WORDS = frozenset(
    """
    april may june august will grace rose hope faith joy dawn summer mark bill pat sue ray max jack frank rich
    art bob don guy carol kit hazel iris pearl opal dean crane gale nash wren mercer sterling
    """.split()
)
# Where a record holds the phone number a search by phone matches.
PHONE_FIELDS = ("PHONE_NUMBER",)
_NON_DIGITS = re.compile(r"\D+")
BARE_NUMBER = re.compile(r"(?<![\w$€£.,/:-])(\d{7,10})(?![\w.,/:-]\d|\w|%)")


@dataclass(frozen=True)
class PersonName:
    """Two neighbouring words that may be a customer's first and last name."""

    first: str
    last: str
    written_as_name: bool = True  # both capitalised as typed: said to be a name

    def search_parameters(self) -> dict[str, str]:
        return {"FIRST_NAME": self.first, "LAST_NAME": self.last}

    def describe(self) -> str:
        return f"name {self.first} {self.last}"


@dataclass(frozen=True)
class Identifiers:
    """What one message says about which customer is meant."""

    contact_id: str = ""
    client_id: str = ""
    email: str = ""
    phone: str = ""  # E.164, e.g. +13125550142
    names: tuple[PersonName, ...] = ()  # candidates, most likely first

    def __bool__(self) -> bool:
        return self.exact or bool(self.names)

    @property
    def exact(self) -> bool:
        """An identifier that is not a name: it names a customer or none."""
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
        if self.phone:
            return {"PHONE_NUMBER": self.phone}
        return self.names[0].search_parameters() if self.names else {}

    def describe_found(self, records: Iterable[Mapping[str, object]]) -> str:
        """How the customer whose records these are was found: a bare
        ten-digit number searched as a client id and as a phone is named
        by the one the records hold; otherwise as describe() names it."""
        if self.client_id and self.phone and self.phone[-10:] == self.client_id:
            held = list(records)
            if not any(str(r.get("CLIENT_ID") or "") == self.client_id for r in held):
                digits = (_NON_DIGITS.sub("", str(r.get(f) or "")) for r in held for f in PHONE_FIELDS)
                if any(d[-10:] == self.client_id for d in digits if len(d) >= 10):
                    return f"phone {self.phone}"
        return self.describe()

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
        return self.names[0].describe() if self.names else ""


# A run of the characters a written phone number is made of. phonenumbers
# reads only such runs, of a phone number's length, and only the first
# MAX_PHONE_RUNS of them: its matcher costs microseconds a character, so a
# message's cost stays bounded whatever it holds.
_PHONE_RUN = re2.compile(r"[+(]?\d[\d()\s./-]*\d")
MAX_PHONE_RUN_CHARS = 32
MAX_PHONE_RUNS = 64


def _phones(text: str) -> list[tuple[int, int, str]]:
    found = []
    runs = (run for run in _PHONE_RUN.finditer(text) if len(run.group(0)) <= MAX_PHONE_RUN_CHARS)
    for run in itertools.islice(runs, MAX_PHONE_RUNS):
        for match in phonenumbers.PhoneNumberMatcher(run.group(0), "US", leniency=phonenumbers.Leniency.POSSIBLE):
            number = match.number
            # Only full national numbers: a 7-digit client id is not a phone.
            if len(str(number.national_number)) == 10:
                e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
                found.append((run.start() + match.start, run.start() + match.end, e164))
    return found


def identifiers_in(text: str) -> Identifiers:
    """Identifiers in one message (in its edges, if it is long)."""
    text = read_edges(text)
    contact = CONTACT_ID.search(text)
    email = EMAIL.search(text)
    scrubbed = EMAIL.sub(r"\1 ", text)
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
        email=email.group(2).lower() if email else "",
        phone=phone,
        names=name_candidates(scrubbed),
    )


def name_candidates(text: str, limit: int = 4) -> tuple[PersonName, ...]:
    """Neighbouring word pairs that may be a first and a last name: pairs
    capitalised as typed first, then the others (a name typed in lower
    case), each group in reading order; at most `limit`."""
    words = [(m.start(), m.end(), _POSSESSIVE.sub("", m.group(0))) for m in _WORD.finditer(text)]
    said: list[PersonName] = []
    maybe: list[PersonName] = []
    for (_, first_end, first), (second_start, _, last) in itertools.pairwise(words):
        if text[first_end:second_start].strip():
            continue  # not neighbours: punctuation or a number between them
        if not (_could_be_name(first) and _could_be_name(last)):
            continue
        capitalised = first[0].isupper() and last[0].isupper()
        if not capitalised and first.lower() in NAME_WORDS:
            continue  # "will", "may" in lower case are the words
        (said if capitalised else maybe).append(PersonName(first, last, capitalised))
    return tuple(dict.fromkeys([*said, *maybe]))[:limit]


def _could_be_name(word: str) -> bool:
    return len(word) >= 2 and word.lower() not in NOT_NAMES


def extract_identifiers(messages: list[tuple[str, str]]) -> Identifiers:
    """Identifiers from the newest user message that has any."""
    return next(iter(identifiers_by_message(messages)), Identifiers())


def identifiers_by_message(messages: list[tuple[str, str]]) -> list[Identifiers]:
    """The identifiers of every user message that has any, newest first: a
    caller that finds no customer by one message's names goes on to the
    next."""
    found = []
    for role, content in reversed(messages):
        if role == "user":
            identifiers = identifiers_in(content)
            if identifiers:
                found.append(identifiers)
    return found
