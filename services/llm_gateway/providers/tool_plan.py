"""ToolPlan: which of the caller's tools the offline model calls, and with
what arguments.

The arguments come from what the user gave (an e-mail, a client id, a
phone, a contact id, a name) and from the customer's records, matched to
the tool's parameters by name and description (`SchemaFiller`); a tool is
callable when every required parameter is filled. With tool_choice auto
the model calls the callable tool most about the question (words shared
by the tool and the question, then topics of customer data both are about,
then parameters the user's identifiers fill),
and none once the tools have answered the question or when no tool fits.
Required and a named function are honoured or refused, naming the
parameter that could not be filled.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from services.llm_gateway.providers.events import GenerationRequest
from services.llm_gateway.providers.schema_filler import SchemaFiller, Source, Unfillable, words_of
from services.runtime.conversation import FOUND, Message, Tool, ToolCall
from services.runtime.customer_identifiers import identifiers_by_message
from services.runtime.faults import InvalidArgument
from services.runtime.limits import read_edges
from services.runtime.topics import topics_asked

_COMMON = frozenset("get find show look lookup fetch retrieve return give customer data info information tool".split())


@dataclass(frozen=True)
class ToolResult:
    """A tool's answer the client sent back, under the tool's name."""

    name: str
    content: str


def tool_results(messages: list[Message]) -> list[ToolResult]:
    """The tool results that answer the newest user message, in order."""
    last_user = max((n for n, m in enumerate(messages) if m.role == "user"), default=-1)
    names = {c.id: c.name for m in messages for c in m.tool_calls}
    return [
        ToolResult(m.name or names.get(m.tool_call_id, "the tool"), m.content)
        for m in messages[last_user + 1 :]
        if m.role == "tool"
    ]


def identifier_sources(request: GenerationRequest) -> list[Source]:
    """The identifiers the user gave, newest message first, most precise
    first, each under the label a parameter for it would be named by. A
    name is the customer's as found, else the likeliest one typed."""
    sources = []
    found_name = request.grounding.customer_name if request.grounding.status == FOUND else ""
    for found in identifiers_by_message([(m.role, m.content) for m in request.messages]):
        for label, value in (
            ("Salesforce contact id", found.contact_id),
            ("Client ID", found.client_id),
            ("Email", found.email),
            ("Phone", found.phone),
        ):
            if value:
                sources.append(Source(label, value, generic=True))
        if found.names:
            typed = f"{found.names[0].first} {found.names[0].last}"
            sources += name_sources(found_name or typed, generic=True)
    return sources


def record_sources(request: GenerationRequest) -> list[Source]:
    """The customer's facts as found in the records, and their name split
    into first and last."""
    grounding = request.grounding
    named = name_sources(grounding.customer_name) if grounding.status == FOUND and grounding.customer_name else []
    return [*named, *(Source(f.label, f.value) for f in grounding.facts if f.value)]


def name_sources(name: str, generic: bool = False) -> list[Source]:
    first, _, last = name.partition(" ")
    return [Source("Name", name, generic=generic), Source("First name", first), Source("Last name", last or first)]


def plan(request: GenerationRequest) -> list[ToolCall]:
    """The tool call to make now; none to answer in words. Raises
    InvalidArgument when a required or named call cannot be filled."""
    choice = request.tool_choice.mode if request.tool_choice else "auto"
    if choice == "none" or not request.tools:
        return []
    if choice == "auto" and tool_results(request.messages):
        return []  # the tools have answered this question: now the answer
    filler = SchemaFiller([*identifier_sources(request), *record_sources(request)], question=request.question())
    if choice == "function" and request.tool_choice is not None:
        named = request.tool_choice.function_name
        index, tool = next((n, t) for n, t in enumerate(request.tools) if t.name == named)
        return [_call(request, tool, _arguments(filler, tool, index))]
    fits = []
    for index, tool in enumerate(request.tools):
        missing = filler.fillable(tool.schema())
        if not missing:
            about = (
                _shared_words(tool, request.question()),
                _shared_topics(tool, request.question()),
                filler.from_identifiers(tool.schema()),
            )
            fits.append((*about, index, tool))
        elif choice == "required" and len(request.tools) == 1:
            raise _refusal(index, tool, missing)
    if choice == "auto":
        fits = [f for f in fits if any(f[:3])]  # about the question, or the customer it names
    if not fits:
        if choice == "required":
            names = ", ".join(repr(t.name) for t in request.tools[:5])
            raise InvalidArgument(
                f"offline cannot honour 'tool_choice': required: the conversation fills the required parameters "
                f"of none of the tools ({names})",
                field="tool_choice",
            )
        return []
    *_, index, tool = max(fits, key=lambda f: (*f[:3], -f[3]))
    return [_call(request, tool, _arguments(filler, tool, index))]


def _arguments(filler: SchemaFiller, tool: Tool, index: int) -> dict[str, Any]:
    try:
        return filler.fill(tool.schema())
    except Unfillable as unfillable:
        raise _refusal(index, tool, unfillable.path or "(top level)", unfillable.why) from None


def _refusal(index: int, tool: Tool, parameter: str, why: str = "") -> InvalidArgument:
    detail = f" ({why})" if why else ""
    return InvalidArgument(
        f"offline cannot call tool {tool.name!r}: nothing in the conversation or the customer's records fills "
        f"parameter {parameter!r}{detail}",
        field=f"tools[{index}].function.parameters.{parameter}",
    )


def _shared_words(tool: Tool, question: str) -> int:
    question = read_edges(question)  # a pasted document is read in its edges, as every question is
    return len((words_of(f"{tool.name} {tool.description}") - _COMMON) & (words_of(question) - _COMMON))


def _shared_topics(tool: Tool, question: str) -> int:
    """Topics of customer data (billing, tickets, credit, …) the tool and
    the question are both about."""
    return len(set(topics_asked(f"{tool.name} {tool.description}".replace("_", " "))) & set(topics_asked(question)))


def _call(request: GenerationRequest, tool: Tool, arguments: dict[str, Any]) -> ToolCall:
    text = orjson.dumps(arguments).decode()
    # The same conversation gets the same call id, so an answer streamed
    # and the same answer whole are identical.
    seen = orjson.dumps([(m.role, m.content, m.tool_call_id) for m in request.messages])
    digest = hashlib.sha256(seen + tool.name.encode() + text.encode()).hexdigest()[:24]
    return ToolCall(id=f"call_{digest}", name=tool.name, arguments=text)
