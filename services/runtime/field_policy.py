"""FieldPolicy: which kinds of personal data a model may see, on every path
by which customer data can reach one. A turn's facts are masked for every
provider that may answer it (the model's own and its fallbacks), so a
failover never hands PII to a provider the policy keeps it from; free text
(the conversation a client sends back, a turn shown to the judge) is masked
by the values of the facts it may hold and by the shapes of social security
and card numbers, and of a date of birth or licence number where the text
names one.

FIELD_POLICY_PATH  the policy file (default: the bundled field_policy.yaml)"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from pathlib import Path

import re2
import yaml

from services.runtime.conversation import Fact
from services.runtime.settings import SettingsError, env_str

PII_KINDS = frozenset({"ssn", "card_number", "cvv", "driving_licence", "date_of_birth", "address"})
BUNDLED = Path(__file__).with_name("field_policy.yaml")
KIND_NAMES = {
    "ssn": "social security number",
    "card_number": "card number",
    "cvv": "card security code",
    "driving_licence": "driving licence number",
    "date_of_birth": "date of birth",
    "address": "address",
}


# Shapes that give a kind away wherever it stands, and shapes that do so
# only after words naming the kind (a date alone is as likely a payment's).
# They read whole messages and answers, in time linear in the text: a shape
# with an unbounded run is RE2; one whose every quantifier is bounded is
# `re`, which costs less a match (text full of card-shaped numbers).
_SSN = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")
_CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
# Between the words and the value: a few words without a digit ("is",
# "was born on", "number of Jo is"), so a value said in a sentence is
# found; short, so a date further on (a payment's) is not taken for one;
# never across a "]", so a "[withheld: date of birth]" put in before does
# not name the kind of what follows it.
_GAP = r"[^\d\n\]]{0,24}?"
_CVV = re2.compile(rf"(?i)\b(?:cvv2?|cvc2?|security code){_GAP}\b(\d{{3,4}})\b")
_DATE = (
    r"(\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{2,4}|[A-Z][a-z]+ \d{1,2}(?:st|nd|rd|th)?,? \d{4}"
    r"|\d{1,2}(?:st|nd|rd|th)? (?:of )?[A-Z][a-z]+,? \d{4})"
)
_BIRTH = re2.compile(rf"(?i)\b(?:date of birth|birth ?date|birthday|born|dob){_GAP}\b{_DATE}")
# A licence number holds a digit within its first few characters.
_LICENCE = re2.compile(rf"(?i)\b(?:driving|driver'?s?) licen[cs]e{_GAP}\b([A-Z]{{0,3}}\d[A-Z0-9-]{{3,}})\b")


# Each digit doubled, its digits summed (Luhn), as a translation table.
_DOUBLED = str.maketrans("0123456789", "0246813579")
_SEPARATORS = str.maketrans("", "", " -")


def _luhn(digits: str) -> bool:
    total = sum(map(int, digits[-1::-2])) + sum(map(int, digits[-2::-2].translate(_DOUBLED)))
    return total % 10 == 0


def withheld(kind: str) -> str:
    return f"[withheld: {KIND_NAMES.get(kind, kind)}]"


class PolicyError(ValueError):
    """The policy file is malformed; the message names the entry."""


class FieldPolicy:
    def __init__(self, providers: dict[str, frozenset[str]], default: frozenset[str] = frozenset()):
        self._providers = providers
        self._default = default

    @classmethod
    def from_yaml(cls, text: str) -> FieldPolicy:
        data = yaml.safe_load(text) or {}
        if not isinstance(data, dict):
            raise PolicyError("the policy must be a mapping with 'providers' and 'default'")

        def kinds(where: str, value: object) -> frozenset[str]:
            if not isinstance(value, list):
                raise PolicyError(f"{where}: expected a list of kinds")
            unknown = sorted(set(value) - PII_KINDS)
            if unknown:
                raise PolicyError(f"{where}: unknown kind {unknown[0]!r}; kinds: {', '.join(sorted(PII_KINDS))}")
            return frozenset(value)

        providers = data.get("providers") or {}
        if not isinstance(providers, dict):
            raise PolicyError("providers: expected a mapping of provider to kinds")
        return cls(
            {name: kinds(f"providers.{name}", value) for name, value in providers.items()},
            kinds("default", data.get("default") or []),
        )

    @classmethod
    def bundled(cls) -> FieldPolicy:
        return cls.from_yaml(BUNDLED.read_text())

    def allowed(self, providers: Iterable[str]) -> frozenset[str]:
        """The kinds every one of these providers may see."""
        allowed = PII_KINDS
        for provider in providers:
            allowed &= self._providers.get(provider, self._default)
        return allowed

    @classmethod
    def from_env(cls) -> FieldPolicy:
        """The policy FIELD_POLICY_PATH names, or the bundled one."""
        path = env_str("FIELD_POLICY_PATH")
        try:
            return cls.from_yaml(Path(path).read_text()) if path else cls.bundled()
        except (OSError, PolicyError, yaml.YAMLError) as error:
            raise SettingsError(f"FIELD_POLICY_PATH: {error}") from None

    def apply(self, facts: list[Fact], allowed: frozenset[str]) -> list[Fact]:
        return [
            f if not f.pii_kind or f.pii_kind in allowed else dataclasses.replace(f, value=withheld(f.pii_kind))
            for f in facts
        ]

    def mask_text(self, text: str, facts: Iterable[Fact], allowed: frozenset[str]) -> str:
        """Free text with every value of a withheld kind replaced: the values
        of the facts given, then the shapes of the kinds."""
        if not text:
            return text
        for fact in facts:
            if fact.pii_kind and fact.pii_kind not in allowed and len(fact.value) >= 4 and fact.value in text:
                text = text.replace(fact.value, withheld(fact.pii_kind))
        if "ssn" not in allowed:
            text = _SSN.sub(withheld("ssn"), text)
        if "card_number" not in allowed:
            text = _CARD.sub(
                lambda m: withheld("card_number") if _luhn(m.group(0).translate(_SEPARATORS)) else m.group(0), text
            )
        for kind, pattern in (("cvv", _CVV), ("date_of_birth", _BIRTH), ("driving_licence", _LICENCE)):
            if kind not in allowed:
                text = pattern.sub(lambda m, kind=kind: m.group(0).replace(m.group(1), withheld(kind)), text)
        return text
