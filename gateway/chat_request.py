"""parse_chat_request: an OpenAI chat-completions body, checked field by
field, turned into the router's ChatRequest. Every error names the field, in
OpenAI's words."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from tilores_x.v1 import common_pb2, router_pb2

from gateway.json_body import (
    INT32_MAX,
    INT64_MAX,
    check_integer,
    check_number,
    check_string,
    field,
    invalid_type,
    json_object,
    missing,
    reject_unknown,
)
from gateway.openai_errors import OpenAIError
from services.runtime.agent_modes import MODE_BY_AGENT_TYPE, MODE_CATEGORIES, PROMPT_NAME
from services.runtime.conversation_wire import AGENT_MODE_ENUM, RESPONSE_FORMAT_ENUM, ROLE_ENUM, TOOL_CHOICE_ENUM
from services.runtime.limits import DEFAULT_BATCH_CONCURRENCY, MAX_BATCH, MAX_BATCH_CONCURRENCY

# OpenAI's "developer" is its newer name for the system role.
ROLES = {**ROLE_ENUM, "developer": ROLE_ENUM["system"]}
# Accepted and honoured. `no_fallback` is this gateway's own: answer from the
# requested model only; agent_type, category, prompt_id and prompt_version
# are the original assistant's (see the agent modes).
KNOWN_FIELDS = {
    "model", "messages", "stream", "stream_options", "temperature", "max_tokens",
    "max_completion_tokens", "user", "n", "top_p", "stop", "seed", "response_format",
    "tools", "tool_choice", "parallel_tool_calls", "no_fallback",
    "agent_type", "category", "prompt_id", "prompt_version",
}  # fmt: skip
# Part of the OpenAI API but not offered by this gateway: rejected by name
# rather than silently dropped.
UNSUPPORTED_FIELDS = {
    "functions", "function_call", "logprobs", "top_logprobs", "logit_bias",
    "presence_penalty", "frequency_penalty", "audio", "modalities", "prediction",
    "reasoning_effort", "web_search_options",
}  # fmt: skip


@dataclass
class ChatCall:
    """A valid request: what to send to the router and how to answer."""

    request: router_pb2.ChatRequest
    model: str
    stream: bool
    include_usage: bool


def _content(param: str, value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = []
        for n, part in enumerate(value):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise OpenAIError(
                    400,
                    f"Invalid value for '{param}[{n}]': only text content parts are supported.",
                    param=f"{param}[{n}]",
                    code="invalid_value",
                )
            parts.append(part["text"])
        return "".join(parts)
    if value is None:
        return ""
    raise invalid_type(param, "a string or an array of content parts", value)


def _number(body: dict[str, Any], name: str, lo: float, hi: float) -> float | None:
    if body.get(name) is None:  # null is as good as absent
        return None
    return check_number(name, field(body, name, (int, float)), lo, hi)


def _positive_int32(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    return None if value is None else check_integer(name, value, 1, INT32_MAX)


def _tool_calls(param: str, calls: object) -> list[common_pb2.ToolCall]:
    if not isinstance(calls, list):
        raise invalid_type(param, "an array", calls)
    out = []
    for k, call in enumerate(calls):
        where = f"{param}[{k}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            raise invalid_type(f"{where}.function", "an object", function)
        for key, value in (("id", call.get("id")), ("function.name", function.get("name"))):
            if not isinstance(value, str) or not value:
                raise missing(f"{where}.{key}")
            check_string(f"{where}.{key}", value)
        arguments = function.get("arguments", "")
        if not isinstance(arguments, str):
            raise invalid_type(f"{where}.function.arguments", "a string", arguments)
        out.append(common_pb2.ToolCall(id=call["id"], name=function["name"], arguments=arguments))
    return out


def _options(body: dict[str, Any], request: router_pb2.ChatRequest) -> None:
    top_p = _number(body, "top_p", 0, 1)
    if top_p is not None:
        request.options.top_p = top_p
    stop = body.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else stop
        if not isinstance(stops, list) or not all(isinstance(x, str) and x for x in stops):
            raise invalid_type("stop", "a string or an array of strings", stop)
        if len(stops) > 4:
            raise OpenAIError(400, "Invalid 'stop': at most 4 sequences.", param="stop", code="invalid_value")
        request.options.stop.extend(stops)
    seed = body.get("seed")
    if seed is not None:
        request.options.seed = check_integer("seed", seed, -INT64_MAX - 1, INT64_MAX)
    response_format = body.get("response_format")
    if response_format is not None:
        kind = response_format.get("type") if isinstance(response_format, dict) else None
        if kind not in RESPONSE_FORMAT_ENUM:
            raise OpenAIError(
                400,
                "Invalid 'response_format.type': expected 'text', 'json_object' or 'json_schema'.",
                param="response_format.type",
                code="invalid_value",
            )
        request.options.response_format.type = RESPONSE_FORMAT_ENUM[kind]
        if kind == "json_schema":
            schema = response_format.get("json_schema")
            if not isinstance(schema, dict) or not isinstance(schema.get("schema"), dict):
                raise OpenAIError(
                    400, "Missing required parameter: 'response_format.json_schema.schema'.",
                    param="response_format.json_schema", code="missing_required_parameter",
                )  # fmt: skip
            request.options.response_format.json_schema = orjson.dumps(schema).decode()


TOOL_CHOICES = {name: TOOL_CHOICE_ENUM[name] for name in ("auto", "none", "required")}


def _tools(body: dict[str, Any], request: router_pb2.ChatRequest) -> None:
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise invalid_type("tools", "an array", tools)
        for n, tool in enumerate(tools):
            _tool(f"tools[{n}]", tool, request)
    choice = body.get("tool_choice")
    if choice is not None:
        _tool_choice(choice, request)
    parallel = body.get("parallel_tool_calls")
    if parallel is not None:
        if not isinstance(parallel, bool):
            raise invalid_type("parallel_tool_calls", "a boolean", parallel)
        if not request.tools:
            raise OpenAIError(
                400,
                "Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only allowed when 'tools' "
                "are specified.",
                param="parallel_tool_calls",
                code="invalid_value",
            )
        request.tool_choice.single_call = not parallel


def _tool_choice(choice: object, request: router_pb2.ChatRequest) -> None:
    """`tool_choice`: a mode by name, or one function of `tools` by its name."""
    names = {tool.name for tool in request.tools}
    if isinstance(choice, str) and choice in TOOL_CHOICES:
        request.tool_choice.mode = TOOL_CHOICES[choice]
    elif isinstance(choice, dict) and choice.get("type") == "function":
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str) or not name:
            raise missing("tool_choice.function.name")
        if name not in names:
            raise OpenAIError(
                400,
                f"Invalid 'tool_choice': function '{check_string('tool_choice.function.name', name)}' "
                "not found in 'tools'.",
                param="tool_choice.function.name",
                code="invalid_value",
            )
        request.tool_choice.mode = common_pb2.TOOL_CHOICE_MODE_FUNCTION
        request.tool_choice.function_name = name
    else:
        raise OpenAIError(
            400,
            "Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or "
            '{"type": "function", "function": {"name": ...}}.',
            param="tool_choice",
            code="invalid_value",
        )
    if choice in ("required",) and not names:
        raise OpenAIError(
            400,
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
            param="tool_choice",
            code="invalid_value",
        )


def _tool(where: str, tool: object, request: router_pb2.ChatRequest) -> None:
    if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(tool.get("function"), dict):
        raise OpenAIError(400, f"Invalid '{where}': expected a function tool.", param=where, code="invalid_value")
    function = tool["function"]
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise missing(f"{where}.function.name")
    check_string(f"{where}.function.name", name, MAX_FUNCTION_NAME_CHARS)
    parameters = function.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise invalid_type(f"{where}.function.parameters", "an object", parameters)
    description = function.get("description") or ""
    if not isinstance(description, str):
        raise invalid_type(f"{where}.function.description", "a string", description)
    request.tools.add(
        name=name, description=description, parameters_json=orjson.dumps(parameters).decode() if parameters else ""
    )


def parse_chat_request(raw: bytes) -> ChatCall:
    return chat_call(json_object(raw))


def chat_call(body: dict[str, Any]) -> ChatCall:
    """A parsed chat-completions body; OpenAIError naming the field."""
    _known_fields(body)
    model = body.get("model")
    if model is None:
        raise missing("model")
    check_string("model", model, empty=False)
    request = router_pb2.ChatRequest(model=model)
    _messages(body, request)
    _options(body, request)
    _tools(body, request)
    request.no_fallback = _boolean(body, "no_fallback")
    stream = _boolean(body, "stream")
    include_usage = _stream_options(body, stream)
    n = body.get("n")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int)):
        raise invalid_type("n", "an integer", n)
    if n is not None and n != 1:
        raise OpenAIError(400, "Only n=1 is supported.", param="n", code="unsupported_value")
    temperature = _number(body, "temperature", 0, 2)
    if temperature is not None:
        request.temperature = temperature
    max_tokens = _positive_int32(body, "max_completion_tokens") or _positive_int32(body, "max_tokens")
    if max_tokens is not None:
        request.max_tokens = max_tokens
    user = body.get("user")
    if user is not None:
        request.conversation_id = check_string("user", user)
    _agent_fields(body, request)
    return ChatCall(request=request, model=model, stream=stream, include_usage=include_usage)


def _agent_fields(body: dict[str, Any], request: router_pb2.ChatRequest) -> None:
    """The original assistant's mode and prompt fields."""
    agent_type = body.get("agent_type")
    if agent_type is not None:
        check_string("agent_type", agent_type)
        mode = MODE_BY_AGENT_TYPE.get(agent_type.strip().lower().lstrip("/"))
        if mode is None:
            known = ", ".join(sorted(MODE_BY_AGENT_TYPE))
            raise OpenAIError(
                400, f"Invalid 'agent_type': {agent_type!r}. Expected one of: {known}.",
                param="agent_type", code="invalid_value",
            )  # fmt: skip
        request.agent_mode = AGENT_MODE_ENUM[mode.name]
    category = body.get("category")
    if category is not None:
        check_string("category", category)
        if category not in MODE_CATEGORIES:
            raise OpenAIError(
                400, f"Invalid 'category': {category!r}. Expected one of: {', '.join(MODE_CATEGORIES)}.",
                param="category", code="invalid_value",
            )  # fmt: skip
        request.category = category
    prompt_id = body.get("prompt_id")
    if prompt_id is not None:
        check_string("prompt_id", prompt_id)
        if not PROMPT_NAME.fullmatch(prompt_id):
            raise OpenAIError(
                400, "Invalid 'prompt_id': letters, digits, '-' and '_' only, at most 64.",
                param="prompt_id", code="invalid_value",
            )  # fmt: skip
        request.prompt_id = prompt_id
    version = _positive_int32(body, "prompt_version")
    if version is not None:
        request.prompt_version = version


