"""LlmVariantWriter: asks a model, through llm_gateway, for improved
versions of a prompt, showing it the current template and what the worst
answers got wrong. Used by the improvement cycle when OPTIMIZER_VARIANT_MODEL
names a model; the cycle checks every variant like any new template."""

from __future__ import annotations

from collections import Counter

from services.optimizer.ports import GenerationFailed, TextGeneration
from services.runtime.conversation import Message
from services.runtime.faults import Unavailable

SEPARATOR = "\n---\n"
INSTRUCTIONS = (
    "You improve the system prompt of a customer-data assistant in a credit-services call centre. "
    "The assistant must answer only from the customer data it is given, quote values exactly, cite record ids, "
    "and say when something is not on file. Write {count} improved versions of the prompt below. Each must keep "
    "the placeholder {{context}} exactly once, where the customer data goes, and use no other placeholder. "
    "Reply with the versions only, separated by a line holding only ---."
)
WEAKNESSES = {
    "groundedness": "stated figures, dates or e-mails that are not in the data",
    "coverage": "left parts of the question unanswered",
    "refusal": "did not say plainly that no customer matched",
    "format": "were cut short or left a placeholder",
}


class LlmVariantWriter:
    def __init__(self, llm: TextGeneration, model: str, count: int = 2, timeout_s: float = 60):
        self._llm = llm
        self._model = model
        self._count = count
        self._timeout_s = timeout_s

    async def __call__(self, template: str, evidence: Counter[str]) -> list[str]:
        problems = (
            "; ".join(f"{n} answers {WEAKNESSES.get(name, name)}" for name, n in evidence.most_common() if name)
            or "no specific weakness recorded"
        )
        messages = [
            Message("system", INSTRUCTIONS.format(count=self._count)),
            Message("user", f"The worst recent answers: {problems}.\n\nThe current prompt:\n\n{template}"),
        ]
        try:
            text = await self._llm.complete(self._model, messages, temperature=0.7, timeout_s=self._timeout_s)
        except GenerationFailed as failure:
            raise Unavailable(f"no variants from {self._model}: {failure}") from None
        return [v.strip() for v in text.split(SEPARATOR) if v.strip()][: self._count]
