"""How well the quality scorer sees errors: real offline answers over the
sample customers, each copied with one planted error of a class —

  changed figure     a score, count or amount of the answer changed
  shifted date       a date of the answer moved by days
  invented amount    a sentence with an amount the records do not hold
  other customer     a value replaced by the same kind of value of another
                     customer
  swapped scores     two bureaus' credit scores exchanged
  omission           the statement of a fact the question asked for removed

The same classes are planted in paraphrased answers (the facts written as
a language model writes them, bench/paraphrased_answers.py), in phrasings
the scorer was not tuned on.

— and scored like any recorded answer. A planted copy is detected when its
overall score falls below the target level (0.95), with the evaluator that
saw it naming the error (groundedness a value that is not what the records
say, coverage a fact the question asked for that the answer does not
state). A false alarm is an unmodified answer scored below the target.

    python -m bench.planted_errors [--customers 60 --questions 350]
"""

from __future__ import annotations

import argparse
import random
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta

from bench import paraphrased_answers
from bench.offline_answers import AnsweredQuestion, offline_answers
from services.optimizer import quality
from services.optimizer.claims import DATE, IDENTIFIER, NUMBER, PHONE, SERIES, Claim, claims_of
from services.runtime.topics import label_matches, labels_asked

TARGET = 0.95
_CITATION = re.compile(r"\[records? [^\]]+\]")


@dataclass(frozen=True)
class Planted:
    kind: str
    original: AnsweredQuestion
    answer: str


def _customer_claims(answered: AnsweredQuestion) -> list[Claim]:
    """Claims of the answer that are the customer's values: not inside a
    citation, not the question's identifier, not a record id."""
    cited = [(m.start(), m.end()) for m in _CITATION.finditer(answered.answer)]
    asked = {(c.kind, c.value) for c in claims_of(answered.question.text)}
    record_ids = {f.record_id for f in answered.facts}
    return [
        c
        for c in claims_of(answered.answer)
        if not any(s <= c.start < e for s, e in cited)
        and (c.kind, c.value) not in asked
        and c.value not in record_ids
        and c.kind != IDENTIFIER
        and c.value != "30/60/90"
    ]


def _replace(text: str, claim: Claim, new: str) -> str:
    return text[: claim.start] + new + text[claim.start + len(claim.text) :]


def _changed_figure(rng: random.Random, claim: Claim) -> str:
    if claim.kind == SERIES:
        parts = claim.text.split("/")
        n = rng.randrange(len(parts))
        parts[n] = str(int(parts[n]) + rng.choice((1, 2)))
        return "/".join(parts)
    value = float(claim.value)
    step = max(1, round(abs(value) * rng.uniform(0.03, 0.15)))
    new = value + rng.choice((-1, 1)) * step
    if "." in claim.text:
        return f"{new:.2f}"
    return f"{'+' if claim.text.startswith('+') and new >= 0 else ''}{int(new)}"


def _plant_changed_figure(answered, claims, rng, others):
    figures = [c for c in claims if c.kind in (NUMBER, SERIES)]
    if not figures:
        return None
    claim = rng.choice(figures)
    return _replace(answered.answer, claim, _changed_figure(rng, claim))


def _plant_shifted_date(answered, claims, rng, others):
    dates = [c for c in claims if c.kind == DATE]
    if not dates:
        return None
    claim = rng.choice(dates)
    moved = date.fromisoformat(claim.value) + timedelta(days=rng.choice((-1, 1)) * rng.randint(1, 40))
    return _replace(answered.answer, claim, moved.isoformat() + claim.text[10:])


def _plant_invented_amount(answered, claims, rng, others):
    if answered.status != "found":
        return None
    amount = f"${rng.randint(20, 400)}.{rng.randint(0, 99):02d}"
    return answered.answer.rstrip() + f" A late fee of {amount} is also due."


def _plant_other_customer(answered, claims, rng, others):
    mine = {(c.kind, c.value) for c in claims}
    pool = [c for c in claims if c.kind in (NUMBER, DATE, PHONE, SERIES)]
    rng.shuffle(pool)
    for claim in pool:
        for other in rng.sample(others, min(len(others), 20)):
            if other.question.entity_id == answered.question.entity_id:
                continue
            theirs = [c for c in _customer_claims(other) if c.kind == claim.kind and (c.kind, c.value) not in mine]
            if theirs:
                return _replace(answered.answer, claim, rng.choice(theirs).text)
    return None


_BUREAU_SCORE = re.compile(r"(?:TransUnion|Equifax|Experian) credit score \(report of [^)]*\): (\d+)")


def _plant_swapped_scores(answered, claims, rng, others):
    scores = list(_BUREAU_SCORE.finditer(answered.answer))
    pairs = [(a, b) for a in scores for b in scores if a.start() < b.start() and a.group(1) != b.group(1)]
    if not pairs:
        return None
    a, b = rng.choice(pairs)
    text = answered.answer
    return text[: a.start(1)] + b.group(1) + text[a.end(1) : b.start(1)] + a.group(1) + text[b.end(1) :]


