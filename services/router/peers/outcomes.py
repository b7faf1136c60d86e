"""How each turn went, to the optimizer: batched, spooled to disk until
taken, retried while the optimizer is away."""

from __future__ import annotations

import logging

import grpc
from tilores_x.v1 import optimizer_pb2, optimizer_pb2_grpc

from services.router.peers.generation import grounding_proto
from services.router.ports import Outcome
from services.runtime.limits import MAX_GRPC_MESSAGE_BYTES
from services.runtime.outbox import Outbox, RetryLater
from services.runtime.spool import Spool

log = logging.getLogger("router.outcomes")


# Only a request the optimizer can never take is given up; anything else
# (away, slow, a connection cut by its death mid-call) is sent again.
REFUSE_OUTCOMES_ON = frozenset({grpc.StatusCode.INVALID_ARGUMENT})


class OutcomeRefused(Exception):
    """The optimizer refused an outcome for good (a bad request)."""


# Outcomes one RecordOutcomes call carries at most (the optimizer takes 500),
# and bytes (a quarter of what a gRPC message may be).
OUTCOMES_PER_CALL = 100
OUTCOME_BYTES_PER_CALL = MAX_GRPC_MESSAGE_BYTES // 4
# Outcomes wait this long for others before a call goes: a call per many
# turns under load; the quality loop reads them seconds later anyway.
SEND_LINGER_S = 0.05


class OutcomesOverGrpc:
    def __init__(self, optimizer: optimizer_pb2_grpc.OptimizerServiceStub, spool: Spool | None = None):
        """With a `spool`, each outcome is on disk from its turn's end until
        the optimizer has taken it, and what a killed router left is sent
        again when it starts (the optimizer records a completion id once)."""
        self._optimizer = optimizer
        # One call for whatever piled up while the last was on its way or
        # came within the linger.
        self.outbox: Outbox[optimizer_pb2.RecordOutcomeRequest] = Outbox(
            self._send,
            name="outcomes",
            senders=2,
            batch=OUTCOMES_PER_CALL,
            spool=spool,
            encode=optimizer_pb2.RecordOutcomeRequest.SerializeToString,
            decode=optimizer_pb2.RecordOutcomeRequest.FromString,
            max_batch_bytes=OUTCOME_BYTES_PER_CALL,
            linger_s=SEND_LINGER_S,
        )
        self.outbox.recover()

    def post(self, outcome: Outcome) -> None:
        """Off the hot path; kept (on disk with a spool) and retried until
        the optimizer takes it."""
        self.outbox.post(_outcome_message(outcome))

    async def _send(self, outcomes: list[optimizer_pb2.RecordOutcomeRequest]) -> None:
        request = optimizer_pb2.RecordOutcomesRequest(outcomes=outcomes)
        try:
            reply = await self._optimizer.RecordOutcomes(request, timeout=2.0)
        except grpc.aio.AioRpcError as error:
            if error.code() in REFUSE_OUTCOMES_ON:
                raise OutcomeRefused(error.code().name) from None
            raise RetryLater(error.code().name) from None
        for refused in reply.refused:
            log.warning("outcome.refused", extra={"fields": {"field": refused.field, "reason": refused.message}})


def _outcome_message(outcome: Outcome) -> optimizer_pb2.RecordOutcomeRequest:
    return optimizer_pb2.RecordOutcomeRequest(
        completion_id=outcome.completion_id,
        prompt=outcome.prompt.name,
        version=outcome.prompt.version,
        experiment_id=outcome.prompt.experiment_id,
        model=outcome.model,
        latency_ms=outcome.latency_ms,
        tokens=outcome.tokens,
        error=outcome.error,
        question=outcome.question,
        answer=outcome.answer,
        grounding=grounding_proto(outcome.grounding),
        evaluation_run_id=outcome.evaluation_run_id,
        mode=outcome.mode,
        tool_results=outcome.tool_results,
    )
