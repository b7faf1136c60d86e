"""The models llm_gateway serves (provider, window, tools, fallbacks), read
from it and kept a minute."""

from __future__ import annotations

import asyncio

import grpc
from tilores_x.v1 import llm_gateway_pb2, llm_gateway_pb2_grpc

from services.router.ports import ModelInfo

MODELS_TTL_S = 60.0


class ModelCatalogOverGrpc:
    def __init__(self, llm: llm_gateway_pb2_grpc.LlmGatewayServiceStub):
        self._llm = llm
        self._models: dict[str, ModelInfo] | None = None
        self._read_at = 0.0

    async def models(self) -> dict[str, ModelInfo]:
        """The catalog by id, read from llm_gateway and kept a minute; empty
        while llm_gateway cannot say."""
        now = asyncio.get_running_loop().time()
        if self._models is not None and now - self._read_at < MODELS_TTL_S:
            return self._models
        try:
            reply = await self._llm.ListModels(llm_gateway_pb2.ListModelsRequest(), timeout=2.0)
        except grpc.aio.AioRpcError:
            return self._models or {}
        self._models = {
            m.id: ModelInfo(m.id, m.provider, m.context_window, m.supports_tools, tuple(m.fallbacks))
            for m in reply.models
        }
        self._read_at = now
        return self._models
