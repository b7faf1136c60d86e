"""CompletionRoutes: OpenAI's legacy `POST /v1/completions`, answered through
the same router path as a chat turn (the prompt is the user's message: a
customer it names is found and the answer grounded), in the `text_completion`
shapes, streamed (SSE) or whole.

`prompt` is a string or a list of strings (one choice each, `index` in
order); token-id prompts, `suffix`, `logprobs` and `best_of` above 1 are
refused by name; `n` must be 1; `echo` puts the prompt before the answer.
`max_tokens` defaults to 16, as OpenAI's does."""

from __future__ import annotations

import time
import uuid
from typing import Any

import grpc

from gateway import sse
from gateway.chat import for_router, relay_events
from gateway.chat_request import chat_call
from gateway.exchange import Exchange
from gateway.json_body import check_integer, field, invalid_type, json_object, missing
from gateway.openai_errors import OpenAIError, from_grpc, from_status
from gateway.quotas import Quotas
from gateway.routes import Route
from gateway.sse import DONE, error_event
from services.runtime.conversation_wire import FINISH_OF
from services.runtime.request_context import answering_model

DEFAULT_MAX_TOKENS = 16
MAX_PROMPTS = 16
# Passed on as the chat fields of the same name.
SHARED_FIELDS = ("model", "max_tokens", "temperature", "top_p", "stop", "seed", "user", "stream", "stream_options")
REFUSED = {
    "suffix": "suffix (insertion) is not supported",
    "logprobs": "log probabilities are not returned",
    "logit_bias": "logit_bias is not supported",
    "presence_penalty": "presence_penalty is not supported",
    "frequency_penalty": "frequency_penalty is not supported",
}
KNOWN = {*SHARED_FIELDS, "prompt", "n", "best_of", "echo", *REFUSED}


def _prompts(body: dict[str, Any]) -> list[str]:
    if "prompt" not in body:
        raise missing("prompt")
    prompt = body["prompt"]
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        if len(prompt) > MAX_PROMPTS:
            raise OpenAIError(400, f"Invalid 'prompt': at most {MAX_PROMPTS} prompts.", param="prompt")
        return prompt
    if isinstance(prompt, list) and prompt and all(isinstance(p, (int, list)) for p in prompt):
        raise OpenAIError(
            400,
            "Invalid 'prompt': token-id prompts are not supported; send text.",
            param="prompt",
            code="invalid_value",
        )
    raise invalid_type("prompt", "a string or an array of strings", prompt)


def _checked(body: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(body) - KNOWN)
    if unknown:
        raise OpenAIError(400, f"Unrecognized request argument supplied: {unknown[0]}", param=unknown[0])
    for name, why in REFUSED.items():
        if body.get(name) not in (None, 0, False, ""):
            raise OpenAIError(
                400, f"Invalid '{name}': {why} by this gateway.", param=name, code="unsupported_parameter"
            )
    for name in ("n", "best_of"):
        if body.get(name) is not None:
            check_integer(name, field(body, name, int), 1, 1)
    return body


