"""Claims: the checkable values a text states — e-mails, phone numbers,
dates, figures and amounts, identifiers — each as one whole, normalised
value. "614" is never read out of an 18-digit record id, "90" never out of
"30/60/90", and "$79", "79.00" and "79" are one amount; "June 12, 1984" and
"1984-06-12" one date.

The scorer compares an answer's claims with the claims of the facts the
model was given; the evaluation compares them with values it computes from
the records itself."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

EMAIL, PHONE, DATE, NUMBER, IDENTIFIER, SERIES = "email", "phone", "date", "number", "identifier", "series"

_NON_DIGITS = re.compile(r"\D")
_DIGITS = re.compile(r"\d+")
_DATE_PARTS = re.compile(r"[a-z]+|\d+")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
# A count written as a word, read as a figure only before what it counts
# ("two late payments", "no open tickets"), never "no one" or "the last one";
# "no" not in "No support tickets are on file" (nothing is counted there).
NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                "twelve")  # fmt: skip
_COUNT_WORD = (
    r"(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve"
    r"|no(?!\s+(?:[a-z-]+\s+){0,2}?(?:is|are)\s+on\s+file))"
)
_COUNTED = (
    r"(?:payments?|tickets?|calls?|charges?|refunds?|inquir(?:y|ies)|records?|accounts?|(?:30|60|90)[-\s]days?)\b"
)
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
# One pass, alternatives in priority order, each a whole token: nothing is
# read from inside a longer token.
_SCANNER = re.compile(
    r"(?<![\w@.+-])(?:"
    r"(?P<email>[\w.+-]+@[\w-]+(?:\.[\w-]+)+)"
    r"|(?P<iso>\d{4}-\d{2}-\d{2})(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
    rf"|(?P<mdy>{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}})"
    rf"|(?P<dmy>\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH},?\s+\d{{4}})"
    r"|(?P<slash>\d{1,2}/\d{1,2}/\d{4})"
    r"|(?P<phone>\+1\d{10}|\+?1?[\s.-]?\(\d{3}\)[\s.-]?\d{3}[\s.-]\d{4}|\d{3}[.-]\d{3}[.-]\d{4})"
    r"|(?P<series>\d+(?:/\d+)+)"
    r"|(?P<bucket>(?:30|60|90)[-\s]days?(?:\s+late)?)"
    r"|(?P<clock>\d{1,2}:\d{2}(?::\d{2})?)"
    r"|(?P<change>(?:up|down)\s+(?:by\s+)?\d+\s+points?)"
    rf"|(?P<counted>{_COUNT_WORD}(?=\s+(?:[a-z-]+\s+){{0,3}}?{_COUNTED}))"
    r"|(?P<ident>(?=[A-Za-z0-9]*\d)(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{6,})"
    r"|(?P<number>(?:[-+−]?\$|[-+−])?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s?%)?)"
    r")(?![\w@]|[.,]\d)",
    re.I,
)


@dataclass(frozen=True, slots=True)
class Claim:
    kind: str
    value: str  # normalised
    text: str  # as written
    start: int


def claims_of(text: str) -> list[Claim]:
    """Every claim in `text`, in order."""
    out = []
    for match in _SCANNER.finditer(text):
        claim = _claim(match)
        if claim is not None:
            out.append(claim)
    return out


def values_of(text: str) -> set[tuple[str, str]]:
    return {(c.kind, c.value) for c in claims_of(text)}


def value_set(texts: Iterable[str]) -> set[tuple[str, str]]:
    return {v for text in texts for v in values_of(text)}


def _claim(match: re.Match[str]) -> Claim | None:
    kind = match.lastgroup or ""
    text = match.group(kind)
    start = match.start(kind)
    if kind == "email":
        return Claim(EMAIL, text.lower(), text, start)
    if kind == "iso":
        return Claim(DATE, text, match.group(0), start)
    if kind in ("mdy", "dmy", "slash"):
        day = _written_date(text, kind)
        return Claim(DATE, day.isoformat(), text, start) if day else None
    if kind == "phone":
        digits = _NON_DIGITS.sub("", text)
        return Claim(PHONE, digits[-10:], text, start)
    if kind == "series":
        return Claim(SERIES, text, text, start)
    if kind == "ident":
        return Claim(IDENTIFIER, text, text, start)
    if kind in ("bucket", "clock"):
        return None  # a late-payment bucket ("30 days late") or a time of day: no value of the records
    if kind == "change":
        figure = _DIGITS.search(text)
        if figure is None:
            return None
        change = _number(("-" if text.lower().startswith("down") else "") + figure.group(0))
        return Claim(NUMBER, change, text, start) if change is not None else None
    if kind == "counted":
        word = text.lower()
        return Claim(NUMBER, "0" if word == "zero" else str(NUMBER_WORDS.index(word)), text, start)
    number = _number(text)
    return Claim(NUMBER, number, text, start) if number is not None else None


def _number(text: str) -> str | None:
    raw = text.replace("−", "-").replace("$", "").replace(",", "").replace("%", "").replace(" ", "")
    try:
        value = Decimal(raw)
        # 79, 79.0 and 79.00 are one amount; +4 and 4 one change; -0 is 0.
        normal = value.normalize()
    except ArithmeticError:  # not a number, or one of more digits than a Decimal holds
        return None
    text = format(abs(normal) if normal == 0 else normal, "f")
    return text


def _written_date(text: str, kind: str) -> date | None:
    words = _DATE_PARTS.findall(text.lower())
    try:
        if kind == "slash":
            month, day, year = (int(w) for w in words)
        else:
            numbers = [int(w) for w in words if w.isdigit()]
            month_word = next(w for w in words if w[:3] in _MONTHS)
            month = _MONTHS.index(month_word[:3]) + 1
            day, year = numbers[0], numbers[-1]
        return date(year, month, day)
    except (ValueError, StopIteration, IndexError):
        return None
