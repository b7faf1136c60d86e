"""ModelCatalog: the models the gateway offers, read from a YAML file and
checked field by field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from services.runtime.faults import InvalidArgument, NotFound

PROVIDERS = ("offline", "openai", "anthropic", "groq", "gemini", "openai_compatible")
CHAT, EMBEDDING = "chat", "embedding"


@dataclass(frozen=True)
class ModelEntry:
    id: str
    provider: str
    upstream: str
    owned_by: str
    context_window: int
    input_price: float = 0.0  # USD per million prompt tokens
    output_price: float = 0.0  # USD per million answer tokens
    supports_tools: bool = False
    supports_streaming: bool = True
    fallbacks: tuple[str, ...] = ()
    kind: str = CHAT
    dimensions: int = 0  # an embedding model's vector length
    adjustable_dimensions: bool = False  # it can return shorter vectors
    max_inputs: int = 2048  # inputs per request the provider takes
    description: str = ""


class CatalogError(ValueError):
    """The catalog file is malformed; the message names the entry and field."""


def _number(raw: object, where: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or raw < 0:
        raise CatalogError(f"{where}: expected a number >= 0")
    return float(raw)


FIELDS = frozenset(
    {
        "id",
        "provider",
        "upstream",
        "owned_by",
        "context_window",
        "price",
        "capabilities",
        "fallbacks",
        "kind",
        "dimensions",
        "max_inputs",
        "description",
    }
)


def _positive_int(raw: dict[str, Any], name: str, default: int, where: str) -> int:
    value = raw.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CatalogError(f"{where}.{name}: expected a positive integer")
    return value


def _capabilities(raw: dict[str, Any], where: str) -> dict[str, bool]:
    capabilities = raw.get("capabilities") or {}
    if not isinstance(capabilities, dict) or set(capabilities) - {"tools", "streaming", "dimensions"}:
        raise CatalogError(f"{where}.capabilities: expected {{tools: bool, streaming: bool, dimensions: bool}}")
    for name, value in capabilities.items():
        if not isinstance(value, bool):
            raise CatalogError(f"{where}.capabilities.{name}: expected true or false")
    return capabilities


def _entry(n: int, raw: object) -> ModelEntry:
    where = f"models[{n}]"
    if not isinstance(raw, dict):
        raise CatalogError(f"{where}: expected a mapping")
    unknown = set(raw) - FIELDS
    if unknown:
        raise CatalogError(f"{where}.{sorted(unknown)[0]}: unknown field")
    for name in ("id", "provider"):
        if not isinstance(raw.get(name), str) or not raw[name]:
            raise CatalogError(f"{where}.{name}: required string")
    if raw["provider"] not in PROVIDERS:
        raise CatalogError(f"{where}.provider: {raw['provider']!r} is not one of {', '.join(PROVIDERS)}")
    window = _positive_int(raw, "context_window", 8192, where)
    price = raw.get("price") or {}
    if not isinstance(price, dict) or set(price) - {"input", "output"}:
        raise CatalogError(f"{where}.price: expected {{input: N, output: N}}")
    capabilities = _capabilities(raw, where)
    kind = raw.get("kind", CHAT)
    if kind not in (CHAT, EMBEDDING):
        raise CatalogError(f"{where}.kind: expected {CHAT} or {EMBEDDING}")
    dimensions = raw.get("dimensions", 0)
    if isinstance(dimensions, bool) or not isinstance(dimensions, int) or (kind == EMBEDDING) != (dimensions > 0):
        raise CatalogError(f"{where}.dimensions: a positive integer for an embedding model, and only for one")
    max_inputs = _positive_int(raw, "max_inputs", 2048, where)
    fallbacks = raw.get("fallbacks") or []
    if not isinstance(fallbacks, list) or not all(isinstance(f, str) and f for f in fallbacks):
        raise CatalogError(f"{where}.fallbacks: expected a list of model ids")
    return ModelEntry(
        id=raw["id"],
        provider=raw["provider"],
        upstream=str(raw.get("upstream") or raw["id"]),
        owned_by=str(raw.get("owned_by") or raw["provider"]),
        context_window=window,
        input_price=_number(price.get("input", 0), f"{where}.price.input"),
        output_price=_number(price.get("output", 0), f"{where}.price.output"),
        supports_tools=capabilities.get("tools", False),
        supports_streaming=capabilities.get("streaming", True),
        fallbacks=tuple(fallbacks),
        kind=kind,
        dimensions=dimensions,
        adjustable_dimensions=capabilities.get("dimensions", False),
        max_inputs=max_inputs,
        description=str(raw.get("description") or ""),
    )


class ModelCatalog:
    def __init__(self, entries: list[ModelEntry]):
        self.entries = entries
        self._by_id = {entry.id: entry for entry in entries}

    @classmethod
    def from_yaml(cls, text: str) -> ModelCatalog:
        document = yaml.safe_load(text) or {}
        raw_models = document.get("models") if isinstance(document, dict) else None
        if not isinstance(raw_models, list) or not raw_models:
            raise CatalogError("models: expected a non-empty list")
        entries = [_entry(n, raw) for n, raw in enumerate(raw_models)]
        seen: set[str] = set()
        for entry in entries:
            if entry.id in seen:
                raise CatalogError(f"models: duplicate id {entry.id!r}")
            seen.add(entry.id)
        for n, entry in enumerate(entries):
            for fallback in entry.fallbacks:
                if fallback not in seen:
                    raise CatalogError(f"models[{n}].fallbacks: unknown model {fallback!r}")
                if fallback == entry.id:
                    raise CatalogError(f"models[{n}].fallbacks: a model cannot fall back to itself")
                target = next(e for e in entries if e.id == fallback)
                if entry.kind == EMBEDDING:
                    # Another model's vectors live in another space: only the
                    # same model served elsewhere gives comparable vectors.
                    if (target.kind, target.upstream, target.dimensions) != (
                        EMBEDDING,
                        entry.upstream,
                        entry.dimensions,
                    ):
                        raise CatalogError(
                            f"models[{n}].fallbacks: {fallback!r} is not {entry.upstream} with {entry.dimensions} "
                            "dimensions; an embedding model falls back only to the same model served elsewhere"
                        )
                elif target.kind != CHAT:
                    raise CatalogError(f"models[{n}].fallbacks: {fallback!r} is not a chat model")
        return cls(entries)

    def embedding_chain(self, model_id: str) -> list[ModelEntry]:
        """An embedding model, then the same model served elsewhere."""
        entry = self.get(model_id)
        if entry.kind != EMBEDDING:
            raise InvalidArgument(f"`{model_id}` is not an embedding model", field="model")
        return [entry, *(self._by_id[f] for f in entry.fallbacks)]

    def get(self, model_id: str) -> ModelEntry:
        if not model_id:
            raise InvalidArgument("model is required", field="model")
        entry = self._by_id.get(model_id)
        if entry is None:
            shown = model_id if len(model_id) <= 256 else model_id[:256] + "..."
            raise NotFound(f"The model `{shown}` does not exist or you do not have access to it.", field="model")
        return entry

    def chain(self, model_id: str) -> list[ModelEntry]:
        """The model, then its fallbacks in order."""
        entry = self.get(model_id)
        if entry.kind != CHAT:
            raise InvalidArgument(f"`{model_id}` is an embedding model: use /v1/embeddings", field="model")
        return [entry, *(self._by_id[f] for f in entry.fallbacks)]
