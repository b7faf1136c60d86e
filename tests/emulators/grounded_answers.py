"""Model-like answers for the provider emulators: read the customer context
the mesh put in the prompt and the question, and answer in prose from the
facts whose labels share words with the question — like a model that reads
its context, and nothing like the offline model's code. A set share of
answers gets one figure wrong, so an evaluation sees models that differ.

    emulator.responder = GroundedResponder(error_rate=0.3, seed=1)
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from tests.emulators.base import Script

_FACT = re.compile(r"^- \[(?P<topic>\w+)\] (?P<label>.+?): (?P<value>.+) \(record (?P<record>[^)]+)\)$")
_WORD = re.compile(r"[a-z]{3,}")
_NUMBER = re.compile(r"(?<![\w./-])\d+(?:\.\d+)?(?![\w/-]|\.\d)")
# Words of a question that say nothing about which fact is meant.
_STOP = {"what", "the", "for", "does", "have", "how", "many", "when", "was", "and", "with", "who", "are", "any",
         "give", "summary", "much", "did", "which", "her", "his", "their", "this", "that", "is", "of"}  # fmt: skip


@dataclass
class GroundedResponder:
    error_rate: float = 0.0
    seed: int = 0
    answered: int = 0
    wrong: int = 0

    def __post_init__(self):
        self._rng = random.Random(self.seed)

    def __call__(self, body: dict) -> Script:
        system, question = _prompt(body)
        self.answered += 1
        if "no customer matches" in system:
            return Script(text="No customer matches that identifier, so I have no data to share.")
        if "No customer identifier was given" in system or not system:
            return Script(text="Please give the customer's e-mail, client id or phone number.")
        facts = [m.groupdict() for m in map(_FACT.match, system.splitlines()) if m]
        asked = set(_WORD.findall(question.lower())) - _STOP
        chosen = [f for f in facts if asked & set(_WORD.findall(f["label"].lower() + " " + f["topic"]))]
        if not chosen:
            chosen = [f for f in facts if f["topic"] in ("status", "identity")][:3]
        sentences = [f"The {f['label']} is {f['value']} (record {f['record']})." for f in chosen[:12]]
        text = " ".join(sentences) or "I found the customer, but the records hold nothing on that."
        if self.error_rate and self._rng.random() < self.error_rate:
            text, changed = _one_figure_wrong(text, self._rng)
            self.wrong += changed
        return Script(text=text)


def _prompt(body: dict) -> tuple[str, str]:
    """The system text and the newest user message, in any of the three APIs."""
    if "contents" in body:  # Gemini
        system = " ".join(p.get("text", "") for p in (body.get("systemInstruction") or {}).get("parts", []))
        users = [c for c in body["contents"] if c.get("role") == "user"]
        question = " ".join(p.get("text", "") for p in users[-1]["parts"]) if users else ""
        return system, question
    system = body.get("system") or ""
    if isinstance(system, list):  # Anthropic content blocks
        system = " ".join(block.get("text", "") for block in system)
    messages = body.get("messages", [])
    system += "".join(_text(m) for m in messages if m.get("role") == "system")
    users = [m for m in messages if m.get("role") == "user"]
    return system, _text(users[-1]) if users else ""


def _text(message: dict) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content


def _one_figure_wrong(text: str, rng: random.Random) -> tuple[str, int]:
    # Figures outside the record citations.
    spans = [m for m in _NUMBER.finditer(text) if not text[: m.start()].endswith("(record ")]
    if not spans:
        return text, 0
    match = rng.choice(spans)
    value = float(match.group(0))
    new = value + rng.choice((-1, 1)) * max(1, round(value * 0.07))
    formatted = f"{new:.2f}" if "." in match.group(0) else str(int(new))
    return text[: match.start()] + formatted + text[match.end() :], 1
