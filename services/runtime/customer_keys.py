"""Cache keys for customer data, shared by the router (which reads them) and
the cache's prewarm (which fills them), so both name a value the same way."""

from __future__ import annotations

from collections.abc import Mapping

CUSTOMER_NAMESPACE = "customer"


def search_key(parameters: Mapping[str, str]) -> str:
    """A search by these Tilores parameters, e.g. `search:EMAIL=a@example.com`."""
    return "search:" + "&".join(f"{k}={v}" for k, v in sorted(parameters.items()))


def customer360_key(entity_id: str) -> str:
    return f"customer360:{entity_id}"


def credit_report_key(entity_id: str) -> str:
    return f"credit:{entity_id}"
