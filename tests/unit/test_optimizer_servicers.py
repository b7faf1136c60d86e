"""OptimizerService is served by two servicers, the hot path and the
offline work: together they serve every RPC of the contract, each once."""

from __future__ import annotations

import pytest

from services.optimizer.service import SERVICE, PromptServicer, QualityServicer, add_to_server


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
