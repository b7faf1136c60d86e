"""build_providers: the providers whose settings are present in the
environment. A provider without its API key is simply absent, and the
catalog lists its models as unavailable.

OPENAI_API_KEY, OPENAI_BASE_URL                  openai
ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL            anthropic
GROQ_API_KEY, GROQ_BASE_URL                      groq
GEMINI_API_KEY (or GOOGLE_API_KEY), GEMINI_BASE_URL   gemini
OPENAI_COMPATIBLE_BASE_URL, OPENAI_COMPATIBLE_API_KEY  any OpenAI-compatible server
OFFLINE_TOKEN_DELAY_MS                            offline (always present)

A provider's SDK is imported only when the provider is configured: the four
SDKs together hold about 140 MB of every llm_gateway's memory.
"""

from __future__ import annotations

from collections.abc import Mapping

from services.llm_gateway.providers.offline import OfflineProvider
from services.llm_gateway.providers.openai_format import OpenAIFormatProvider
from services.llm_gateway.providers.provider import Provider


def build_providers(env: Mapping[str, str], timeout_s: float) -> dict[str, Provider]:
    def get(name: str) -> str:
        return (env.get(name) or "").strip()

    providers: dict[str, Provider] = {"offline": OfflineProvider(float(get("OFFLINE_TOKEN_DELAY_MS") or 0) / 1000)}
    if get("OPENAI_API_KEY") or get("OPENAI_COMPATIBLE_BASE_URL"):
        import openai  # noqa: PLC0415
    if get("OPENAI_API_KEY"):
        client = openai.AsyncOpenAI(
            api_key=get("OPENAI_API_KEY"),
            base_url=get("OPENAI_BASE_URL") or None,
            max_retries=0,  # retries and failover are the gateway's decision
            http_client=openai.DefaultAioHttpClient(),
        )
        providers["openai"] = OpenAIFormatProvider("openai", client, openai, timeout_s)
    if get("OPENAI_COMPATIBLE_BASE_URL"):
        client = openai.AsyncOpenAI(
            api_key=get("OPENAI_COMPATIBLE_API_KEY") or "not-needed",
            base_url=get("OPENAI_COMPATIBLE_BASE_URL"),
            max_retries=0,
            http_client=openai.DefaultAioHttpClient(),
        )
        providers["openai_compatible"] = OpenAIFormatProvider("openai_compatible", client, openai, timeout_s)
    if get("GROQ_API_KEY"):
        import groq  # noqa: PLC0415

        groq_client = groq.AsyncGroq(
            api_key=get("GROQ_API_KEY"),
            base_url=get("GROQ_BASE_URL") or None,
            max_retries=0,
            http_client=groq.DefaultAioHttpClient(),
        )
        providers["groq"] = OpenAIFormatProvider(
            "groq", groq_client, groq, timeout_s, usage_option=False, path="/openai/v1/chat/completions"
        )
    if get("ANTHROPIC_API_KEY"):
        from services.llm_gateway.providers.anthropic import AnthropicProvider  # noqa: PLC0415

        providers["anthropic"] = AnthropicProvider(
            get("ANTHROPIC_API_KEY"), get("ANTHROPIC_BASE_URL") or None, timeout_s
        )
    gemini_key = get("GEMINI_API_KEY") or get("GOOGLE_API_KEY")
    if gemini_key:
        from services.llm_gateway.providers.gemini import GeminiProvider  # noqa: PLC0415

        providers["gemini"] = GeminiProvider(gemini_key, get("GEMINI_BASE_URL") or None, timeout_s)
    return providers
