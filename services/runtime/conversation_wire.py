"""The conversation vocabulary on the wire: one translation each way
between `services/runtime/conversation.py` and the protos of
`common.proto` (roles, finish reasons, grounding statuses, tool choices,
messages, tools, facts and stream events). ChatResponse and
GenerateResponse carry the same events, so one function builds either."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from tilores_x.v1 import common_pb2

from services.runtime.conversation import (
    AMBIGUOUS,
    FOUND,
    NO_IDENTIFIER,
    NOT_FOUND,
    UNAVAILABLE,
    Fact,
    Finish,
    Message,
    ResponseFormat,
    StreamError,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    Usage,
)
from services.runtime.faults import InvalidArgument

ROLE_OF = {
    common_pb2.ROLE_SYSTEM: "system",
    common_pb2.ROLE_USER: "user",
    common_pb2.ROLE_ASSISTANT: "assistant",
    common_pb2.ROLE_TOOL: "tool",
}
ROLE_ENUM = {name: number for number, name in ROLE_OF.items()}
FINISH_OF = {
    common_pb2.FINISH_REASON_STOP: "stop",
    common_pb2.FINISH_REASON_LENGTH: "length",
    common_pb2.FINISH_REASON_TOOL_CALLS: "tool_calls",
    common_pb2.FINISH_REASON_CONTENT_FILTER: "content_filter",
}
FINISH_ENUM = {name: number for number, name in FINISH_OF.items()}
GROUNDING_OF = {
    common_pb2.GROUNDING_STATUS_FOUND: FOUND,
    common_pb2.GROUNDING_STATUS_NOT_FOUND: NOT_FOUND,
    common_pb2.GROUNDING_STATUS_AMBIGUOUS: AMBIGUOUS,
    common_pb2.GROUNDING_STATUS_NO_IDENTIFIER: NO_IDENTIFIER,
    common_pb2.GROUNDING_STATUS_UNAVAILABLE: UNAVAILABLE,
}
GROUNDING_ENUM = {name: number for number, name in GROUNDING_OF.items()}
AGENT_MODE_OF = {common_pb2.AGENT_MODE_AGENT: "agent", common_pb2.AGENT_MODE_CLIENT: "client"}
AGENT_MODE_ENUM = {name: number for number, name in AGENT_MODE_OF.items()}
TOOL_CHOICE_OF = {
    common_pb2.TOOL_CHOICE_MODE_AUTO: "auto",
    common_pb2.TOOL_CHOICE_MODE_NONE: "none",
    common_pb2.TOOL_CHOICE_MODE_REQUIRED: "required",
    common_pb2.TOOL_CHOICE_MODE_FUNCTION: "function",
}
TOOL_CHOICE_ENUM = {name: number for number, name in TOOL_CHOICE_OF.items()}
RESPONSE_FORMAT_OF = {
    common_pb2.RESPONSE_FORMAT_TYPE_TEXT: "text",
    common_pb2.RESPONSE_FORMAT_TYPE_JSON_OBJECT: "json_object",
    common_pb2.RESPONSE_FORMAT_TYPE_JSON_SCHEMA: "json_schema",
}
RESPONSE_FORMAT_ENUM = {name: number for number, name in RESPONSE_FORMAT_OF.items()}


def json_object_field(text: str, field: str) -> dict[str, Any]:
    """A field that holds a JSON object as text (a schema, tool parameters)."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise InvalidArgument(f"{field} is not valid JSON", field=field) from None
    if not isinstance(value, dict):
        raise InvalidArgument(f"{field} must be a JSON object", field=field)
    return value


def first_set(name: str, request: Any, options: common_pb2.GenerationOptions) -> Any:
    """A sampling field a request (a ChatRequest, a GenerateRequest) may set
    both on itself and in its options: its own where set, else the options'
    (None: neither)."""
    if request.HasField(name):
        return getattr(request, name)
    return getattr(options, name) if options.HasField(name) else None


def response_format_of(response_format: common_pb2.ResponseFormat, field: str) -> ResponseFormat | None:
    """None when not set (free text)."""
    kind = RESPONSE_FORMAT_OF.get(response_format.type)
    if kind is None:
        return None
    if kind != "json_schema":
        return ResponseFormat(kind)
    return ResponseFormat(kind, json_object_field(response_format.json_schema, f"{field}.json_schema"))


def response_format_proto(response_format: ResponseFormat | None) -> common_pb2.ResponseFormat:
    if response_format is None:
        return common_pb2.ResponseFormat()
    schema = orjson.dumps(response_format.json_schema).decode() if response_format.json_schema is not None else ""
    return common_pb2.ResponseFormat(type=RESPONSE_FORMAT_ENUM[response_format.type], json_schema=schema)


