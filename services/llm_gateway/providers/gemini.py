"""GeminiProvider: Google Gemini through the official `google-genai` SDK.

OpenAI-shaped requests become Gemini's: system messages go to
`system_instruction`, turns to `contents` of role user/model with `parts`,
tool calls to `function_call` parts and tool results to `function_response`
parts. The SDK streams `streamGenerateContent?alt=sse` over aiohttp. Gemini
sends each function call whole, so a call arrives as one tool-call delta."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import aiohttp
import orjson
from google import genai
from google.genai import errors, types

from services.llm_gateway.providers import faults
from services.llm_gateway.providers.events import GenerationRequest
from services.runtime.conversation import Finish, Message, ToolCallDelta, Usage

FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}


def gemini_request(
    request: GenerationRequest, provider: str = "gemini"
) -> tuple[list[Any], types.GenerateContentConfig]:
    names_by_call = {c.id: c.name for m in request.messages for c in m.tool_calls}
    contents: list[types.Content] = []
    for message in request.messages:
        if message.role == "system":
            continue
        role, parts = _parts(message, names_by_call, provider)
        if not parts:
            continue
        if contents and contents[-1].role == role and contents[-1].parts is not None:
            contents[-1].parts.extend(parts)
        else:
            contents.append(types.Content(role=role, parts=parts))
    return contents, _config(request, provider)


def _parts(message: Message, names_by_call: dict[str, str], provider: str) -> tuple[str, list[types.Part]]:
    """A message as Gemini's role and parts: tool results as function
    responses of the user, tool calls as the model's function calls."""
    if message.role == "tool":
        name = names_by_call.get(message.tool_call_id)
        if name is None:
            raise faults.unsupported(provider, "messages.tool_call_id", "answers no earlier tool call")
        try:
            result = orjson.loads(message.content)
        except orjson.JSONDecodeError:
            result = message.content
        response = result if isinstance(result, dict) else {"result": result}
        return "user", [
            types.Part(function_response=types.FunctionResponse(id=message.tool_call_id, name=name, response=response))
        ]
    if message.role != "assistant":
        return "user", [types.Part(text=message.content)]
    parts = [types.Part(text=message.content)] if message.content else []
    for call in message.tool_calls:
        try:
            arguments = orjson.loads(call.arguments or "{}")
        except orjson.JSONDecodeError:
            raise faults.unsupported(provider, "messages.tool_calls.arguments", "not JSON") from None
        parts.append(types.Part(function_call=types.FunctionCall(id=call.id, name=call.name, args=arguments)))
    return "model", parts


