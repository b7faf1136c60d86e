"""Every pattern and parser that reads user or record text costs time linear
in the text: the worst inputs known for backtracking patterns (long runs of
one character, of digits, of an identifier's separators, of near-misses of
an e-mail or a phone number) are read within a CPU budget that a linear scan
meets a hundred times over and a quadratic one misses by hours.

Figures are CPU seconds of this process (time.process_time), so a busy
machine slows the wall clock, not the measure."""

from __future__ import annotations

import ast
import importlib
import re
import time
from pathlib import Path

import pytest
import re2

from services.optimizer import claims, quality
from services.runtime import agent_modes, customer_identifiers, topics
from services.runtime.field_policy import FieldPolicy
from services.runtime.limits import READ_EDGE_CHARS, read_edges
from services.tilores_data.record_insights import RecordInsights

REPO = Path(__file__).resolve().parents[2]

# Units repeated into a long text: each is the shape one kind of pattern
# backtracks on (a run it consumes, then fails after).
UNITS = [
    "a", "1", "@", ".", " ", "-", "(", "+", "%", "/", "[", "{", "'", "\u00e9", "\n",
    "a.", "a@", "a1", "1-", "1 ", "1/", "1,", "$1", "a-", "a'", "Ab ", "a@b.co ", "+1 312 555 0142 ",
    "records ", "cvv ", "client id ", "e-mail: ", "how much ", "Jane Doe ", '{"a":[', "phone 1", "dob 1",
    "123-45-6789 ", "4111 1111 1111 1111 ",
]  # fmt: skip


def _texts(size: int):
    for unit in UNITS:
        yield unit, unit * (size // len(unit))


def _cpu(function, *args) -> float:
    began = time.process_time()
    function(*args)
    return time.process_time() - began


def _patterns() -> list[tuple[str, object]]:
    """Every module-level compiled pattern of the services and the gateway."""
    found = []
    for package in ("services", "gateway"):
        for path in sorted((REPO / package).rglob("*.py")):
            if path.name == "__main__.py":
                continue
            name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
            module = importlib.import_module(name)
            for attribute, value in vars(module).items():
                if isinstance(value, re.Pattern | re2._Regexp):
                    found.append((f"{name}.{attribute}", value))
    return found


PATTERNS = _patterns()


def test_the_scan_finds_the_patterns_that_read_questions():
    names = {name for name, _ in PATTERNS}
    assert {"services.runtime.topics._IDENTIFIER", "services.runtime.customer_identifiers.EMAIL"} <= names
    assert len(PATTERNS) > 30


@pytest.mark.parametrize(("name", "pattern"), PATTERNS, ids=[name for name, _ in PATTERNS])
def test_every_pattern_reads_200_kb_of_its_worst_input_in_linear_time(name, pattern):
    # A quadratic pattern spends minutes here (the identifier pattern that
    # froze a router took 11 s on 60,000 letters); a linear one milliseconds.
    for unit, text in _texts(200_000):
        spent = _cpu(pattern.search, text) + _cpu(pattern.sub, "", text)
        assert spent < 1.0, f"{name} spent {spent:.2f} s of CPU on {unit!r} * {len(text) // len(unit)}"


POLICY = FieldPolicy.bundled()
READERS = {
    "subject_of": topics.subject_of,
    "topics_asked": topics.topics_asked,
    "labels_asked": topics.labels_asked,
    "identifiers_in": customer_identifiers.identifiers_in,
    "extract_identifiers": lambda text: customer_identifiers.extract_identifiers([("user", text)] * 3),
    "command_of": agent_modes.command_of,
    "category_of": lambda text: quality.category_of(text, "ok"),
    "evaluate (the question)": lambda text: quality.evaluate(text, "Credit score: 700.", "ok", "Credit score: 700", []),
    "mask_text": lambda text: POLICY.mask_text(text, [], frozenset()),
}


@pytest.mark.parametrize("reader", READERS, ids=list(READERS))
def test_a_4_mib_message_costs_a_reader_under_two_seconds(reader):
    # The worst found is 1.2 s: masking 200,000 card numbers; most cost < 0.3 s.
    for unit, text in _texts(4 * 1024 * 1024):
        spent = _cpu(READERS[reader], text)
        assert spent < 2.0, f"{reader} spent {spent:.2f} s of CPU on {unit!r} * {len(text) // len(unit)}"


@pytest.mark.parametrize("unit", ["1 ", "a@b.co ", "$1", "Jane Doe ", "a1"])
def test_an_answer_is_read_for_claims_in_linear_time(unit):
    text = unit * (400_000 // len(unit))
    assert _cpu(claims.claims_of, text) < 3.0
    # The scorer reads an answer's first 64 KiB, whatever an outcome carries.
    huge = unit * (16 * 1024 * 1024 // len(unit))
    assert _cpu(quality.evaluate, "What is her score?", huge, "ok", "", []) < 2.0


def test_a_long_message_is_searched_in_its_edges():
    filler = "x " * READ_EDGE_CHARS * 4
    text = f"What is the credit score of ann@example.com? {filler} Her client id 2000038 please"
    assert len(read_edges(text)) == 2 * READ_EDGE_CHARS + 2
    found = customer_identifiers.identifiers_in(text)
    assert (found.email, found.client_id) == ("ann@example.com", "2000038")
    # The middle is answered, never searched: nothing there names a customer.
    hidden = f"{filler}bob@example.com{filler}"
    assert customer_identifiers.identifiers_in(hidden).email == ""
    assert topics.topics_asked(f"{filler}credit score?{filler}") == []
    assert topics.topics_asked(f"credit score?{filler}") == ["credit"]


def test_a_callers_like_regex_is_read_as_re2_in_linear_time():
    records = [{"id": str(n), "NOTE": "a" * 50_000} for n in range(10)]
    insights = RecordInsights(records)
    evil = {"field": "NOTE", "likeRegex": "(a+)+$b"}
    assert _cpu(lambda: insights.filter([evil]).count()) < 1.0


def test_every_pattern_is_a_module_constant_the_scan_above_reads():
    # A pattern written inline (re.sub(r"...", ...)) escapes the worst-input
    # scan; label_matches matches the product's own label patterns.
    inline = []
    for package in ("services", "gateway"):
        for path in sorted((REPO / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id in ("re", "re2")
                    and node.func.attr != "compile"
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                ):
                    inline.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not inline, inline
