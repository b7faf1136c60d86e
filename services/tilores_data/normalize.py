"""Normalised forms of the values people type: phone numbers (E.164),
e-mail addresses and personal names."""

from __future__ import annotations

import re

import phonenumbers

_SUFFIXES = {"jr": "Jr.", "sr": "Sr.", "ii": "II", "iii": "III", "iv": "IV", "phd": "PhD", "md": "MD", "esq": "Esq."}
_PARTICLES = {"de", "da", "del", "della", "der", "di", "la", "le", "van", "von"}
_WORD = re.compile(r"[^\s]+")
_NAME_JOINS = re.compile(r"([-'’])")


def phone_e164(raw: str, region: str = "US") -> str:
    """`(312) 555-0142` -> `+13125550142`; empty when it is not a possible
    phone number."""
    try:
        number = phonenumbers.parse(str(raw), region)
    except phonenumbers.NumberParseException:
        return ""
    if not phonenumbers.is_possible_number(number):
        return ""
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def email(raw: str) -> str:
    """Trimmed, lower-case, without a `mailto:` prefix."""
    text = str(raw).strip()
    if text.lower().startswith("mailto:"):
        text = text[7:]
    return text.strip().lower()


def _name_part(part: str, first: bool) -> str:
    bare = part.strip(".,").lower()
    if bare in _SUFFIXES and not first:
        return _SUFFIXES[bare]
    if bare in _PARTICLES and not first:
        return bare
    pieces = []
    for piece in _NAME_JOINS.split(part.lower()):
        if piece in ("-", "'", "’") or not piece:
            pieces.append(piece)
        elif piece.startswith("mc") and len(piece) > 2:
            pieces.append("Mc" + piece[2:].capitalize())
        else:
            pieces.append(piece.capitalize())
    return "".join(pieces)


def person_name(raw: str) -> str:
    """`o'BRIEN` -> `O'Brien`, `mcdonald` -> `McDonald`, `smith-jones` ->
    `Smith-Jones`, `jane doe phd` -> `Jane Doe PhD`; `van`, `de` stay lower
    inside a name."""
    words = _WORD.findall(str(raw).replace(",", " "))
    return " ".join(_name_part(word, n == 0) for n, word in enumerate(words))
