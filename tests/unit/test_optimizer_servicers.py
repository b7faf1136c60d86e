"""OptimizerService is served by two servicers, the hot path and the
offline work: together they serve every RPC of the contract, each once."""

from __future__ import annotations

import pytest
from tilores_x.v1 import optimizer_pb2

from services.optimizer.outcome_recorder import Recorded
from services.optimizer.service import SERVICE, PromptServicer, QualityServicer, add_to_server
from services.runtime.faults import InvalidArgument, Unavailable


class _Server:
    def __init__(self) -> None:
        self.handlers: list = []

    def add_generic_rpc_handlers(self, handlers) -> None:
        self.handlers.extend(handlers)

    def add_registered_method_handlers(self, name, handlers) -> None:
        self.handlers.append((name, handlers))


def _rpcs(servicer: type) -> set[str]:
    return {name for name in SERVICE.methods_by_name if name in vars(servicer)}


def test_the_two_servicers_split_the_contract_between_them():
    hot, offline = _rpcs(PromptServicer), _rpcs(QualityServicer)
    assert hot & offline == set()
    assert hot | offline == set(SERVICE.methods_by_name)
    assert {"GetPrompt", "RecordOutcomes", "StartExperiment"} <= hot
    assert {"GetQualityHistory", "TriggerCycle", "StartEvaluation"} <= offline


def test_an_rpc_served_by_none_or_by_two_stops_the_start():
    hot = PromptServicer.__new__(PromptServicer)
    offline = QualityServicer.__new__(QualityServicer)
    with pytest.raises(RuntimeError, match="no servicer for GetCycleStatus, GetEvaluation"):
        add_to_server(_Server(), hot)
    with pytest.raises(RuntimeError, match=r"OptimizerService\.GetPrompt is served twice"):
        add_to_server(_Server(), hot, offline, hot)
    server = _Server()
    add_to_server(server, hot, offline)
    assert server.handlers


class _StoreAway:
    """An outcome recorder whose database is unreachable for the second outcome."""

    def __init__(self) -> None:
        self.recorded: list[str] = []

    def record(self, outcome):
        if outcome.completion_id == "chatcmpl-2":
            raise Unavailable("the optimizer's database is unreachable; nothing was changed")
        if outcome.completion_id == "chatcmpl-bad":
            raise InvalidArgument("score: out of range", field="score")
        self.recorded.append(outcome.completion_id)
        return Recorded(0.9, "credit", [])


async def test_outcomes_the_store_could_not_take_fail_the_call_to_be_sent_again_not_refused():
    """A refused outcome is dropped by its sender; one the database was away
    for must come again, so the whole call is UNAVAILABLE."""
    servicer = PromptServicer(None, None, _StoreAway())  # type: ignore[arg-type]
    batch = [optimizer_pb2.RecordOutcomeRequest(completion_id=f"chatcmpl-{n}", prompt="customer") for n in (1, 2)]
    with pytest.raises(Unavailable):
        await servicer.RecordOutcomes(optimizer_pb2.RecordOutcomesRequest(outcomes=batch), None)
    bad = [
        optimizer_pb2.RecordOutcomeRequest(completion_id=c, prompt="customer") for c in ("chatcmpl-bad", "chatcmpl-3")
    ]
    reply = await servicer.RecordOutcomes(optimizer_pb2.RecordOutcomesRequest(outcomes=bad), None)
    assert [(r.index, r.field) for r in reply.refused] == [(0, "outcomes[0].score")]