def _plant_omission(answered, claims, rng, others):
    if answered.status != "found":
        return None
    text = answered.answer
    wanted = labels_asked(answered.question.text)
    needed = [
        f
        for f in answered.facts
        if any(label_matches(p, f.label) for p in wanted.get(f.topic, ())) and f"{f.label}: {f.value}" in text
    ]
    rng.shuffle(needed)
    for fact in needed:
        stated = f"{fact.label}: {fact.value}"
        start = text.index(stated)
        end = start + len(stated)
        if text.startswith(" [record", end):
            end = text.index("]", end) + 1
        changed = text[:start] + "(see the record)" + text[end:]
        if fact.value not in changed:  # stated once: now left out
            return changed
    return None


PLANTERS = {
    "changed figure": _plant_changed_figure,
    "shifted date": _plant_shifted_date,
    "invented amount": _plant_invented_amount,
    "other customer": _plant_other_customer,
    "swapped bureau scores": _plant_swapped_scores,
    "omission": _plant_omission,
}


def plant(answered: AnsweredQuestion, kind: str, rng: random.Random, others: list[AnsweredQuestion]) -> str | None:
    """The answer with one error of `kind`, or None when it has nothing to
    change of that kind."""
    return PLANTERS[kind](answered, _customer_claims(answered), rng, others)


CLASSES = tuple(PLANTERS)


def planted_set(answered: list[AnsweredQuestion], seed_value: int = 5) -> list[Planted]:
    rng = random.Random(seed_value)
    found = [a for a in answered if a.status == "found"]
    out = []
    for original in answered:
        for kind in CLASSES:
            changed = plant(original, kind, rng, found)
            if changed is not None and changed != original.answer:
                out.append(Planted(kind, original, changed))
    return out


def score(answered: AnsweredQuestion, answer: str) -> tuple[float, list[quality.Score]]:
    return quality.evaluate(answered.question.text, answer, answered.status, answered.context, list(answered.facts))


def _detected(overall: float, scores: list[quality.Score]) -> bool:
    """Seen: scored below the target level, with an evaluator naming why."""
    return overall < TARGET and any(s.value < 1 for s in scores)


@dataclass(frozen=True)
class DetectionReport:
    per_class: dict[str, tuple[int, int]]  # class -> (detected, planted)
    false_alarms: int
    unmodified: int
    misses: dict[str, list[str]]
    alarms: list[str]


def measure(answered: list[AnsweredQuestion], seed_value: int = 5) -> DetectionReport:
    return _detection(planted_set(answered, seed_value), [(a, a.answer) for a in answered])


def measure_paraphrased(answered: list[AnsweredQuestion], half: int = paraphrased_answers.HELD_OUT) -> DetectionReport:
    """The same figures on paraphrased answers, in the given half of the
    phrasings (held out from the scorer's tuning by default)."""
    faithful = paraphrased_answers.faithful(answered, half)
    return _detection(paraphrased_answers.planted(answered, half), [(p.original, p.answer) for p in faithful])


def _detection(planted: list, unmodified: list[tuple[AnsweredQuestion, str]]) -> DetectionReport:
    """Each planted copy (kind, original, answer) scored for whether it is
    caught; each unmodified answer for whether it is a false alarm."""
    per_class: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    misses: dict[str, list[str]] = defaultdict(list)
    for item in planted:
        overall, scores = score(item.original, item.answer)
        hit = _detected(overall, scores)
        per_class[item.kind][0] += hit
        per_class[item.kind][1] += 1
        if not hit:
            misses[item.kind].append(f"{item.original.question.text} -> {overall}: {item.answer}")
    alarms = []
    for original, answer in unmodified:
        overall, scores = score(original, answer)
        if overall < TARGET:
            reasons = "; ".join(s.reason for s in scores if s.value < 1)
            alarms.append(f"{original.question.text}: {overall} {reasons}: {answer}")
    classes = {k: tuple(v) for k, v in per_class.items()}
    return DetectionReport(classes, len(alarms), len(unmodified), dict(misses), alarms)


def _print(title: str, report: DetectionReport, classes: tuple[str, ...]) -> None:
    print(title)
    print(f"  {'class':<22} {'planted':>8} {'detected':>9} {'rate':>7}")
    for kind in classes:
        hit, total = report.per_class.get(kind, (0, 0))
        print(f"  {kind:<22} {total:>8} {hit:>9} {hit / total if total else 0:>7.1%}")
    print(
        f"  {'false alarms':<22} {report.unmodified:>8} {report.false_alarms:>9} "
        f"{report.false_alarms / report.unmodified:>7.1%}"
    )
    for kind, missed in report.misses.items():
        for line in missed[:3]:
            print(f"  missed ({kind}): {' '.join(line.split())[:300]}")
    for line in report.alarms[:3]:
        print(f"  false alarm: {' '.join(line.split())[:300]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=60)
    parser.add_argument("--questions", type=int, default=350)
    args = parser.parse_args(argv)
    answered = offline_answers(args.customers, args.questions)
    _print(f"The scorer on {len(answered)} offline answers and their planted copies:", measure(answered), CLASSES)
    prose = measure_paraphrased(answered)
    _print(
        f"The scorer on {prose.unmodified} paraphrased answers (phrasings held out from its tuning) and their "
        "planted copies:",
        prose,
        paraphrased_answers.CLASSES,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
