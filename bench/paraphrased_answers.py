"""Paraphrased answers: the facts an offline answer states, written as a
language model writes them — sentences, not "Label: value" — with several
phrasings for each kind of fact, small counts as words ("two late
payments", "no failed payments"), amounts as "$79" or "79 dollars", and
dates in the forms people write ("October 26, 2026", "26 Oct 2026",
"10/26/2026", "the 26th of October, 2026").

Every kind of fact has at least two phrasings and every date and amount
at least two forms, split in two halves: the scorer was tuned on TUNING
and is measured on HELD_OUT, so its figures are for phrasings it never saw.

A planted error is made in the facts before they are written (a figure
changed, a date moved, two bureaus' scores swapped, another customer's
value, an invented amount, a fact left out), so the error reads like the
rest of the prose.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta

from bench.offline_answers import AnsweredQuestion
from services.runtime.conversation import Fact
from services.runtime.topics import label_matches, labels_asked

TUNING, HELD_OUT = 0, 1
_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")  # fmt: skip
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ORDINAL = {1: "st", 2: "nd", 3: "rd", 21: "st", 22: "nd", 23: "rd", 31: "st"}


def _pick(options: Sequence, half: int, rng: random.Random):
    """One of the options of this half (even positions tuning, odd held out)."""
    mine = options[half::2] or options
    return mine[rng.randrange(len(mine))]


# -- the forms of a value -------------------------------------------------


def _date(iso: str, half: int, rng: random.Random) -> str:
    day = date.fromisoformat(iso[:10])
    month = _MONTHS[day.month - 1]
    forms = (
        f"{month} {day.day}, {day.year}",
        f"{day.day} {month[:3]} {day.year}",
        f"{day.month}/{day.day}/{day.year}",
        f"{month[:3]} {day.day}{_ORDINAL.get(day.day, 'th')}, {day.year}",
        iso[:10],
        f"the {day.day}{_ORDINAL.get(day.day, 'th')} of {month}, {day.year}",
    )
    return _pick(forms, half, rng)


def _dates_in(text: str, half: int, rng: random.Random) -> str:
    return _ISO_DATE.sub(lambda m: _date(m.group(0), half, rng), re.sub(r"T\d{2}:\d{2}:\d{2}Z", "", text))


def _amount(value: str, half: int, rng: random.Random) -> str:
    number = float(value.replace(",", ""))
    whole = f"{number:.0f}" if number.is_integer() else f"{number:.2f}"
    return _pick((f"${number:,.2f}", f"{whole} dollars", f"${whole}", f"USD {number:.2f}"), half, rng)


def _count(value: str, noun: str, half: int, rng: random.Random) -> str:
    n = int(value)
    said = _WORDS[n] if n < len(_WORDS) and rng.random() < 0.7 else str(n)
    if n == 0 and said == "0" and half == HELD_OUT:
        said = "zero"
    singular = noun[:-3] + "y" if noun.endswith("ies") else noun.removesuffix("s")
    return f"{said} {noun if n != 1 else singular}"


def _phone(value: str, half: int, rng: random.Random) -> str:
    digits = re.sub(r"\D", "", value)[-10:]
    a, b, c = digits[:3], digits[3:6], digits[6:]
    return _pick((f"({a}) {b}-{c}", f"{a}-{b}-{c}", f"({a}) {b}-{c}", f"{a}.{b}.{c}"), half, rng)


# -- one sentence per kind of fact -----------------------------------------

Writer = Callable[[re.Match, Fact, str, int, random.Random], str]


def _score(m, f, who, half, rng):
    bureau, when = m.group(1), _date(m.group(2), half, rng)
    return _pick((
        f"{who}'s {bureau} credit score is {f.value} (report of {when}).",
        f"On the {bureau} report dated {when}, {who} scored {f.value}.",
        f"{bureau} put {who}'s credit score at {f.value} on {when}.",
        f"The latest {bureau} report, from {when}, shows a score of {f.value}.",
    ), half, rng)  # fmt: skip


def _change(m, f, who, half, rng):
    bureau, n = m.group(1), int(f.value)
    if n == 0:
        return _pick((f"The {bureau} score has not changed since the previous report.",
                      f"{bureau} shows no change since the report before."), half, rng)  # fmt: skip
    way = "up" if n > 0 else "down"
    return _pick((
        f"The {bureau} score is {way} {abs(n)} points since the previous report.",
        f"Since the previous {bureau} report the score went {way} {abs(n)} points.",
    ), half, rng)  # fmt: skip


def _utilization(m, f, who, half, rng):
    bureau, share = m.group(1), f.value.rstrip("%")
    return _pick((
        f"{who}'s revolving utilization on the {bureau} report is {share}%.",
        f"{bureau} shows revolving utilization of {share} percent.",
    ), half, rng)  # fmt: skip


def _lates(m, f, who, half, rng):
    bureau, on = m.group(1), f" on {m.group(2)}" if m.group(2) else ""
    thirty, sixty, ninety = f.value.split("/")
    if half == TUNING or rng.random() < 0.3:
        return _pick((f"{bureau} lists late payments{on} of {f.value} (30/60/90 days).",
                      f"The {bureau} late payments{on} at 30/60/90 days are {f.value}."), half, rng)  # fmt: skip

    def late(n: str, days: int) -> str:
        if n == "0":
            return f"none {days} days late"
        return f"{_WORDS[int(n)] if int(n) < len(_WORDS) else n} {days} days late"

    return f"{bureau} shows payments{on}: {late(thirty, 30)}, {late(sixty, 60)} and {late(ninety, 90)}."


def _inquiries(m, f, who, half, rng):
    return _pick((f"There are {_count(f.value, 'inquiries', half, rng)} on the {m.group(1)} report.",
                  f"{m.group(1)} records {_count(f.value, 'inquiries', half, rng)}."), half, rng)  # fmt: skip


def _inquiry(m, f, who, half, rng):
    lender, _, purpose = f.value.partition(", ")
    when, bureau, purpose = _date(m.group(2), half, rng), m.group(1), purpose.lower()
    return _pick((f"{lender} made a {bureau} inquiry on {when} for a {purpose}.",
                  f"On {when} {lender} pulled {who}'s {bureau} report ({purpose})."), half, rng)  # fmt: skip


def _band(m, f, who, half, rng):
    band, _, score = f.value.partition(" (")
    return _pick((f"By FICO ranges {who}'s credit band is {band}, from the lowest latest score of {score.rstrip(')')}.",
                  f"{who} falls in the {band} band (lowest latest score {score.rstrip(')')})."), half, rng)  # fmt: skip


def _charge(m, f, who, half, rng):
    amount, _, rest = f.value.partition(", ")
    status = rest.split(", ")[0].lower()
    kind = {"Charge": "a charge", "Failed payment": "a payment", "Refund": "a refund"}[m.group(1)]
    when, amount = _date(m.group(2), half, rng), _amount(amount, half, rng)
    return _pick((f"On {when} there was {kind} of {amount} ({status}).",
                  f"{kind.capitalize()} of {amount} on {when} was {status}."), half, rng)  # fmt: skip


def _call(m, f, who, half, rng):
    when = _date(m.group(1), half, rng)
    direction, _, rest = f.value.partition(", ")
    return f"{who} had an {direction.lower()} call on {when} ({_dates_in(rest, half, rng)})."


def _ticket(m, f, who, half, rng):
    number = m.group(2) or f.value.split(":")[0]
    details = f.value.split(": ", 1)[-1] if not m.group(2) else f.value
    subject, _, rest = details.partition(", ")
    which = {"Open ticket": "Open ticket", "Ticket": "Ticket", "Last ticket": "The last ticket,"}[m.group(1)]
    return _pick((f"{which} {number} is about {subject.lower()} ({_dates_in(rest, half, rng)}).",
                  f"{which} {number}: \"{subject}\", {_dates_in(rest, half, rng)}."), half, rng)  # fmt: skip


def _amount_fact(m, f, who, half, rng):
    what = f.label.lower()
    return _pick((f"{who}'s {what} is {_amount(f.value, half, rng)}.",
                  f"The {what} comes to {_amount(f.value, half, rng)}."), half, rng)  # fmt: skip


def _approved(m, f, who, half, rng):
    approved, _, total = f.value.partition(" of ")
    total = total.split()[0]
    charges = _count(total, "charges", half, rng)
    return _pick((f"{approved} of {who}'s {total} charges were approved.",
                  f"Of {charges}, {approved} went through as approved."), half, rng)  # fmt: skip


def _counted(m, f, who, half, rng):
    label = f.label.lower()
    noun = label.removesuffix(" on file").removesuffix(" in all")
    tail = label[len(noun) :]  # " on file", " in all" or nothing, as the label says
    return _pick((f"{who} has {_count(f.value, noun, half, rng)}{tail}.",
                  f"There are {_count(f.value, noun, half, rng)}{tail} for {who}."), half, rng)  # fmt: skip


def _dated(m, f, who, half, rng):
    return _pick((f"{who}'s {f.label.lower()} is {_date(f.value, half, rng)}.",
                  f"The {f.label.lower()}: {_date(f.value, half, rng)}."), half, rng)  # fmt: skip


def _phone_fact(m, f, who, half, rng):
    return _pick((f"{who}'s phone number is {_phone(f.value, half, rng)}.",
                  f"You can call {who} at {_phone(f.value, half, rng)}."), half, rng)  # fmt: skip


def _plain(m, f, who, half, rng):
    value = _dates_in(f.value, half, rng).rstrip(".")
    return _pick((f"{who}'s {f.label.lower()} is {value}.", f"On file, the {f.label.lower()} is {value}.",
                  f"For {f.label.lower()} the records say {value}."), half, rng)  # fmt: skip


WRITERS: tuple[tuple[re.Pattern, Writer], ...] = tuple(
    (re.compile(pattern), writer)
    for pattern, writer in (
        (r"^(TransUnion|Equifax|Experian) credit score \(report of (\S+)\)$", _score),
        (r"^(\w+) score change since the previous report$", _change),
        (r"^(\w+) revolving utilization$", _utilization),
        (r"^(\w+) late payments(?: on (.+))? \(30/60/90 days\)$", _lates),
        (r"^(\w+) inquiries$", _inquiries),
        (r"^(\w+) inquiry on (\S+)$", _inquiry),
        (r"^Credit band", _band),
        (r"^(Charge|Failed payment|Refund) on (\S+)$", _charge),
        (r"^Call at (\S+)$", _call),
        (r"^(Open ticket|Ticket) (\d+)$|^(Last ticket)$", _ticket),
        (r"^(Monthly fee|Net balance due|Last approved payment amount)$", _amount_fact),
        (r"^Approved payments$", _approved),
        (r"^(Calls on file|Tickets on file|Open tickets|Failed payments|Refunds|Records in all)$", _counted),
        (r"^Phone$", _phone_fact),
    )
)


def _sentence(fact: Fact, who: str, half: int, rng: random.Random) -> str:
    for pattern, writer in WRITERS:
        match = pattern.match(fact.label)
        if match is not None:
            if writer is _ticket and match.group(3):
                match = re.match(r"^(Last ticket)()$", fact.label)
            return writer(match, fact, who, half, rng)
    if _ISO_DATE.fullmatch(fact.value):
        return _dated(None, fact, who, half, rng)
    return _plain(None, fact, who, half, rng)


# -- answers ---------------------------------------------------------------


def stated_facts(answered: AnsweredQuestion) -> list[Fact]:
    """The facts the offline answer states, in its order."""
    text = answered.answer
    stated = [(text.find(f"{f.label}: {f.value}"), n, f) for n, f in enumerate(answered.facts)]
    return [f for at, _, f in sorted(stated) if at >= 0]


def write(answered: AnsweredQuestion, facts: Sequence[Fact], half: int, seed_value: int) -> str:
    """The answer in prose: the facts, each in one of this half's phrasings."""
    rng = random.Random(seed_value)
    if answered.status != "found":
        return _pick((answered.answer.split(": ", 1)[-1],), half, rng)
    name = next((f.value for f in answered.facts if f.label == "Name"), "The customer")
    first = name.split()[0]
    opening = _pick((f"Here is what the records say about {name}.", f"{name}:", f"This is about {name}.",
                     f"For {name}, here is what I found."), half, rng)  # fmt: skip
    sentences = [opening]
    for fact in facts:
        if fact.label == "Name":
            continue
        sentences.append(_sentence(fact, first, half, rng))
    return " ".join(sentences)


