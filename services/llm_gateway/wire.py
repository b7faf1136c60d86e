"""Conversion between the LlmGatewayService messages and the provider
domain types, with every field checked and named when wrong."""

from __future__ import annotations

import orjson
from tilores_x.v1 import common_pb2, llm_gateway_pb2

from services.llm_gateway.catalog import ModelEntry
from services.llm_gateway.providers.events import GenerationRequest, Grounding
from services.runtime.conversation import (
    Fact,
    Finish,
    Message,
    ResponseFormat,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    Usage,
)
from services.runtime.faults import InvalidArgument

ROLES = {
    common_pb2.ROLE_SYSTEM: "system",
    common_pb2.ROLE_USER: "user",
    common_pb2.ROLE_ASSISTANT: "assistant",
    common_pb2.ROLE_TOOL: "tool",
}
GROUNDING_STATUS = {
    common_pb2.GROUNDING_STATUS_UNSPECIFIED: "",
    common_pb2.GROUNDING_STATUS_FOUND: "found",
    common_pb2.GROUNDING_STATUS_NOT_FOUND: "not_found",
    common_pb2.GROUNDING_STATUS_AMBIGUOUS: "ambiguous",
    common_pb2.GROUNDING_STATUS_NO_IDENTIFIER: "no_identifier",
    common_pb2.GROUNDING_STATUS_UNAVAILABLE: "unavailable",
}
FINISH = {
    "stop": common_pb2.FINISH_REASON_STOP,
    "length": common_pb2.FINISH_REASON_LENGTH,
    "tool_calls": common_pb2.FINISH_REASON_TOOL_CALLS,
    "content_filter": common_pb2.FINISH_REASON_CONTENT_FILTER,
}
FORMATS = {
    common_pb2.RESPONSE_FORMAT_TYPE_TEXT: "text",
    common_pb2.RESPONSE_FORMAT_TYPE_JSON_OBJECT: "json_object",
    common_pb2.RESPONSE_FORMAT_TYPE_JSON_SCHEMA: "json_schema",
}


def _json_object(text: str, field: str) -> dict:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise InvalidArgument(f"{field} is not valid JSON", field=field) from None
    if not isinstance(value, dict):
        raise InvalidArgument(f"{field} must be a JSON object", field=field)
    return value


def _messages(request: llm_gateway_pb2.GenerateRequest) -> list[Message]:
    if not request.messages:
        raise InvalidArgument("messages must not be empty", field="messages")
    messages = []
    for n, m in enumerate(request.messages):
        role = ROLES.get(m.role)
        if role is None:
            raise InvalidArgument(f"messages[{n}].role is not set", field=f"messages[{n}].role")
        if role == "tool" and not m.tool_call_id:
            raise InvalidArgument("a tool message needs tool_call_id", field=f"messages[{n}].tool_call_id")
        calls = tuple(ToolCall(c.id, c.name, c.arguments) for c in m.tool_calls)
        for k, call in enumerate(calls):
            if not call.id or not call.name:
                raise InvalidArgument("a tool call needs id and name", field=f"messages[{n}].tool_calls[{k}]")
        messages.append(Message(role, m.content, calls, m.tool_call_id, m.name))
    return messages


TOOL_CHOICE_MODES = {
    common_pb2.TOOL_CHOICE_MODE_AUTO: "auto",
    common_pb2.TOOL_CHOICE_MODE_NONE: "none",
    common_pb2.TOOL_CHOICE_MODE_REQUIRED: "required",
    common_pb2.TOOL_CHOICE_MODE_FUNCTION: "function",
}


def _tool_choice(choice: common_pb2.ToolChoice, tools: list[Tool]) -> ToolChoice | None:
    mode = TOOL_CHOICE_MODES.get(choice.mode)
    if mode is None:
        if not choice.single_call:
            return None
        mode = "auto"
    if mode in ("required", "function") and not tools:
        raise InvalidArgument(f"tool_choice {mode!r} needs tools", field="tool_choice")
    if mode == "function" and choice.function_name not in {t.name for t in tools}:
        raise InvalidArgument(
            "tool_choice names a function that is not among the tools", field="tool_choice.function.name"
        )
    return ToolChoice(mode, choice.function_name if mode == "function" else "", choice.single_call)


