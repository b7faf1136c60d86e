"""LlmJudge: a model grades a sample of answers against a written rubric,
through llm_gateway, off the hot path. Its grade is kept beside the
deterministic score (never instead of it), so the two can be compared. The
turn it is shown is masked by the field policy for the judge's provider:
an answer of the offline model may hold what a cloud judge may not see."""

from __future__ import annotations

import random
from collections.abc import Sequence

import orjson

from services.optimizer.ports import GenerationFailed, TextGeneration
from services.optimizer.quality import MAX_SCORED_ANSWER_CHARS
from services.runtime.conversation import Fact, Message, ResponseFormat
from services.runtime.field_policy import FieldPolicy
from services.runtime.limits import read_edges

RUBRIC = """You grade one answer of a customer-data assistant in a credit-services call centre.
Grade from 0 to 1:
- 1.0: every fact in the answer is in the customer data, the question is fully answered,
  missing values are said to be not on file, record ids are cited.
- 0.7: correct but incomplete or without record ids.
- 0.4: partly wrong: a value that is not in the data, or a wrong customer.
- 0.0: invented data, or a refusal although the data answers the question.
Reply with JSON only: {"score": <0..1>, "reason": "<one sentence>"}."""


class LlmJudge:
    def __init__(
        self,
        llm: TextGeneration,
        model: str,
        sample_rate: float,
        rng: random.Random | None = None,
        timeout_s: float = 60.0,
        policy: FieldPolicy | None = None,
    ):
        self._llm = llm
        self._policy = policy or FieldPolicy.bundled()
        self._model = model
        self.sample_rate = sample_rate
        self._rng = rng or random.Random()
        self._timeout_s = timeout_s

    def wants(self) -> bool:
        return self._rng.random() < self.sample_rate

    async def grade(
        self, question: str, answer: str, context: str, facts: Sequence[Fact] = ()
    ) -> tuple[float, str] | None:
        """(score, reason), or None when the judge failed or answered nonsense."""
        allowed = self._policy.allowed([await self._llm.provider_of(self._model)])
        # What the scorer reads of them too: a question's edges, an answer's first 64 KiB.
        question, answer = read_edges(question), answer[:MAX_SCORED_ANSWER_CHARS]
        question, answer, context = (self._policy.mask_text(t, facts, allowed) for t in (question, answer, context))
        messages = [
            Message("system", RUBRIC),
            Message("user", f"Customer data:\n{context}\n\nQuestion: {question}\n\nAnswer: {answer}"),
        ]
        try:
            text = await self._llm.complete(
                self._model,
                messages,
                temperature=0.0,
                response_format=ResponseFormat("json_object"),
                timeout_s=self._timeout_s,
            )
        except GenerationFailed:
            return None
        try:
            verdict = orjson.loads(text)
            score = float(verdict["score"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None
        if not 0.0 <= score <= 1.0:
            return None
        return score, str(verdict.get("reason", ""))[:500]
