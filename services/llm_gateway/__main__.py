"""Start llm_gateway: `python -m services.llm_gateway`.

LLM_CATALOG_PATH        model catalog YAML (default: the bundled models.yaml)
OFFLINE_TOKEN_DELAY_MS  pause between offline tokens, for demos (default 0)
OPENAI_API_KEY          enables the openai provider
OPENAI_BASE_URL         any OpenAI-compatible server (default: OpenAI)
LLM_TIMEOUT_S           provider request timeout (default 60)
"""

from __future__ import annotations

from pathlib import Path

from services.llm_gateway.catalog import CatalogError, ModelCatalog
from services.llm_gateway.providers.offline import OfflineProvider
from services.llm_gateway.providers.openai_compatible import OpenAICompatibleProvider
from services.llm_gateway.service import LlmGatewayComponent
from services.runtime.server import main
from services.runtime.settings import SettingsError, env_float, env_str

BUNDLED_CATALOG = Path(__file__).with_name("models.yaml")


async def build() -> LlmGatewayComponent:
    path = env_str("LLM_CATALOG_PATH") or str(BUNDLED_CATALOG)
    try:
        catalog = ModelCatalog.from_yaml(Path(path).read_text())
    except (OSError, CatalogError) as error:
        raise SettingsError(f"LLM_CATALOG_PATH: {error}") from None
    providers: dict = {"offline": OfflineProvider(env_float("OFFLINE_TOKEN_DELAY_MS", 0.0) / 1000)}
    api_key = env_str("OPENAI_API_KEY")
    if api_key:
        providers["openai"] = OpenAICompatibleProvider(
            api_key=api_key, base_url=env_str("OPENAI_BASE_URL") or None, timeout_s=env_float("LLM_TIMEOUT_S", 60.0)
        )
    return LlmGatewayComponent(catalog, providers)


if __name__ == "__main__":
    main("llm_gateway", build)
