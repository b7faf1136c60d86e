"""RouterClients: one long-lived channel per peer and the adapters over
them (`services/router/peers/`), which a turn sees through the ports of
`services/router/ports.py`. The request id, principal and purpose ride
along on every call through the channels' client interceptor."""

from __future__ import annotations

from tilores_x.v1 import audit_pb2_grpc, cache_pb2_grpc, llm_gateway_pb2_grpc, optimizer_pb2_grpc, tilores_data_pb2_grpc

from services.router.customer_access_gate import CustomerAccessGate
from services.router.lookup_limit import LookupLimit
from services.router.peers.answer_cache import AnswerCacheOverGrpc
from services.router.peers.customer_data import CustomerDataOverGrpc
from services.router.peers.generation import GenerationOverGrpc
from services.router.peers.health import PeerHealth
from services.router.peers.model_catalog import ModelCatalogOverGrpc
from services.router.peers.outcomes import OutcomesOverGrpc
from services.router.peers.prompts import PromptsOverGrpc
from services.runtime.access_ledger import AccessLedger
from services.runtime.channels import open_channel
from services.runtime.spool import Spool

OUTCOME_DRAIN_S = 5.0  # at shutdown, how long outcomes still waiting may take


class RouterClients:
    """One long-lived channel per peer and the adapters over them."""

    def __init__(
        self,
        addrs: dict[str, str],
        customer_ttl_s: float,
        near_cache_ttl_s: float = 30.0,
        prompt_ttl_s: float = 5.0,
        lookup_limit: LookupLimit | None = None,
        outcome_spool: Spool | None = None,
        access_spool: Spool | None = None,
    ):
        """`addrs` names every peer; without `audit` no access is recorded
        (a router in a test), without `lookup_limit` none is limited; with
        the spools undelivered outcomes and access records are kept on disk."""
        self._channels = {name: open_channel(addr, name) for name, addr in addrs.items()}
        self.tilores = tilores_data_pb2_grpc.TiloresDataServiceStub(self._channels["tilores_data"])
        self.cache = cache_pb2_grpc.CacheServiceStub(self._channels["cache"])
        self.llm = llm_gateway_pb2_grpc.LlmGatewayServiceStub(self._channels["llm_gateway"])
        optimizer = optimizer_pb2_grpc.OptimizerServiceStub(self._channels["optimizer"])
        self.customers = CustomerDataOverGrpc(self.tilores, self.cache, customer_ttl_s, near_cache_ttl_s)
        self.prompts = PromptsOverGrpc(optimizer, prompt_ttl_s)
        self.models = ModelCatalogOverGrpc(self.llm)
        self.answers = AnswerCacheOverGrpc(self.cache)
        self.outcomes = OutcomesOverGrpc(optimizer, outcome_spool)
        self.generation = GenerationOverGrpc(self.llm)
        self.health = PeerHealth(self._channels, dict(addrs), self.llm, self.cache, self.tilores)
        audit = audit_pb2_grpc.AuditServiceStub(self._channels["audit"]) if "audit" in addrs else None
        ledger = AccessLedger(audit, spool=access_spool) if audit is not None else None
        self.access = CustomerAccessGate(lookup_limit, ledger)

    async def close(self) -> None:
        await self.outcomes.outbox.drain(OUTCOME_DRAIN_S)
        await self.access.close()
        await self.answers.close()
        for channel in self._channels.values():
            await channel.close()