def _known_fields(body: dict[str, Any]) -> None:
    for name in body:
        if name in UNSUPPORTED_FIELDS:
            raise OpenAIError(
                400, f"'{name}' is not supported by this gateway.", param=name, code="unsupported_parameter"
            )
        if name not in KNOWN_FIELDS:
            raise OpenAIError(400, f"Unrecognized request argument supplied: {name}", param=name)


def _boolean(body: dict[str, Any], name: str) -> bool:
    value = body.get(name)
    if value is None:  # null is as good as absent
        return False
    if not isinstance(value, bool):
        raise invalid_type(name, "a boolean", value)
    return value


def _stream_options(body: dict[str, Any], stream: bool) -> bool:
    """Whether a streamed answer ends with a usage chunk."""
    options = body.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, dict):
        raise invalid_type("stream_options", "an object", options)
    if not stream:
        raise OpenAIError(
            400, "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options", code="invalid_value",
        )  # fmt: skip
    include_usage = options.get("include_usage", False)
    if not isinstance(include_usage, bool):
        raise invalid_type("stream_options.include_usage", "a boolean", include_usage)
    return include_usage


def _messages(body: dict[str, Any], request: router_pb2.ChatRequest) -> None:
    messages = body.get("messages")
    if messages is None:
        raise missing("messages")
    if not isinstance(messages, list):
        raise invalid_type("messages", "an array", messages)
    if not messages:
        raise OpenAIError(
            400,
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            param="messages",
            code="empty_array",
        )
    for n, message in enumerate(messages):
        request.messages.append(_message(f"messages[{n}]", message))


