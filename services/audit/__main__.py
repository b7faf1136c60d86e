"""Start audit, the access log of customer data: `python -m services.audit`.

AUDIT_DB_PATH   SQLite file of the log (default .data/audit.db); keep it on
                a volume, it is the record an auditor asks for
"""

from __future__ import annotations

import os

from services.audit.access_log import AccessLog
from services.audit.service import AuditComponent
from services.runtime.server import main
from services.runtime.settings import env_str


async def build() -> AuditComponent:
    path = env_str("AUDIT_DB_PATH", ".data/audit.db")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    return AuditComponent(AccessLog(path))


if __name__ == "__main__":
    main("audit", build)
