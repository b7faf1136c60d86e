"""Start optimizer: `python -m services.optimizer`.

OPTIMIZER_DATABASE_URL    postgresql://user:password@host:5432/db: the store several replicas share; unset: SQLite
OPTIMIZER_DB_PATH         SQLite file of prompts, experiments and outcomes (default .data/optimizer.db)
QUALITY_CRITICAL, QUALITY_WARNING, QUALITY_TARGET, QUALITY_EXCELLENT
                          quality levels (default 0.85, 0.90, 0.95, 0.98)
QUALITY_WINDOW            scored turns in the rolling window (default 50)
QUALITY_CHECK_INTERVAL_S  how often quality is checked (default 60; 0: only on request)
ALERT_COOLDOWN_S          an alert key alerts at most once in this time (default 900)
ALERT_WEBHOOK_URL         alerts are POSTed here as JSON, with retries (default: log only)
OPTIMIZER_VARIANT_MODEL   a model (via llm_gateway) that writes prompt variants; unset: refinement patterns
OPTIMIZER_JUDGE_MODEL     a model (via llm_gateway) that grades a sample of answers by a rubric; unset: none
OPTIMIZER_JUDGE_SAMPLE    share of answers the judge grades (default 0.05)
FIELD_POLICY_PATH         what the judge's provider may see of a turn (default: the bundled field_policy.yaml)
LLM_GATEWAY_SERVICE_ADDR  llm_gateway address, for those models and the catalog's prices (default 127.0.0.1:50052)
OPTIMIZER_GATE_MODEL      a catalog model that evaluates an improvement cycle's candidates offline before any
                          enters an experiment (with OPTIMIZER_GATE_CUSTOMERS); unset: no offline gate
OPTIMIZER_GATE_CUSTOMERS  customers (e-mails, client ids, phones; comma-separated) the gate's questions are about
ROUTER_SERVICE_ADDR       router address: evaluation runs ask their questions there (default 127.0.0.1:50051)
TILORES_DATA_SERVICE_ADDR tilores_data address: evaluation runs read their customers there (default 127.0.0.1:50053)
"""

from __future__ import annotations

import os

from tilores_x.v1 import llm_gateway_pb2_grpc, router_pb2_grpc, tilores_data_pb2_grpc

from services.optimizer.clients import EvaluationPeers, TextGenerationOverGrpc
from services.optimizer.judge import LlmJudge
from services.optimizer.monitoring import QualityMonitor, Thresholds
from services.optimizer.service import OptimizerComponent
from services.optimizer.storage import OptimizerStore, SqliteStore
from services.optimizer.variant_writer import LlmVariantWriter
from services.runtime.channels import open_channel
from services.runtime.field_policy import FieldPolicy
from services.runtime.server import main
from services.runtime.settings import SettingsError, env_float, env_int, env_str, peer_addr


def open_store() -> OptimizerStore:
    """PostgreSQL when OPTIMIZER_DATABASE_URL names one (replicas share it),
    else the embedded SQLite file at OPTIMIZER_DB_PATH."""
    url = env_str("OPTIMIZER_DATABASE_URL")
    if url:
        if not url.startswith(("postgresql://", "postgres://")):
            raise SettingsError("OPTIMIZER_DATABASE_URL: a postgresql:// URL")
        # The driver is loaded only where it is used: an embedded optimizer keeps its memory.
        import psycopg  # noqa: PLC0415

        from services.optimizer.storage.postgres import PostgresStore  # noqa: PLC0415

        try:
            return PostgresStore(url)
        except psycopg.OperationalError as error:
            # The message names host and port, never the password.
            raise SettingsError(
                f"OPTIMIZER_DATABASE_URL: cannot connect ({str(error).strip().splitlines()[0]})"
            ) from None
    path = env_str("OPTIMIZER_DB_PATH", ".data/optimizer.db")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    return SqliteStore(path)


async def build() -> OptimizerComponent:
    storage = open_store()
    thresholds = Thresholds(
        critical=env_float("QUALITY_CRITICAL", 0.85, minimum=0.0),
        warning=env_float("QUALITY_WARNING", 0.90, minimum=0.0),
        target=env_float("QUALITY_TARGET", 0.95, minimum=0.0),
        excellent=env_float("QUALITY_EXCELLENT", 0.98, minimum=0.0),
    )
    if not thresholds.critical <= thresholds.warning <= thresholds.target <= thresholds.excellent <= 1.0:
        raise SettingsError("QUALITY_CRITICAL <= QUALITY_WARNING <= QUALITY_TARGET <= QUALITY_EXCELLENT <= 1 must hold")
    monitor = QualityMonitor(
        storage,
        thresholds,
        window=env_int("QUALITY_WINDOW", 50, minimum=2),
        cooldown_s=env_float("ALERT_COOLDOWN_S", 900.0, minimum=0.0),
        webhook_url=env_str("ALERT_WEBHOOK_URL"),
    )
    writer, judge = None, None
    variant_model, judge_model = env_str("OPTIMIZER_VARIANT_MODEL"), env_str("OPTIMIZER_JUDGE_MODEL")
    sample = env_float("OPTIMIZER_JUDGE_SAMPLE", 0.05, minimum=0.0)
    if sample > 1:
        raise SettingsError("OPTIMIZER_JUDGE_SAMPLE: a share between 0 and 1")
    # Channels connect on first use: a peer that is not up yet costs nothing.
    channels = {name: open_channel(peer_addr(name), name) for name in ("llm_gateway", "router", "tilores_data")}
    llm_stub = llm_gateway_pb2_grpc.LlmGatewayServiceStub(channels["llm_gateway"])
    if variant_model or judge_model:
        llm = TextGenerationOverGrpc(llm_stub)
        writer = LlmVariantWriter(llm, variant_model) if variant_model else None
        judge = LlmJudge(llm, judge_model, sample, policy=FieldPolicy.from_env()) if judge_model else None
    peers = EvaluationPeers(
        router_pb2_grpc.RouterServiceStub(channels["router"]),
        tilores_data_pb2_grpc.TiloresDataServiceStub(channels["tilores_data"]),
        llm_stub,
    )

    async def close_channels() -> None:
        for channel in channels.values():
            await channel.close()

    return OptimizerComponent(
        storage,
        monitor,
        env_float("QUALITY_CHECK_INTERVAL_S", 60.0, minimum=0.0),
        variant_writer=writer,
        on_close=close_channels,
        judge=judge,
        evaluation_peers=peers,
        gate_model=env_str("OPTIMIZER_GATE_MODEL"),
        gate_customers=[c.strip() for c in env_str("OPTIMIZER_GATE_CUSTOMERS").split(",") if c.strip()],
    )


if __name__ == "__main__":
    main("optimizer", build)
