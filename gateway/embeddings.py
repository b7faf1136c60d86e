"""EmbeddingRoute: OpenAI's `POST /v1/embeddings` through llm_gateway's Embed:
`input` a string, a list of strings, a list of token ids or a list of those
lists; `encoding_format` `float` or `base64` (little-endian float32, as
OpenAI sends it); `dimensions` where the model allows shorter vectors;
`user`. Counted against the chat quota with its tokens."""

from __future__ import annotations

import base64
import struct
from typing import Any

import grpc
from tilores_x.v1 import llm_gateway_pb2, llm_gateway_pb2_grpc

from gateway.exchange import Exchange
from gateway.json_body import (
    INT32_MAX,
    MAX_ID_CHARS,
    check_integer,
    check_string,
    field,
    invalid_type,
    json_object,
)
from gateway.openai_errors import OpenAIError, from_grpc
from gateway.quotas import Quotas
from gateway.routes import Route

KNOWN = {"model", "input", "encoding_format", "dimensions", "user"}
MAX_INPUTS = 2048


def _inputs(value: object) -> tuple[list[str], list[list[int]]]:
    """(texts, token-id inputs): exactly one is non-empty."""
    if isinstance(value, str):
        return [value], []
    if isinstance(value, list) and value:
        if len(value) > MAX_INPUTS:
            raise OpenAIError(400, f"Invalid 'input': at most {MAX_INPUTS} inputs.", param="input")
        if all(isinstance(v, str) for v in value):
            return list(value), []
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return [], [_token_ids("input", value)]
        if all(isinstance(v, list) and v and all(isinstance(n, int) and not isinstance(n, bool) for n in v)
               for v in value):  # fmt: skip
            return [], [_token_ids(f"input[{n}]", v) for n, v in enumerate(value)]
    if isinstance(value, list) and not value:
        raise OpenAIError(400, "Invalid 'input': must not be empty.", param="input", code="invalid_value")
    raise invalid_type("input", "a string, an array of strings, or token ids", value)


def _token_ids(where: str, ids: list[int]) -> list[int]:
    """Token ids as a tokenizer gives them: non-negative, within 32 bits."""
    for n, token in enumerate(ids):
        check_integer(f"{where}[{n}]", token, 0, INT32_MAX)
    return list(ids)


def _vector(values: Any, encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
    return list(values)


class EmbeddingRoute:
    def __init__(self, llm: llm_gateway_pb2_grpc.LlmGatewayServiceStub, quotas: Quotas):
        self._llm = llm
        self._quotas = quotas

    def routes(self) -> list[Route]:
        return [Route("POST", "/v1/embeddings", self.embeddings, "chat")]

    async def embeddings(self, exchange: Exchange) -> None:
        raw = await exchange.body()
        if raw is None:
            return
        body = json_object(raw)
        unknown = sorted(set(body) - KNOWN)
        if unknown:
            raise OpenAIError(400, f"Unrecognized request argument supplied: {unknown[0]}", param=unknown[0])
        model = check_string("model", field(body, "model", str, required=True), MAX_ID_CHARS)
        if "input" not in body:
            raise OpenAIError(
                400, "Missing required parameter: 'input'.", param="input", code="missing_required_parameter"
            )
        texts, token_inputs = _inputs(body["input"])
        encoding = field(body, "encoding_format", str, default="float")
        if encoding not in ("float", "base64"):
            raise OpenAIError(400, "Invalid 'encoding_format': 'float' or 'base64'.", param="encoding_format")
        dimensions = body.get("dimensions")
        if dimensions is not None:
            dimensions = check_integer("dimensions", field(body, "dimensions", int), 1, INT32_MAX)
        if body.get("user") is not None:
            check_string("user", field(body, "user", str), MAX_ID_CHARS)
        exchange.headers.extend((await self._quotas.admit(exchange.key, "chat", model)).headers())
        request = llm_gateway_pb2.EmbedRequest(
            model=model,
            texts=texts,
            token_inputs=[llm_gateway_pb2.TokenIds(ids=ids) for ids in token_inputs],
            dimensions=dimensions or 0,
        )
        try:
            reply = await self._llm.Embed(request, timeout=60.0)
        except grpc.aio.AioRpcError as error:
            raise from_grpc(error) from None
        await self._quotas.spend_tokens(exchange.key, model, reply.prompt_tokens)
        data = [
            {"object": "embedding", "index": n, "embedding": _vector(e.values, encoding)}
            for n, e in enumerate(reply.embeddings)
        ]
        usage = {"prompt_tokens": reply.prompt_tokens, "total_tokens": reply.prompt_tokens}
        await exchange.json(200, {"object": "list", "data": data, "model": reply.model, "usage": usage})
