"""Start optimizer: `python -m services.optimizer`.

OPTIMIZER_DB_PATH  SQLite file of prompts, experiments and outcomes (default .data/optimizer.db)
"""

from __future__ import annotations

import os

from services.optimizer.service import OptimizerComponent
from services.optimizer.storage import OptimizerStorage
from services.runtime.server import main
from services.runtime.settings import env_str


async def build() -> OptimizerComponent:
    path = env_str("OPTIMIZER_DB_PATH", ".data/optimizer.db")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    return OptimizerComponent(OptimizerStorage(path))


if __name__ == "__main__":
    main("optimizer", build)