def generation_request(request: llm_gateway_pb2.GenerateRequest, timeout_s: float | None) -> GenerationRequest:
    """The provider request; `upstream_model` is filled per failover target."""
    options = request.options
    temperature = (
        request.temperature
        if request.HasField("temperature")
        else options.temperature
        if options.HasField("temperature")
        else None
    )
    max_tokens = (
        request.max_tokens
        if request.HasField("max_tokens")
        else options.max_tokens
        if options.HasField("max_tokens")
        else None
    )
    if temperature is not None and not 0 <= temperature <= 2:
        raise InvalidArgument("temperature must be between 0 and 2", field="temperature")
    if max_tokens is not None and max_tokens < 1:
        raise InvalidArgument("max_tokens must be at least 1", field="max_tokens")
    top_p = options.top_p if options.HasField("top_p") else None
    if top_p is not None and not 0 <= top_p <= 1:
        raise InvalidArgument("top_p must be between 0 and 1", field="top_p")
    if len(options.stop) > 4 or any(not s for s in options.stop):
        raise InvalidArgument("stop takes up to 4 non-empty sequences", field="stop")
    response_format = None
    kind = FORMATS.get(options.response_format.type)
    if kind is not None:
        schema = None
        if kind == "json_schema":
            schema = _json_object(options.response_format.json_schema, "response_format.json_schema")
        response_format = ResponseFormat(kind, schema)
    tools = []
    for n, tool in enumerate(request.tools):
        if not tool.name:
            raise InvalidArgument("a tool needs a name", field=f"tools[{n}].name")
        parameters = _json_object(tool.parameters_json, f"tools[{n}].parameters") if tool.parameters_json else None
        tools.append(Tool(tool.name, tool.description, parameters))
    if len({t.name for t in tools}) != len(tools):
        raise InvalidArgument("tool names must be unique", field="tools")
    tool_choice = _tool_choice(request.tool_choice, tools)
    g = request.grounding
    return GenerationRequest(
        upstream_model="",
        messages=_messages(request),
        temperature=temperature,
        top_p=top_p,
        max_tokens=max_tokens,
        stop=tuple(options.stop),
        seed=options.seed if options.HasField("seed") else None,
        response_format=response_format,
        tools=tuple(tools),
        tool_choice=tool_choice,
        tools_optional=request.tools_optional,
        grounding=Grounding(
            status=GROUNDING_STATUS.get(g.status, ""),
            query=g.query,
            customer_name=g.customer_name,
            facts=tuple(Fact(f.topic, f.label, f.value, f.record_id) for f in g.facts),
        ),
        timeout_s=timeout_s,
    )


def event_message(event: object) -> llm_gateway_pb2.GenerateResponse:
    """A provider event (other than a text delta) as a stream message."""
    if isinstance(event, ToolCallDelta):
        delta = common_pb2.ToolCallDelta(index=event.index, id=event.id, name=event.name, arguments=event.arguments)
        return llm_gateway_pb2.GenerateResponse(tool_call=delta)
    if isinstance(event, Usage):
        usage = common_pb2.Usage(
            prompt_tokens=event.prompt_tokens,
            completion_tokens=event.completion_tokens,
            total_tokens=event.total_tokens,
        )
        return llm_gateway_pb2.GenerateResponse(usage=usage)
    if isinstance(event, Finish):
        finish = common_pb2.Finish(reason=FINISH[event.reason], model=event.model, provider=event.provider)
        return llm_gateway_pb2.GenerateResponse(finish=finish)
    raise TypeError(f"unexpected provider event {type(event).__name__}")


def model_message(entry: ModelEntry, configured: bool) -> llm_gateway_pb2.Model:
    return llm_gateway_pb2.Model(
        id=entry.id,
        provider=entry.provider,
        owned_by=entry.owned_by,
        available=configured,
        unavailable_reason="" if configured else f"provider {entry.provider} is not configured",
        context_window=entry.context_window,
        input_price_per_million=entry.input_price,
        output_price_per_million=entry.output_price,
        supports_tools=entry.supports_tools,
        supports_streaming=entry.supports_streaming,
        fallbacks=list(entry.fallbacks),
        upstream_model=entry.upstream,
    )
