"""Start llm_gateway: `python -m services.llm_gateway`.

LLM_CATALOG_PATH        model catalog YAML (default: the bundled models.yaml)
LLM_TIMEOUT_S           provider request timeout (default 60)
LLM_RETRIES             retries of one model before failing over (default 1)
LLM_BREAKER_FAILURES    failures in a row that open a provider's breaker (default 5)
LLM_BREAKER_OPEN_S      how long an open breaker refuses requests (default 30)
STREAM_HOLD_MS          after a message of an answer, how long the next waits to gather tokens (default 15;
                        0 sends each as soon as the hop is free; the first token is never held)
Provider keys and base URLs: see services/llm_gateway/providers/environment.py.
"""

from __future__ import annotations

import os
from pathlib import Path

from services.llm_gateway.catalog import CatalogError, ModelCatalog
from services.llm_gateway.failover import FailoverChain
from services.llm_gateway.providers.environment import build_providers
from services.llm_gateway.service import DEFAULT_HOLD_S, LlmGatewayComponent
from services.runtime.server import main
from services.runtime.settings import SettingsError, env_float, env_int, env_str

BUNDLED_CATALOG = Path(__file__).with_name("models.yaml")


async def build() -> LlmGatewayComponent:
    path = env_str("LLM_CATALOG_PATH") or str(BUNDLED_CATALOG)
    try:
        catalog = ModelCatalog.from_yaml(Path(path).read_text())
    except (OSError, CatalogError) as error:
        raise SettingsError(f"LLM_CATALOG_PATH: {error}") from None
    env_float("OFFLINE_TOKEN_DELAY_MS", 0.0)  # checked here so a bad value names the variable
    providers = build_providers(os.environ, timeout_s=env_float("LLM_TIMEOUT_S", 60.0, minimum=0.1))
    chain = FailoverChain(
        catalog,
        providers,
        retries=env_int("LLM_RETRIES", 1),
        breaker_threshold=env_int("LLM_BREAKER_FAILURES", 5, minimum=1),
        breaker_open_s=env_float("LLM_BREAKER_OPEN_S", 30.0, minimum=0.1),
    )
    return LlmGatewayComponent(chain, env_float("STREAM_HOLD_MS", DEFAULT_HOLD_S * 1000) / 1000)


if __name__ == "__main__":
    main("llm_gateway", build)
