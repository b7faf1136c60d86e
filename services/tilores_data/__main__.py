"""Start tilores_data: `python -m services.tilores_data`.

TILORES_DB_PATH  SQLite file of the embedded store (default .data/tilores.db);
                 seeded with sample customers when it does not exist yet.
SAMPLE_CUSTOMERS how many sample customers a new store gets (default 1000).
"""

from __future__ import annotations

import logging
import os

from services.runtime.server import main
from services.runtime.settings import env_int, env_str
from services.tilores_data.seed import seed
from services.tilores_data.service import TiloresDataComponent
from services.tilores_data.store import EmbeddedEntityStore


async def build() -> TiloresDataComponent:
    path = env_str("TILORES_DB_PATH", ".data/tilores.db")
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        added = seed(path, env_int("SAMPLE_CUSTOMERS", 1000, minimum=1))
        logging.getLogger("seed").info("seeded embedded store", extra={"fields": {"records": added}})
    return TiloresDataComponent(EmbeddedEntityStore(path))


if __name__ == "__main__":
    main("tilores_data", build)
