"""Every provider behind one interface, and a catalog that says what each
model can do: an embedding model whose provider cannot embed is refused
when the chain is built, not when a caller asks."""

import pytest

from services.llm_gateway.catalog import CatalogError, ModelCatalog
from services.llm_gateway.failover import FailoverChain
from services.llm_gateway.providers.anthropic import AnthropicProvider
from services.llm_gateway.providers.environment import build_providers
from services.llm_gateway.providers.provider import EmbeddingProvider, Provider


def test_every_configured_provider_implements_the_interface():
    env = {
        "OPENAI_API_KEY": "sk-x",
        "ANTHROPIC_API_KEY": "sk-ant-x",
        "GROQ_API_KEY": "gsk-x",
        "GEMINI_API_KEY": "g-x",
        "OPENAI_COMPATIBLE_BASE_URL": "http://127.0.0.1:9/v1",
    }
    providers = build_providers(env, timeout_s=5)
    assert set(providers) == {"offline", "openai", "anthropic", "groq", "gemini", "openai_compatible"}
    for name, provider in providers.items():
        assert isinstance(provider, Provider) and provider.name == name
    embedding = {name for name, p in providers.items() if isinstance(p, EmbeddingProvider)}
    assert embedding == {"offline", "openai", "groq", "gemini", "openai_compatible"}


def test_an_embedding_model_whose_provider_cannot_embed_is_refused_when_the_chain_is_built():
    catalog = ModelCatalog.from_yaml(
        "models:\n  - {id: claude-embed, provider: anthropic, upstream: x, kind: embedding, dimensions: 8}\n"
    )
    with pytest.raises(CatalogError, match="'claude-embed': provider 'anthropic' cannot embed"):
        FailoverChain(catalog, {"anthropic": AnthropicProvider("sk-ant-x", None, 5)})
