"""GatewaySettings: what the REST gateway is told by its environment.

GATEWAY_KEYS_FILE         the API key records (ids, hashes, tenants, scopes, limits); re-read when it changes
GATEWAY_API_KEYS          comma-separated plain API keys (scopes chat, feedback, models)
GATEWAY_ADMIN_KEYS        comma-separated plain admin keys (also scopes admin and audit)
ROUTER_SERVICE_ADDR       router address (default 127.0.0.1:50051)
LLM_GATEWAY_SERVICE_ADDR  llm_gateway address, for GET /v1/models (default 127.0.0.1:50052)
OPTIMIZER_SERVICE_ADDR    optimizer address, for feedback and the admin API (default 127.0.0.1:50055)
AUDIT_SERVICE_ADDR        audit address, for GET /v1/access-log (default 127.0.0.1:50056)
CACHE_SERVICE_ADDR        cache address, for POST /v1/clear-cache (default 127.0.0.1:50054)
GATEWAY_CHAT_TIMEOUT_S    deadline of one chat request (default 300)
GATEWAY_HEARTBEAT_S       `: ping` interval while a stream waits for its first token (default 15)
REDIS_URL                 where the per-key quotas are counted, exact across replicas (default: in process)
"""

from __future__ import annotations

from dataclasses import dataclass

from services.runtime.settings import SettingsError, env_float, env_str, peer_addr


@dataclass(frozen=True)
class GatewaySettings:
    router_addr: str
    llm_gateway_addr: str
    api_keys: tuple[str, ...]
    chat_timeout_s: float
    heartbeat_s: float = 15.0
    optimizer_addr: str = ""
    admin_keys: tuple[str, ...] = ()
    key_file: str = ""
    redis_url: str = ""
    audit_addr: str = ""
    cache_addr: str = ""

    @classmethod
    def from_env(cls) -> GatewaySettings:
        keys, key_file = _keys("GATEWAY_API_KEYS"), env_str("GATEWAY_KEYS_FILE")
        if not keys and not key_file:
            raise SettingsError("GATEWAY_KEYS_FILE or GATEWAY_API_KEYS: at least one API key is required")
        return cls(
            router_addr=peer_addr("router"),
            llm_gateway_addr=peer_addr("llm_gateway"),
            optimizer_addr=peer_addr("optimizer"),
            api_keys=keys,
            chat_timeout_s=env_float("GATEWAY_CHAT_TIMEOUT_S", 300.0, minimum=1.0),
            heartbeat_s=env_float("GATEWAY_HEARTBEAT_S", 15.0, minimum=0.01),
            admin_keys=_keys("GATEWAY_ADMIN_KEYS"),
            key_file=key_file,
            redis_url=env_str("REDIS_URL"),
            audit_addr=peer_addr("audit"),
            cache_addr=peer_addr("cache"),
        )


def _keys(variable: str) -> tuple[str, ...]:
    return tuple(key.strip() for key in env_str(variable).split(",") if key.strip())
