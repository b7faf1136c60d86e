"""OptimizerService servicer: maps GetPrompt onto the prompt store."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from tilores_x.v1 import optimizer_pb2, optimizer_pb2_grpc

from services.optimizer.prompts import PromptStore


class OptimizerService(optimizer_pb2_grpc.OptimizerServiceServicer):
    def __init__(self, prompts: PromptStore):
        self._prompts = prompts

    async def GetPrompt(self, request, context):
        prompt = self._prompts.active(request.name)
        return optimizer_pb2.GetPromptResponse(name=prompt.name, version=prompt.version, template=prompt.template)


class OptimizerComponent:
    def __init__(self, prompts: PromptStore):
        self.prompts = prompts

    def register(self, server: grpc.aio.Server) -> Sequence[str]:
        optimizer_pb2_grpc.add_OptimizerServiceServicer_to_server(OptimizerService(self.prompts), server)
        return [optimizer_pb2.DESCRIPTOR.services_by_name["OptimizerService"].full_name]

    async def close(self) -> None:
        self.prompts.close()
