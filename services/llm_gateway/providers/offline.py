"""OfflineProvider: answers without a language model. It composes the answer
from the grounding facts the router sent, picking the topics the question
asks about, and says plainly that it is an offline answer. It never states a
value that is not among the facts or the caller's own tool results.

For agents it calls the caller's tools (`tool_plan`), streamed as OpenAI's
tool-call deltas, and fills a `json_schema` response format from the
customer's records (`schema_filler`)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import orjson

from services.llm_gateway.providers.events import GenerationRequest
from services.llm_gateway.providers.hashed_embedding import embed_texts, tokens_as_text
from services.llm_gateway.providers.schema_filler import SchemaFiller, Unfillable
from services.llm_gateway.providers.tool_plan import ToolResult, plan, record_sources, tool_results
from services.runtime.conversation import (
    AMBIGUOUS,
    FOUND,
    NO_IDENTIFIER,
    NOT_FOUND,
    UNAVAILABLE,
    Fact,
    Finish,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from services.runtime.faults import InvalidArgument
from services.runtime.topics import TOPIC_BY_NAME, label_matches, labels_asked, topics_asked

PREFIX = "Offline answer (composed from Tilores records, no language model): "

OVERVIEW_TOPICS = ("status", "credit", "billing")
NOT_ON_FILE = {
    "status": "No account status is on file.",
    "credit": "No credit score is on file for this customer.",
    "billing": "No payment is on file for this customer.",
    "contact": "No contact details are on file.",
    "tickets": "No support tickets are on file.",
    "calls": "No calls are on file.",
    "identity": "No identity details are on file.",
    "relationships": "No linked records are on file.",
    "history": "No record history is on file.",
}
_WORD = re.compile(r"\S+\s*")
_ARGUMENT_PIECE = re.compile(r".{1,16}", re.S)  # a tool call's arguments stream in pieces of this size
MAX_TOOL_RESULT_CHARS = 600
_TOKEN = re.compile(r"\w+|[^\w\s]")


def requested_topics(question: str, focus: tuple[str, ...] = ()) -> list[str]:
    """The topics to answer: those asked about, else the conversation's
    focus (its category), else an overview."""
    return topics_asked(question) or list(focus) or list(OVERVIEW_TOPICS)


def _fact_text(fact: Fact) -> str:
    cite = f" [record {fact.record_id}]" if fact.record_id else ""
    return f"{fact.label}: {fact.value}{cite}"


def compose_answer(request: GenerationRequest) -> str:
    return PREFIX + "".join(_tool_result_text(r) for r in tool_results(request.messages)) + _answer_text(request)


def _tool_result_text(result: ToolResult) -> str:
    """What the caller's tool answered, said as its answer, not the records'."""
    try:
        parsed = orjson.loads(result.content)
    except orjson.JSONDecodeError:
        parsed = result.content
    said = " ".join(_plain(parsed).split())
    if len(said) > MAX_TOOL_RESULT_CHARS:
        said = said[:MAX_TOOL_RESULT_CHARS] + "…"
    return f"Your tool {result.name} returned: {said or '(nothing)'}.\n"


def _answer_text(request: GenerationRequest) -> str:
    """The answer without the offline prefix."""
    grounding = request.grounding
    question = request.question()
    if grounding.status == FOUND:
        by_topic: dict[str, list[Fact]] = {}
        for fact in grounding.facts:
            by_topic.setdefault(fact.topic, []).append(fact)
        parts = [f"{grounding.customer_name or 'The customer'}."]
        identity = by_topic.get("identity", [])
        topics = requested_topics(question, grounding.focus)
        if identity and "identity" not in topics:
            parts.append(_fact_text(identity[0]) + ".")
        wanted = labels_asked(question)
        for topic in topics:
            parts.append(_topic_text(topic, by_topic.get(topic, []), wanted.get(topic, ())))
        return "\n".join(parts)
    if grounding.status == NOT_FOUND:
        return (
            f"no customer matches {grounding.query} in Tilores, so there is no data to share. "
            "Please check the identifier."
        )
    if grounding.status == AMBIGUOUS:
        candidates = "; ".join(_fact_text(f) for f in grounding.facts)
        return f"several customers match {grounding.query}: {candidates}. Which one do you mean?"
    if grounding.status == UNAVAILABLE:
        return (
            f"customer data is unavailable right now, so I cannot answer about {grounding.query}. "
            "Please try again shortly."
        )
    return (
        "I answer questions about customers from their Tilores records. Please give the customer's "
        "e-mail, client id, Salesforce contact id or phone number."
    )


def _topic_text(topic: str, facts: list[Fact], wanted: tuple[str, ...]) -> str:
    """One topic's sentence: for a narrow question the facts it asks for
    (and the topic's headline), else every fact of the topic."""
    if not facts:
        return NOT_ON_FILE[topic]
    title = TOPIC_BY_NAME[topic].title
    headline = TOPIC_BY_NAME[topic].headline
    if not wanted or wanted == headline:
        return f"{title} — " + "; ".join(_fact_text(f) for f in facts) + "."
    asked = [f for f in facts if any(label_matches(p, f.label) for p in wanted)]
    rest = [f for f in facts if f not in asked and any(label_matches(p, f.label) for p in headline)]
    text = f"{title} — " + "; ".join(_fact_text(f) for f in asked + rest) + "." if asked + rest else ""
    if not asked:
        text = f"{title}: no record on file answers that. {text}".strip()
    return text


def compose_json(request: GenerationRequest) -> str:
    """The same answer as one JSON object (`response_format: json_object`):
    the sentence, the customer and the facts it rests on, each with its
    record id; nothing that is not among the facts."""
    grounding = request.grounding
    facts = grounding.facts
    if grounding.status == FOUND:
        topics = set(requested_topics(request.question(), grounding.focus)) | {"identity"}
        facts = tuple(f for f in facts if f.topic in topics)
    answer = {
        "source": "offline: composed from Tilores records, no language model",
        "status": grounding.status or NO_IDENTIFIER,
        "query": grounding.query or None,
        "customer": grounding.customer_name or None,
        "answer": _answer_text(request),
        "facts": [{"topic": f.topic, "label": f.label, "value": f.value, "record_id": f.record_id} for f in facts],
    }
    # Indented, so the object streams in pieces like any answer.
    return orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode()


def _plain(value: object, depth: int = 0) -> str:
    """A tool's JSON result in words: "key: value; …", lists comma-joined."""
    if isinstance(value, dict) and depth < 3:
        return "; ".join(f"{k}: {_plain(v, depth + 1)}" for k, v in value.items())
    if isinstance(value, list) and depth < 3:
        return ", ".join(_plain(v, depth + 1) for v in value)
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode() if isinstance(value, (dict, list)) else str(value)


def compose_structured(request: GenerationRequest) -> str:
    """An object valid against the `json_schema` response format, filled
    from the customer's records (a property for the answer itself gets the
    answer in words); InvalidArgument names the property nothing fills."""
    spec = (request.response_format.json_schema if request.response_format else None) or {}
    given = spec.get("schema")
    schema: dict[str, Any] = given if isinstance(given, dict) else {"type": "object", "properties": {}}
    filler = SchemaFiller(record_sources(request), answer=compose_answer(request), question=request.question())
    try:
        value = filler.fill(schema)
    except Unfillable as unfillable:
        where = unfillable.path or "(top level)"
        raise InvalidArgument(
            f"offline cannot honour 'response_format': nothing in the customer's records fills property "
            f"{where!r} ({unfillable.why})",
            field=f"response_format.json_schema.schema.{where}" if unfillable.path else "response_format.json_schema",
        ) from None
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


class OfflineProvider:
    name = "offline"

    async def embed(
        self, upstream: str, texts: list[str], token_inputs: list[list[int]], dimensions: int, timeout_s: float | None
    ) -> tuple[list[list[float]], int]:
        """Vectors of the offline embedding model (hashed character n-grams)."""
        inputs = texts or [tokens_as_text(ids) for ids in token_inputs]
        return embed_texts(inputs, dimensions)

    def __init__(self, token_delay_s: float = 0.0):
        self._token_delay_s = token_delay_s

    async def close(self) -> None:
        """Nothing to close: no connections."""

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[object, None]:
        kind = request.response_format.type if request.response_format is not None else "text"
        # The router's own data tools (optional) are not needed: the
        # grounding already holds what they would fetch.
        calls = plan(request) if request.tools and not request.tools_optional else []
        if calls:
            async for event in self._tool_calls(request, calls):
                yield event
            return
        if kind == "json_schema":
            answer = compose_structured(request)
        else:
            answer = compose_json(request) if kind == "json_object" else compose_answer(request)
        stopped = False
        for stop in request.stop:
            if stop in answer:
                answer, stopped = answer[: answer.index(stop)], True
        pieces = _WORD.findall(answer)
        if request.max_tokens is not None:
            pieces = pieces[: request.max_tokens]
        for piece in pieces:
            if self._token_delay_s:
                await asyncio.sleep(self._token_delay_s)
            yield piece
        truncated = not stopped and request.max_tokens is not None and len(pieces) < len(_WORD.findall(answer))
        yield Finish("length" if truncated else "stop")
        yield Usage(prompt_tokens=_prompt_tokens(request), completion_tokens=len(pieces))

    async def _tool_calls(self, request: GenerationRequest, calls: list[ToolCall]) -> AsyncIterator[object]:
        """The calls as OpenAI streams them: id and name first, then the
        arguments in pieces."""
        pieces = 0
        for index, call in enumerate(calls):
            yield ToolCallDelta(index, id=call.id, name=call.name)
            for piece in _ARGUMENT_PIECE.findall(call.arguments):
                if self._token_delay_s:
                    await asyncio.sleep(self._token_delay_s)
                yield ToolCallDelta(index, arguments=piece)
                pieces += 1
        yield Finish("tool_calls")
        yield Usage(prompt_tokens=_prompt_tokens(request), completion_tokens=pieces + len(calls))


def _prompt_tokens(request: GenerationRequest) -> int:
    return sum(len(_TOKEN.findall(m.content)) for m in request.messages)