def _message(param: str, message: object) -> common_pb2.ChatMessage:
    if not isinstance(message, dict):
        raise invalid_type(param, "an object", message)
    role = message.get("role")
    if role is None:
        raise missing(f"{param}.role")
    if not isinstance(role, str):
        raise invalid_type(f"{param}.role", "a string", role)
    if role not in ROLES:
        raise OpenAIError(
            400,
            f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'tool', and 'developer'.",
            param=f"{param}.role",
            code="invalid_value",
        )
    if "content" not in message and role != "assistant":
        raise missing(f"{param}.content")
    name = message.get("name")
    if name is not None:
        check_string(f"{param}.name", name)
    parsed = common_pb2.ChatMessage(
        role=ROLES[role], content=_content(f"{param}.content", message.get("content")), name=name or ""
    )
    if role == "tool":
        call_id = message.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            raise missing(f"{param}.tool_call_id")
        parsed.tool_call_id = check_string(f"{param}.tool_call_id", call_id)
    if role == "assistant" and message.get("tool_calls") is not None:
        parsed.tool_calls.extend(_tool_calls(f"{param}.tool_calls", message["tool_calls"]))
    return parsed


MAX_FUNCTION_NAME_CHARS = 64  # OpenAI's limit on a function name
MAX_COMMENT_CHARS = 4000