class CompletionRoutes:
    def __init__(self, router: Any, quotas: Quotas, timeout_s: float, heartbeat_s: float) -> None:
        self._router = router
        self._quotas = quotas
        self._timeout_s = timeout_s
        self._heartbeat_s = heartbeat_s

    def routes(self) -> list[Route]:
        return [Route("POST", "/v1/completions", self.completions, "chat")]

    async def completions(self, exchange: Exchange) -> None:
        raw = await exchange.body()
        if raw is None:
            return
        body = _checked(json_object(raw))
        prompts = _prompts(body)
        echo = field(body, "echo", bool, default=False)
        calls = [_chat_call(body, prompt) for prompt in prompts]
        first = calls[0]
        # Each prompt is an answer, and counts as one, as each batch item does.
        admission = await self._quotas.admit(exchange.key, "chat", first.model, requests=len(calls))
        exchange.headers.extend(admission.headers())
        head = {"id": f"cmpl-{uuid.uuid4().hex[:24]}", "object": "text_completion", "created": int(time.time())}
        results = []
        for index, (prompt, chat) in enumerate(zip(prompts, calls, strict=True)):
            for_router(chat.request, exchange)
            chat.request.completion_id = f"{head['id']}-{index}" if len(prompts) > 1 else head["id"]
            call = self._router.Chat(chat.request, timeout=self._timeout_s)
            try:
                result = await self._one(exchange, call, chat, index, prompt if echo else "", head)
            except grpc.aio.AioRpcError as error:
                if not exchange.status:
                    raise from_grpc(error) from None
                await exchange.send(error_event(error.code().name, error.details()))
                return
            if result is None:  # a stream that ended in an error event
                return
            results.append(result)
        usage = _usage([u for _, _, u, _ in results if u is not None])
        await self._quotas.spend_tokens(exchange.key, first.model, usage["total_tokens"])
        model = results[-1][3]
        if first.stream:
            if not exchange.status:
                await exchange.start(200, sse.HEADERS)
            tail = sse.event(head | {"model": model, "choices": [], "usage": usage}) if first.include_usage else b""
            await exchange.send(tail + DONE)
            return
        choices = [
            {"text": text, "index": n, "logprobs": None, "finish_reason": finish}
            for n, (text, finish, _, _) in enumerate(results)
        ]
        await exchange.json(
            200, head | {"model": model, "system_fingerprint": None, "choices": choices, "usage": usage}
        )

    async def _one(
        self, exchange: Exchange, call: Any, chat: Any, index: int, echoed: str, head: dict[str, Any]
    ) -> tuple[str, str, Any, str] | None:
        """One prompt's answer: streamed as chunks of choice `index`, or
        gathered; (text, finish reason, usage, model), or None after an
        error event went out."""
        model = chat.model
        parts: list[str] = [echoed] if echoed else []
        finish, usage = "stop", None
        started = False
        first = await sse.first_event(call, exchange, self._heartbeat_s) if chat.stream else await call.read()
        async for event in relay_events(call, first):
            if not started:
                model = answering_model(await call.initial_metadata()) or model
                started = True
                if chat.stream and not exchange.status and event.WhichOneof("event") != "error":
                    # Started once an answer comes: a refusal before it is a proper HTTP status.
                    await exchange.start(200, sse.HEADERS)
                if chat.stream and echoed and exchange.status:
                    await exchange.send(_chunk(head, model, index, echoed, None), more=True)
            kind = event.WhichOneof("event")
            if kind == "delta":
                parts.append(event.delta)
                if chat.stream:
                    await exchange.send(_chunk(head, model, index, event.delta, None), more=True)
            elif kind == "finish":
                finish = FINISH_OF.get(event.finish.reason, "stop")
                model = event.finish.model or model
                if chat.stream:
                    await exchange.send(_chunk(head, model, index, "", finish), more=True)
            elif kind == "usage":
                usage = event.usage
            elif kind == "error":
                if chat.stream and exchange.status:
                    await exchange.send(error_event(event.error.code, event.error.message))
                    return None
                raise from_status(event.error.code, event.error.message)
        return "".join(parts), finish, usage, model


def _chat_call(body: dict[str, Any], prompt: str) -> Any:
    """The chat request one prompt is answered as."""
    chat_body = {k: body[k] for k in SHARED_FIELDS if k in body}
    chat_body.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
    chat_body["messages"] = [{"role": "user", "content": prompt}]
    try:
        return chat_call(chat_body)
    except OpenAIError as error:
        raise _renamed(error) from None


def _usage(usages: list[Any]) -> dict[str, int]:
    prompt_tokens = sum(u.prompt_tokens for u in usages)
    completion_tokens = sum(u.completion_tokens for u in usages)
    total = prompt_tokens + completion_tokens
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": total}


def _chunk(head: dict[str, Any], model: str, index: int, text: str, finish: str | None) -> bytes:
    choice = {"text": text, "index": index, "logprobs": None, "finish_reason": finish}
    return sse.event(head | {"model": model, "choices": [choice]})


def _renamed(error: OpenAIError) -> OpenAIError:
    """A chat field's error in the words of this endpoint: the prompt is
    the chat's first message."""
    if error.param and error.param.startswith("messages[0]"):
        message = error.message.replace(error.param, "prompt")
        return OpenAIError(error.status, message, param="prompt", code=error.code)
    return error
