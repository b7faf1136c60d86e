"""Start audit, the access log of customer data: `python -m services.audit`.

AUDIT_DB_PATH     SQLite file of the log (default .data/audit.db); keep it on
                  a volume, it is the record an auditor asks for
AUDIT_CHAIN_KEY   hex, at least 32 bytes: the key of the log's chain, kept
                  apart from its volume (services/audit/access_log.py)
"""

from __future__ import annotations

import os

from services.audit.access_log import AccessLog
from services.audit.chain_key import ChainKeyError, chain_key
from services.audit.service import AuditComponent
from services.runtime.access import Grants
from services.runtime.server import main
from services.runtime.settings import SettingsError, env_str


async def build() -> AuditComponent:
    path = env_str("AUDIT_DB_PATH", ".data/audit.db")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    try:
        key = chain_key()
    except ChainKeyError as error:
        raise SettingsError(str(error)) from None
    grants = Grants.from_env() if env_str("MESH_GRANTS") else None
    return AuditComponent(AccessLog(path, key), grants)


if __name__ == "__main__":
    main("audit", build)
