"""ModelRoutes: `GET /v1/models` (the catalog) and `GET /v1/models/{model}`
(one model, as the SDKs' `models.retrieve` expects)."""

from __future__ import annotations

import urllib.parse
from typing import Any

import grpc
from tilores_x.v1 import llm_gateway_pb2, llm_gateway_pb2_grpc

from gateway.exchange import Exchange
from gateway.json_body import MAX_ID_CHARS
from gateway.openai_errors import OpenAIError, from_grpc
from gateway.routes import Route


class ModelRoutes:
    def __init__(self, llm: llm_gateway_pb2_grpc.LlmGatewayServiceStub):
        self._llm = llm

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/v1/models", self.list, "models"),
            Route("GET", "/v1/models/{model}", self.retrieve, "models"),
        ]

    async def _catalog(self) -> list[llm_gateway_pb2.Model]:
        try:
            reply = await self._llm.ListModels(llm_gateway_pb2.ListModelsRequest(), timeout=5.0)
        except grpc.aio.AioRpcError as error:
            raise from_grpc(error) from None
        return list(reply.models)

    async def list(self, exchange: Exchange) -> None:
        await exchange.json(200, {"object": "list", "data": [model_object(m) for m in await self._catalog()]})

    async def retrieve(self, exchange: Exchange, model: str) -> None:
        model_id = urllib.parse.unquote(model)
        for entry in await self._catalog():
            if entry.id == model_id:
                await exchange.json(200, model_object(entry))
                return
        shown = model_id if len(model_id) <= MAX_ID_CHARS else model_id[:MAX_ID_CHARS] + "..."
        raise OpenAIError(
            404,
            f"The model '{shown}' does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
        )


def model_object(model: llm_gateway_pb2.Model) -> dict[str, Any]:
    """A catalog entry as an OpenAI model object, with this mesh's own fields."""
    return {
        "id": model.id,
        "object": "model",
        "created": 0,
        "owned_by": model.owned_by,
        "provider": model.provider,
        "available": model.available,
        "unavailable_reason": model.unavailable_reason or None,
        "context_window": model.context_window,
        "kind": model.kind or "chat",
        **(
            {"dimensions": model.dimensions, "adjustable_dimensions": model.adjustable_dimensions}
            if model.kind == "embedding"
            else {}
        ),
        "description": model.description or None,
    }
