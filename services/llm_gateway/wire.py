"""Conversion between the LlmGatewayService messages and the provider
domain types, with every field checked and named when wrong."""

from __future__ import annotations

from tilores_x.v1 import common_pb2, llm_gateway_pb2

from services.llm_gateway.catalog import ModelEntry
from services.llm_gateway.providers.events import GenerationRequest, Grounding
from services.runtime.conversation import (
    Tool,
    ToolChoice,
)
from services.runtime.conversation_wire import (
    GROUNDING_OF,
    fact_of,
    first_set,
    json_object_field,
    messages_of,
    response_format_of,
    tool_choice_of,
)
from services.runtime.faults import InvalidArgument


def _tool_choice(choice: common_pb2.ToolChoice, tools: list[Tool]) -> ToolChoice | None:
    parsed = tool_choice_of(choice)
    if parsed is None:
        return None
    mode = parsed.mode
    if mode in ("required", "function") and not tools:
        raise InvalidArgument(f"tool_choice {mode!r} needs tools", field="tool_choice")
    if mode == "function" and choice.function_name not in {t.name for t in tools}:
        raise InvalidArgument(
            "tool_choice names a function that is not among the tools", field="tool_choice.function.name"
        )
    return parsed


def _tools(request: llm_gateway_pb2.GenerateRequest) -> list[Tool]:
    tools = []
    for n, tool in enumerate(request.tools):
        if not tool.name:
            raise InvalidArgument("a tool needs a name", field=f"tools[{n}].name")
        parameters = json_object_field(tool.parameters_json, f"tools[{n}].parameters") if tool.parameters_json else None
        tools.append(Tool(tool.name, tool.description, parameters))
    if len({t.name for t in tools}) != len(tools):
        raise InvalidArgument("tool names must be unique", field="tools")
    return tools


def generation_request(request: llm_gateway_pb2.GenerateRequest, timeout_s: float | None) -> GenerationRequest:
    """The provider request; `upstream_model` is filled per failover target."""
    options = request.options
    temperature = first_set("temperature", request, options)
    max_tokens = first_set("max_tokens", request, options)
    if temperature is not None and not 0 <= temperature <= 2:
        raise InvalidArgument("temperature must be between 0 and 2", field="temperature")
    if max_tokens is not None and max_tokens < 1:
        raise InvalidArgument("max_tokens must be at least 1", field="max_tokens")
    top_p = options.top_p if options.HasField("top_p") else None
    if top_p is not None and not 0 <= top_p <= 1:
        raise InvalidArgument("top_p must be between 0 and 1", field="top_p")
    if len(options.stop) > 4 or any(not s for s in options.stop):
        raise InvalidArgument("stop takes up to 4 non-empty sequences", field="stop")
    response_format = response_format_of(options.response_format, "response_format")
    tools = _tools(request)
    tool_choice = _tool_choice(request.tool_choice, tools)
    g = request.grounding
    return GenerationRequest(
        upstream_model="",
        messages=messages_of(request.messages),
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
            status=GROUNDING_OF.get(g.status, ""),
            query=g.query,
            customer_name=g.customer_name,
            facts=tuple(fact_of(f) for f in g.facts),
            focus=tuple(g.focus),
        ),
        timeout_s=timeout_s,
    )


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
        kind=entry.kind,
        dimensions=entry.dimensions,
        adjustable_dimensions=entry.adjustable_dimensions,
        description=entry.description,
    )