@dataclass(frozen=True)
class Paraphrased:
    original: AnsweredQuestion
    answer: str
    kind: str = ""  # the planted error's class; "" for a faithful answer


def faithful(answered: Sequence[AnsweredQuestion], half: int, seed_value: int = 3) -> list[Paraphrased]:
    return [Paraphrased(a, write(a, stated_facts(a), half, seed_value + n)) for n, a in enumerate(answered)]


# -- planted errors, made in the facts ------------------------------------

_FIGURE = re.compile(r"(?<![\d/.-])\d+(?:\.\d+)?(?![\d/-])")


def _changed_figure(facts: list[Fact], rng, others) -> list[Fact] | None:
    candidates = [n for n, f in enumerate(facts) if f.label != "Name" and _FIGURE.search(f.value)
                  and not _ISO_DATE.search(f.value)]  # fmt: skip
    if not candidates:
        return None
    n = rng.choice(candidates)
    match = _FIGURE.search(facts[n].value)
    value = float(match.group(0))
    step = max(1, round(abs(value) * rng.uniform(0.03, 0.15)))
    new = value + rng.choice((-1, 1)) * step
    new_text = f"{new:.2f}" if "." in match.group(0) else str(int(abs(new)))
    changed = facts[n].value[: match.start()] + new_text + facts[n].value[match.end() :]
    return [*facts[:n], replace(facts[n], value=changed), *facts[n + 1 :]]


