"""ApiKey: one API key's record as the gateway holds it once verified — its
id and digest, tenant, scopes, limits, audience and, for a customer-facing
key, the public key its front end's tokens verify with — and on whose
behalf its requests run in the mesh."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.runtime.agent_modes import AGENT
from services.runtime.principal import Principal

SCOPES = ("chat", "feedback", "models", "admin", "audit")
DEFAULT_SCOPES = ("chat", "feedback", "models")
LIMITS = ("requests_per_minute", "tokens_per_minute", "customers_per_hour")
# The seed's defaults: chat 100 requests a minute per key.
DEFAULT_LIMITS = {"requests_per_minute": 100, "tokens_per_minute": 200_000, "customers_per_hour": 200}


@dataclass(frozen=True)
class ApiKey:
    id: str
    digest: bytes  # SHA-256 of the key
    tenant: str
    scopes: frozenset[str]
    limits: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    # Per model: requests_per_minute and tokens_per_minute of this key for it.
    model_limits: dict[str, dict[str, int]] = field(default_factory=dict)
    # Who the key's chats are with: agent (any mode) or client (a customer-
    # facing chat: client mode only, no credit endpoints).
    audience: str = AGENT
    # A customer-facing key's: the public key its front end's customer
    # tokens verify with (gateway/customer_tokens.py).
    token_key: object = field(default=None, compare=False, repr=False)

    def principal(self, customer: str = "") -> Principal:
        """On whose behalf this key's requests run in the mesh."""
        return Principal(
            key_id=self.id,
            tenant=self.tenant,
            customers_per_hour=self.limits.get("customers_per_hour", 0),
            audience=self.audience,
            customer=customer,
            scopes=self.scopes,
        )