def parse_batch(raw: bytes) -> tuple[list[tuple[str, dict[str, Any]]], int]:
    """`{"requests": [{"custom_id": "q1", "body": {<chat completion>}}, ...],
    "concurrency": 4}` -> ([(custom_id, body)], concurrency). The bodies are
    checked one by one later, so one bad body fails only itself."""
    body = json_object(raw)
    reject_unknown(body, ("requests", "concurrency"))
    requests = body.get("requests")
    if requests is None:
        raise missing("requests")
    if not isinstance(requests, list):
        raise invalid_type("requests", "an array", requests)
    if not requests or len(requests) > MAX_BATCH:
        raise OpenAIError(
            400, f"Invalid 'requests': between 1 and {MAX_BATCH} requests, got {len(requests)}.", param="requests"
        )
    concurrency = body.get("concurrency", DEFAULT_BATCH_CONCURRENCY)
    if (
        isinstance(concurrency, bool)
        or not isinstance(concurrency, int)
        or not 1 <= concurrency <= MAX_BATCH_CONCURRENCY
    ):
        raise OpenAIError(
            400,
            f"Invalid 'concurrency': expected an integer from 1 to {MAX_BATCH_CONCURRENCY} "
            f"(default {DEFAULT_BATCH_CONCURRENCY}), but got {concurrency!r} instead.",
            param="concurrency",
            code="invalid_value",
        )
    items = []
    for n, item in enumerate(requests):
        if not isinstance(item, dict) or not isinstance(item.get("body"), dict):
            raise OpenAIError(
                400, f"Invalid 'requests[{n}]': expected an object with a 'body' object.", param=f"requests[{n}]"
            )
        custom_id = check_string(f"requests[{n}].custom_id", item.get("custom_id", str(n)))
        items.append((custom_id, item["body"]))
    return items, concurrency


def parse_feedback(raw: bytes) -> tuple[str, bool, str]:
    """`{"completion_id": "chatcmpl-...", "rating": "up" | "down", "comment": "..."}`."""
    body = json_object(raw)
    reject_unknown(body, ("completion_id", "rating", "comment"))
    completion_id = body.get("completion_id")
    if completion_id is None:
        raise missing("completion_id")
    check_string("completion_id", completion_id, empty=False)
    rating = body.get("rating")
    if rating is None:
        raise missing("rating")
    if rating not in ("up", "down"):
        raise OpenAIError(400, "Invalid 'rating': expected 'up' or 'down'.", param="rating", code="invalid_value")
    comment = check_string("comment", body.get("comment", ""), MAX_COMMENT_CHARS)
    return completion_id, rating == "up", comment
