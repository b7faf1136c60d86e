"""FieldPolicy: which kinds of personal data a model may see. A turn's
facts are masked for every provider that may answer it (the model's own and
its fallbacks), so a failover never hands PII to a provider the policy keeps
it from."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

import yaml

from services.runtime.conversation import Fact

PII_KINDS = frozenset({"ssn", "card_number", "cvv", "driving_licence", "date_of_birth", "address"})
BUNDLED = Path(__file__).with_name("field_policy.yaml")
KIND_NAMES = {
    "ssn": "social security number",
    "card_number": "card number",
    "cvv": "card security code",
    "driving_licence": "driving licence number",
    "date_of_birth": "date of birth",
    "address": "address",
}


class PolicyError(ValueError):
    """The policy file is malformed; the message names the entry."""


class FieldPolicy:
    def __init__(self, providers: dict[str, frozenset[str]], default: frozenset[str] = frozenset()):
        self._providers = providers
        self._default = default

    @classmethod
    def from_yaml(cls, text: str) -> FieldPolicy:
        data = yaml.safe_load(text) or {}
        if not isinstance(data, dict):
            raise PolicyError("the policy must be a mapping with 'providers' and 'default'")

        def kinds(where: str, value) -> frozenset[str]:
            if not isinstance(value, list):
                raise PolicyError(f"{where}: expected a list of kinds")
            unknown = sorted(set(value) - PII_KINDS)
            if unknown:
                raise PolicyError(f"{where}: unknown kind {unknown[0]!r}; kinds: {', '.join(sorted(PII_KINDS))}")
            return frozenset(value)

        providers = data.get("providers") or {}
        if not isinstance(providers, dict):
            raise PolicyError("providers: expected a mapping of provider to kinds")
        return cls(
            {name: kinds(f"providers.{name}", value) for name, value in providers.items()},
            kinds("default", data.get("default") or []),
        )

    @classmethod
    def bundled(cls) -> FieldPolicy:
        return cls.from_yaml(BUNDLED.read_text())

    def allowed(self, providers: Iterable[str]) -> frozenset[str]:
        """The kinds every one of these providers may see."""
        allowed = PII_KINDS
        for provider in providers:
            allowed &= self._providers.get(provider, self._default)
        return allowed

    def apply(self, facts: list[Fact], allowed: frozenset[str]) -> list[Fact]:
        return [
            f if not f.pii_kind or f.pii_kind in allowed
            else dataclasses.replace(f, value=f"[withheld: {KIND_NAMES.get(f.pii_kind, f.pii_kind)}]")
            for f in facts
        ]  # fmt: skip