def _config(request: GenerationRequest, provider: str) -> types.GenerateContentConfig:
    system = "\n\n".join(m.content for m in request.messages if m.role == "system" and m.content)
    config = types.GenerateContentConfig(
        system_instruction=system or None,
        temperature=request.temperature,
        top_p=request.top_p,
        max_output_tokens=request.max_tokens,
        stop_sequences=list(request.stop) or None,
        seed=request.seed,
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    if request.response_format is not None and request.response_format.type != "text":
        config.response_mime_type = "application/json"
        if request.response_format.type == "json_schema":
            schema = (request.response_format.json_schema or {}).get("schema")
            if schema is None:
                raise faults.unsupported(provider, "response_format.json_schema.schema", "missing")
            config.response_json_schema = schema
    if request.tools:
        config.tools = [
            types.Tool(
                function_declarations=[
                    types.FunctionDeclaration(
                        name=t.name, description=t.description, parameters_json_schema=t.parameters or None
                    )
                    for t in request.tools
                ]
            )
        ]
        choice = request.tool_choice
        if choice is not None:
            # Gemini's words: ANY is OpenAI's "required"; a named function is
            # ANY restricted to that name.
            mode = types.FunctionCallingConfigMode({"auto": "AUTO", "none": "NONE"}.get(choice.mode, "ANY"))
            config.tool_config = types.ToolConfig(
                function_calling_config=types.FunctionCallingConfig(
                    mode=mode, allowed_function_names=[choice.function_name] if choice.mode == "function" else None
                )
            )
    return config


class _ChunkReader:
    """GenerateContentResponse chunks as provider events; the finish reason
    and usage they carry. Gemini has no switch for a single tool call, so
    with `single_call` only the first is kept."""

    def __init__(self, single_call: bool):
        self._single_call = single_call
        self.calls = 0
        self.finish = "stop"
        self.prompt_tokens = self.completion_tokens = 0

    def read(self, chunk: types.GenerateContentResponse) -> list[object]:
        events: list[object] = []
        for candidate in (chunk.candidates or [])[:1]:
            for part in (candidate.content.parts if candidate.content else None) or ():
                if part.text and not part.thought:
                    events.append(part.text)
                elif part.function_call is not None and not (self.calls and self._single_call):
                    call = part.function_call
                    events.append(
                        ToolCallDelta(
                            index=self.calls,
                            id=call.id or f"call_{self.calls}",
                            name=call.name or "",
                            arguments=orjson.dumps(call.args or {}).decode(),
                        )
                    )
                    self.calls += 1
            if candidate.finish_reason:
                self.finish = FINISH_REASONS.get(str(candidate.finish_reason.value), "stop")
        if chunk.usage_metadata:
            self.prompt_tokens = chunk.usage_metadata.prompt_token_count or self.prompt_tokens
            self.completion_tokens = chunk.usage_metadata.candidates_token_count or self.completion_tokens
        return events


class GeminiProvider:
    def __init__(self, api_key: str, base_url: str | None, timeout_s: float, name: str = "gemini"):
        self.name = name
        self._timeout_s = timeout_s
        options = types.HttpOptions(base_url=base_url or None, timeout=int(timeout_s * 1000))
        self._client = genai.Client(api_key=api_key, http_options=options)

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[object, None]:
        contents, config = gemini_request(request, self.name)
        timeout_s = min(self._timeout_s, request.timeout_s) if request.timeout_s else self._timeout_s
        config.http_options = types.HttpOptions(timeout=int(timeout_s * 1000))
        reader = _ChunkReader(request.tool_choice is not None and request.tool_choice.single_call)
        with faults.translated(self._fault):
            stream = await self._client.aio.models.generate_content_stream(
                model=request.upstream_model, contents=contents, config=config
            )
            async for chunk in stream:
                for event in reader.read(chunk):
                    yield event
        finish = "tool_calls" if reader.calls and reader.finish == "stop" else reader.finish
        yield Finish(finish)
        yield Usage(reader.prompt_tokens, reader.completion_tokens)

    async def embed(
        self, upstream: str, texts: list[str], token_inputs: list[list[int]], dimensions: int, timeout_s: float | None
    ) -> tuple[list[list[float]], int]:
        """One batchEmbedContents call through google-genai; text only."""
        if token_inputs:
            raise faults.unsupported(self.name, "input", "Gemini embeds text, not token ids")
        timeout = min(self._timeout_s, timeout_s) if timeout_s else self._timeout_s
        config = types.EmbedContentConfig(
            output_dimensionality=dimensions or None, http_options=types.HttpOptions(timeout=int(timeout * 1000))
        )
        with faults.translated(self._fault):
            reply = await self._client.aio.models.embed_content(model=upstream, contents=texts, config=config)
        vectors = [list(e.values or ()) for e in reply.embeddings or ()]
        # The Gemini API does not count embedding tokens: words stand in.
        return vectors, sum(len(text.split()) for text in texts)

    def _fault(self, error: Exception) -> Exception:
        """The Fault an error of the SDK or its transport is; any other
        error is returned as it is."""
        if isinstance(error, errors.APIError):
            headers = getattr(error.response, "headers", None)
            return faults.status_fault(self.name, error.code, error.message or "", faults.retry_after_s(headers))
        if isinstance(error, (TimeoutError, aiohttp.ServerTimeoutError)):
            return faults.timeout_fault(self.name)
        if isinstance(error, aiohttp.ClientConnectorError):
            return faults.connection_fault(self.name)
        if isinstance(error, (aiohttp.ClientError, ValueError)) or faults.is_transport_error(error):
            return faults.broken_stream_fault(self.name, type(error).__name__)
        return error

    async def close(self) -> None:
        await self._client.aio.aclose()
