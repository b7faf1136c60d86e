"""Start tilores_data: `python -m services.tilores_data`.

TILORES_DB_PATH  SQLite file of the embedded store (default .data/tilores.db);
                 seeded with sample customers when it does not exist yet.
SAMPLE_CUSTOMERS how many sample customers a new store gets (default 1000).
SAMPLE_DAY       the day a new store's sample is dated as of, YYYY-MM-DD (default: the day it is made)
With TILORES_API_URL (or TILORES_GRAPHQL_API_URL) set, the service reads the
real Tilores API instead; see services/tilores_data/tilores_client.py.
AUDIT_SERVICE_ADDR where every read and write of a customer is recorded
                 (default 127.0.0.1:50056)
SPOOL_DIR        a folder of this replica's own where access records wait on disk until the
                 audit service has them (unset: in memory only)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable

from tilores_x.v1 import audit_pb2_grpc

from services.runtime.access_ledger import AccessLedger
from services.runtime.channels import open_channel
from services.runtime.faults import Fault
from services.runtime.server import main
from services.runtime.settings import SettingsError, env_int, env_str, peer_addr
from services.runtime.spool import spool_from_env
from services.tilores_data.entity_source import EmbeddedEntitySource
from services.tilores_data.seed import sample_day, seed
from services.tilores_data.service import TiloresDataComponent
from services.tilores_data.store import EmbeddedEntityStore
from services.tilores_data.tilores_client import TiloresGraphQLClient


def _ledger() -> tuple[AccessLedger, Callable[[], Awaitable[None]]]:
    channel = open_channel(peer_addr("audit"), "audit")
    spool = spool_from_env("access_records")
    return AccessLedger(audit_pb2_grpc.AuditServiceStub(channel), spool=spool), channel.close


async def build() -> TiloresDataComponent:
    client = TiloresGraphQLClient.from_env(os.environ)
    if client is not None:
        try:
            await client.schema()  # fails fast on bad credentials; learns the fields
        except Fault as error:
            await client.close()
            raise SettingsError(f"TILORES_API_URL: {error.message}") from None
        return TiloresDataComponent(client, *_ledger())
    path = env_str("TILORES_DB_PATH", ".data/tilores.db")
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        try:
            today = sample_day(env_str("SAMPLE_DAY", ""))
        except ValueError as error:
            raise SettingsError(f"SAMPLE_DAY: {error}") from None
        added = seed(path, env_int("SAMPLE_CUSTOMERS", 1000, minimum=1), today=today)
        logging.getLogger("seed").info("seeded embedded store", extra={"fields": {"records": added}})
    return TiloresDataComponent(EmbeddedEntitySource(EmbeddedEntityStore(path)), *_ledger())


if __name__ == "__main__":
    main("tilores_data", build)
