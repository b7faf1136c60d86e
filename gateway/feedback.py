"""FeedbackRoute: `POST /v1/feedback`, a user's verdict on an answer, by
its completion id, recorded beside the turn's outcome."""

from __future__ import annotations

import grpc
from tilores_x.v1 import optimizer_pb2, optimizer_pb2_grpc

from gateway.chat_request import parse_feedback
from gateway.exchange import Exchange
from gateway.openai_errors import from_grpc
from gateway.routes import Route


class FeedbackRoute:
    def __init__(self, optimizer: optimizer_pb2_grpc.OptimizerServiceStub):
        self._optimizer = optimizer

    def routes(self) -> list[Route]:
        return [Route("POST", "/v1/feedback", self.record, "feedback")]

    async def record(self, exchange: Exchange) -> None:
        raw = await exchange.body()
        if raw is None:
            return
        completion_id, thumbs_up, comment = parse_feedback(raw)
        try:
            await self._optimizer.RecordFeedback(
                optimizer_pb2.RecordFeedbackRequest(completion_id=completion_id, thumbs_up=thumbs_up, comment=comment),
                timeout=5.0,
            )
        except grpc.aio.AioRpcError as error:
            raise from_grpc(error) from None
        await exchange.json(200, {"object": "feedback", "completion_id": completion_id, "recorded": True})
