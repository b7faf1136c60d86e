"""LlmJudge: a model grades a sample of answers against a written rubric,
through llm_gateway, off the hot path. Its grade is kept beside the
deterministic score (never instead of it), so the two can be compared."""

from __future__ import annotations

import random

import grpc
import orjson
from tilores_x.v1 import common_pb2, llm_gateway_pb2, llm_gateway_pb2_grpc

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
        llm: llm_gateway_pb2_grpc.LlmGatewayServiceStub,
        model: str,
        sample_rate: float,
        rng: random.Random | None = None,
        timeout_s: float = 60.0,
    ):
        self._llm = llm
        self._model = model
        self.sample_rate = sample_rate
        self._rng = rng or random.Random()
        self._timeout_s = timeout_s

    def wants(self) -> bool:
        return self._rng.random() < self.sample_rate

    async def grade(self, question: str, answer: str, context: str) -> tuple[float, str] | None:
        """(score, reason), or None when the judge failed or answered nonsense."""
        request = llm_gateway_pb2.GenerateRequest(model=self._model, no_fallback=True, temperature=0.0)
        request.options.response_format.type = common_pb2.RESPONSE_FORMAT_TYPE_JSON_OBJECT
        request.messages.add(role=common_pb2.ROLE_SYSTEM, content=RUBRIC)
        request.messages.add(
            role=common_pb2.ROLE_USER,
            content=f"Customer data:\n{context}\n\nQuestion: {question}\n\nAnswer: {answer}",
        )
        parts: list[str] = []
        try:
            async for event in self._llm.Generate(request, timeout=self._timeout_s):
                if event.WhichOneof("event") == "delta":
                    parts.append(event.delta)
                elif event.WhichOneof("event") == "error":
                    return None
        except grpc.aio.AioRpcError:
            return None
        try:
            verdict = orjson.loads("".join(parts))
            score = float(verdict["score"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None
        if not 0.0 <= score <= 1.0:
            return None
        return score, str(verdict.get("reason", ""))[:500]
