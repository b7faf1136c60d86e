"""The key of the access log's chain (AUDIT_CHAIN_KEY): at least 32 bytes,
given as hex, kept apart from the log's volume (a Secret), so whoever holds
the file cannot forge the chain."""

from __future__ import annotations

import os

MIN_BYTES = 32


class ChainKeyError(ValueError):
    """No key, or not a key."""


def chain_key(text: str | None = None) -> bytes:
    """The key from `text` (a key file's content), else AUDIT_CHAIN_KEY."""
    raw = (text if text is not None else os.environ.get("AUDIT_CHAIN_KEY", "")).strip()
    if not raw:
        raise ChainKeyError("AUDIT_CHAIN_KEY: required, at least 64 hex digits (e.g. `openssl rand -hex 32`)")
    try:
        key = bytes.fromhex(raw)
    except ValueError:
        raise ChainKeyError("AUDIT_CHAIN_KEY: expected hex digits") from None
    if len(key) < MIN_BYTES:
        raise ChainKeyError(f"AUDIT_CHAIN_KEY: at least {MIN_BYTES * 2} hex digits")
    return key
