"""ModelCatalog: the models the gateway offers, read from a YAML file."""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from services.runtime.faults import InvalidArgument, NotFound


@dataclass(frozen=True)
class ModelEntry:
    id: str
    provider: str
    upstream: str
    owned_by: str
    context_window: int


class CatalogError(ValueError):
    """The catalog file is malformed; the message names the entry and field."""


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
        entries = []
        for n, raw in enumerate(raw_models):
            if not isinstance(raw, dict):
                raise CatalogError(f"models[{n}]: expected a mapping")
            for name in ("id", "provider"):
                if not isinstance(raw.get(name), str) or not raw[name]:
                    raise CatalogError(f"models[{n}].{name}: required string")
            window = raw.get("context_window", 8192)
            if not isinstance(window, int) or window < 1:
                raise CatalogError(f"models[{n}].context_window: expected a positive integer")
            entries.append(
                ModelEntry(
                    id=raw["id"],
                    provider=raw["provider"],
                    upstream=str(raw.get("upstream") or raw["id"]),
                    owned_by=str(raw.get("owned_by") or raw["provider"]),
                    context_window=window,
                )
            )
        ids = [e.id for e in entries]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise CatalogError(f"models: duplicate id {duplicates[0]!r}")
        return cls(entries)

    def get(self, model_id: str) -> ModelEntry:
        if not model_id:
            raise InvalidArgument("model is required", field="model")
        entry = self._by_id.get(model_id)
        if entry is None:
            raise NotFound(f"The model `{model_id}` does not exist or you do not have access to it.", field="model")
        return entry