def _shifted_date(facts: list[Fact], rng, others) -> list[Fact] | None:
    candidates = [n for n, f in enumerate(facts) if _ISO_DATE.search(f"{f.label} {f.value}")]
    if not candidates:
        return None
    n = rng.choice(candidates)
    fact = facts[n]
    where = "value" if _ISO_DATE.search(fact.value) else "label"
    text = getattr(fact, where)
    match = _ISO_DATE.search(text)
    moved = date.fromisoformat(match.group(0)) + timedelta(days=rng.choice((-1, 1)) * rng.randint(1, 40))
    return [*facts[:n], replace(fact, **{where: text[: match.start()] + moved.isoformat() + text[match.end() :]}),
            *facts[n + 1 :]]  # fmt: skip


def _invented_amount(facts: list[Fact], rng, others) -> list[Fact] | None:
    amount = f"{rng.randint(20, 400)}.{rng.randint(0, 99):02d}"
    return [*facts, Fact("billing", "Late fee", amount, "")]


def _swapped_scores(facts: list[Fact], rng, others) -> list[Fact] | None:
    scores = [n for n, f in enumerate(facts) if re.match(r"^\w+ credit score \(report", f.label)]
    pairs = [(a, b) for a in scores for b in scores if a < b and facts[a].value != facts[b].value]
    if not pairs:
        return None
    a, b = rng.choice(pairs)
    out = list(facts)
    out[a], out[b] = replace(facts[a], value=facts[b].value), replace(facts[b], value=facts[a].value)
    return out