def message_of(message: common_pb2.ChatMessage) -> Message:
    """A message as the services speak it; an unset role stays ""."""
    calls = tuple(ToolCall(c.id, c.name, c.arguments) for c in message.tool_calls)
    return Message(ROLE_OF.get(message.role, ""), message.content, calls, message.tool_call_id, message.name)


def messages_of(messages: Sequence[common_pb2.ChatMessage]) -> list[Message]:
    """A request's conversation, checked: not empty, each message with its
    role, a tool result with the call it answers, a tool call with its id
    and name; InvalidArgument names the message."""
    if not messages:
        raise InvalidArgument("messages must not be empty", field="messages")
    checked = [message_of(m) for m in messages]
    for n, message in enumerate(checked):
        if not message.role:
            raise InvalidArgument(f"messages[{n}].role is not set", field=f"messages[{n}].role")
        if message.role == "tool" and not message.tool_call_id:
            raise InvalidArgument("a tool message needs tool_call_id", field=f"messages[{n}].tool_call_id")
        for k, call in enumerate(message.tool_calls):
            if not call.id or not call.name:
                raise InvalidArgument("a tool call needs id and name", field=f"messages[{n}].tool_calls[{k}]")
    return checked


def message_proto(message: Message) -> common_pb2.ChatMessage:
    return common_pb2.ChatMessage(
        role=ROLE_ENUM[message.role],
        content=message.content,
        name=message.name,
        tool_call_id=message.tool_call_id,
        tool_calls=[tool_call_proto(c) for c in message.tool_calls],
    )


def tool_proto(tool: Tool) -> common_pb2.Tool:
    parameters = orjson.dumps(tool.parameters).decode() if tool.parameters else ""
    return common_pb2.Tool(name=tool.name, description=tool.description, parameters_json=parameters)


def tool_choice_of(choice: common_pb2.ToolChoice) -> ToolChoice | None:
    """None when nothing is asked for: the model decides."""
    mode = TOOL_CHOICE_OF.get(choice.mode)
    if mode is None and not choice.single_call:
        return None
    name = choice.function_name if mode == "function" else ""
    return ToolChoice(mode or "auto", name, choice.single_call)


def tool_choice_proto(choice: ToolChoice | None) -> common_pb2.ToolChoice:
    if choice is None:
        return common_pb2.ToolChoice()
    return common_pb2.ToolChoice(
        mode=TOOL_CHOICE_ENUM[choice.mode], function_name=choice.function_name, single_call=choice.single_call
    )


def fact_of(fact: common_pb2.Fact) -> Fact:
    return Fact(fact.topic, fact.label, fact.value, fact.record_id, fact.pii_kind)


def fact_proto(fact: Fact) -> common_pb2.Fact:
    return common_pb2.Fact(
        topic=fact.topic, label=fact.label, value=fact.value, record_id=fact.record_id, pii_kind=fact.pii_kind
    )


def usage_proto(usage: Usage) -> common_pb2.Usage:
    return common_pb2.Usage(
        prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens, total_tokens=usage.total_tokens
    )


def stream_event_of(message: Any) -> object:
    """A ChatResponse or GenerateResponse as the event it carries: the text
    of a delta (a str), ToolCallDelta, Finish, Usage or StreamError."""
    kind = message.WhichOneof("event")
    if kind == "delta":
        return message.delta
    if kind == "tool_call":
        piece = message.tool_call
        return ToolCallDelta(piece.index, piece.id, piece.name, piece.arguments)
    if kind == "finish":
        return finish_of(message.finish)
    if kind == "usage":
        return Usage(message.usage.prompt_tokens, message.usage.completion_tokens)
    if kind == "error":
        return StreamError(message.error.code, message.error.message)
    raise ValueError(f"a stream message without an event: {kind!r}")


def finish_of(finish: common_pb2.Finish) -> Finish:
    return Finish(FINISH_OF.get(finish.reason, "stop"), finish.model, finish.provider)


def finish_proto(finish: Finish) -> common_pb2.Finish:
    return common_pb2.Finish(reason=FINISH_ENUM[finish.reason], model=finish.model, provider=finish.provider)


def tool_call_proto(call: ToolCall) -> common_pb2.ToolCall:
    return common_pb2.ToolCall(id=call.id, name=call.name, arguments=call.arguments)


def stream_message(event: object, message_type: Any) -> Any:
    """An event as a ChatResponse or GenerateResponse (`message_type`)."""
    if type(event) is str:
        return message_type(delta=event)
    if isinstance(event, ToolCallDelta):
        return message_type(
            tool_call=common_pb2.ToolCallDelta(
                index=event.index, id=event.id, name=event.name, arguments=event.arguments
            )
        )
    if isinstance(event, Finish):
        return message_type(finish=finish_proto(event))
    if isinstance(event, Usage):
        return message_type(usage=usage_proto(event))
    if isinstance(event, StreamError):
        return message_type(error=common_pb2.StreamError(code=event.code, message=event.message))
    raise TypeError(f"unexpected stream event {type(event).__name__}")
