"""Start router: `python -m services.router`.

CACHE_SERVICE_ADDR, TILORES_DATA_SERVICE_ADDR, OPTIMIZER_SERVICE_ADDR,
LLM_GATEWAY_SERVICE_ADDR, AUDIT_SERVICE_ADDR  peer addresses (host:port)
ROUTER_TIMEOUT_S          deadline of a turn when the caller sets none (default 300)
CUSTOMER_CACHE_TTL_S      how long a customer lookup stays cached (default 3600)
ROUTER_NEAR_CACHE_TTL_S   how long the router keeps a lookup in its own memory (default 30; 0 turns it off)
ROUTER_PROMPT_TTL_S       how long the router reuses the active prompt (default 5; 0 asks every turn)
FIELD_POLICY_PATH         which personal data each provider may see (default: the bundled field_policy.yaml)
AUDIENCE_POLICY_PATH      what each agent mode's audience may be shown (default: the bundled audiences.yaml)
ROUTER_CUSTOMERS_PER_HOUR distinct customers one API key or caller may look at an hour, unless its key
                          record says otherwise (default 200; 0: no limit)
REDIS_URL                 where every replica counts those customers; unset: each replica its own
SPOOL_DIR                 a folder of this replica's own where turn outcomes and access records wait on
                          disk until the optimizer and the audit service have them, and from which a
                          restarted router sends what it left (unset: in memory only, lost if it dies)
"""

from __future__ import annotations

from services.router.audience import Audiences
from services.router.clients import RouterClients
from services.router.lookup_limit import LookupLimit
from services.router.service import RouterComponent
from services.runtime.field_policy import FieldPolicy
from services.runtime.server import main
from services.runtime.settings import env_float, env_int, env_str, peer_addr
from services.runtime.spool import spool_from_env


async def build() -> RouterComponent:
    addrs = {name: peer_addr(name) for name in ("cache", "tilores_data", "optimizer", "llm_gateway", "audit")}
    clients = RouterClients(
        addrs,
        customer_ttl_s=env_float("CUSTOMER_CACHE_TTL_S", 3600.0, minimum=1.0),
        near_cache_ttl_s=env_float("ROUTER_NEAR_CACHE_TTL_S", 30.0),
        prompt_ttl_s=env_float("ROUTER_PROMPT_TTL_S", 5.0),
        lookup_limit=LookupLimit(env_int("ROUTER_CUSTOMERS_PER_HOUR", 200, minimum=0), env_str("REDIS_URL")),
        outcome_spool=spool_from_env("outcomes"),
        access_spool=spool_from_env("access_records"),
    )
    return RouterComponent(
        clients, env_float("ROUTER_TIMEOUT_S", 300.0, minimum=1.0), FieldPolicy.from_env(), Audiences.from_env()
    )


if __name__ == "__main__":
    main("router", build)