def _other_customer(facts: list[Fact], rng, others) -> list[Fact] | None:
    labels = {f.label: n for n, f in enumerate(facts) if f.label != "Name" and re.search(r"\d", f.value)}
    mine = {f.value for f in facts}
    for other in rng.sample(others, min(len(others), 20)):
        theirs = [f for f in other.facts if f.label in labels and f.value not in mine]
        if theirs:
            pick = rng.choice(theirs)
            n = labels[pick.label]
            return [*facts[:n], replace(facts[n], value=pick.value), *facts[n + 1 :]]
    return None


def _omission(facts: list[Fact], rng, others, question: str = "") -> list[Fact] | None:
    wanted = labels_asked(question)
    asked = [n for n, f in enumerate(facts) if f.label != "Name"  # the opening names the customer
             and any(label_matches(p, f.label) for p in wanted.get(f.topic, ()))]  # fmt: skip
    if not asked:
        return None
    n = rng.choice(asked)
    value = facts[n].value.lower()
    if any(value in f"{f.label} {f.value}".lower() for m, f in enumerate(facts) if m != n):
        return None  # the same value stated by another fact: nothing left out
    return [*facts[:n], *facts[n + 1 :]]


PLANTERS = {
    "changed figure": _changed_figure,
    "shifted date": _shifted_date,
    "invented amount": _invented_amount,
    "swapped bureau scores": _swapped_scores,
    "other customer": _other_customer,
    "omission": _omission,
}
CLASSES = tuple(PLANTERS)


def planted(answered: Sequence[AnsweredQuestion], half: int, seed_value: int = 3) -> list[Paraphrased]:
    """For each found answer and each class, the prose answer with one
    error of that class (where the answer has something to change)."""
    rng = random.Random(seed_value)
    found = [a for a in answered if a.status == "found"]
    out = []
    for n, original in enumerate(answered):
        if original.status != "found":
            continue
        facts = stated_facts(original)
        for kind, planter in PLANTERS.items():
            if kind == "omission":
                changed = _omission(facts, rng, found, original.question.text)
            else:
                changed = planter(facts, rng, found)
            if changed is not None and changed != facts:
                out.append(Paraphrased(original, write(original, changed, half, seed_value + n), kind))
    return out
