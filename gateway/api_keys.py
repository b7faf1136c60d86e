"""ApiKeys: who a request comes from, by its `Authorization: Bearer` key.

Keys are records, not a list: an id, the SHA-256 of the key (the key itself
is never stored), the tenant whose data it may use, its scopes and its
limits. They come from GATEWAY_KEYS_FILE, re-read when the file changes, so
a key is added or revoked without a restart (`python -m gateway.api_keys`
writes the file); GATEWAY_API_KEYS and GATEWAY_ADMIN_KEYS still name plain
keys for a quick start. Verification compares the digest against every
record in constant time, so timing says nothing about which is close.

```yaml
keys:
  - id: agent-desk-1
    sha256: 9f86d0...            # of the key
    tenant: acme                 # default: the key's own digest
    scopes: [chat, feedback, models]
    audience: agent              # or client: a customer-facing chat, kept in client mode
    token_key: |                 # client only: the front end's public key for customer tokens
      -----BEGIN PUBLIC KEY-----  (gateway/customer_tokens.py)
    limits: {requests_per_minute: 100, tokens_per_minute: 200000, customers_per_hour: 200}
    model_limits: {gpt-4o-mini: {requests_per_minute: 20, tokens_per_minute: 40000}}
```
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from gateway.api_key import DEFAULT_LIMITS, DEFAULT_SCOPES, LIMITS, SCOPES, ApiKey
from gateway.customer_tokens import TokenKeyError, load_public_key
from gateway.exchange import Exchange
from gateway.openai_errors import OpenAIError
from services.runtime.agent_modes import AGENT, CLIENT
from services.runtime.settings import SettingsError

RELOAD_EVERY_S = 1.0
NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)


class KeyFileError(SettingsError):
    """The keys file is malformed; the message names the entry."""


def digest_of(key: str | bytes) -> bytes:
    return hashlib.sha256(key.encode() if isinstance(key, str) else key).digest()


def _plain(keys: tuple[str, ...], scopes: tuple[str, ...], prefix: str) -> list[ApiKey]:
    """Records for keys given in the environment: the tenant is a digest."""
    return [
        ApiKey(f"{prefix}-{n}", digest_of(key), "k" + digest_of(key).hex()[:16], frozenset(scopes))
        for n, key in enumerate(keys, start=1)
    ]


def read_key_file(text: str) -> list[ApiKey]:
    return _read(text)[0]


def revoked_digests(text: str) -> frozenset[bytes]:
    """The SHA-256 of every key revoked in a keys file."""
    return _read(text)[1]


def _read(text: str) -> tuple[list[ApiKey], frozenset[bytes]]:
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict) or not isinstance(data.get("keys", []), list):
        raise KeyFileError("expected a mapping with a list 'keys'")
    unknown = set(data) - {"keys", "revoked"}
    if unknown:
        raise KeyFileError(f"{sorted(unknown)[0]}: unknown field (expected keys and revoked)")
    revoked = data.get("revoked") or []
    if not isinstance(revoked, list):
        raise KeyFileError("revoked: expected a list of {id, sha256, at}")
    gone = frozenset(_revoked(f"revoked[{n}]", entry) for n, entry in enumerate(revoked))
    records = [_record(f"keys[{n}]", entry) for n, entry in enumerate(data.get("keys") or [])]
    ids = [record.id for record in records]
    duplicate = next((key_id for key_id in ids if ids.count(key_id) > 1), None)
    if duplicate is not None:
        raise KeyFileError(f"keys[{ids.index(duplicate, ids.index(duplicate) + 1)}].id: {duplicate!r} is taken")
    back = next((n for n, record in enumerate(records) if record.digest in gone), None)
    if back is not None:
        raise KeyFileError(f"keys[{back}]: this key was revoked; a revoked key never comes back")
    return records, gone


def _revoked(where: str, entry: object) -> bytes:
    return _digest(f"{where}.sha256", entry.get("sha256") if isinstance(entry, dict) else None)


def _digest(where: str, digest: object) -> bytes:
    """A key's SHA-256 as the file gives it: 64 hex digits."""
    try:
        raw = bytes.fromhex(digest) if isinstance(digest, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise KeyFileError(f"{where}: expected the 64 hex digits of the key's SHA-256")
    return raw


def _record(where: str, entry: object) -> ApiKey:
    if not isinstance(entry, dict):
        raise KeyFileError(f"{where}: expected a mapping")
    unknown = set(entry) - {"id", "sha256", "tenant", "scopes", "limits", "model_limits", "audience", "token_key"}
    if unknown:
        raise KeyFileError(f"{where}.{sorted(unknown)[0]}: unknown field")
    key_id, digest = entry.get("id"), entry.get("sha256")
    if not isinstance(key_id, str) or not key_id:
        raise KeyFileError(f"{where}.id: a unique name is required")
    raw = _digest(f"{where}.sha256", digest)
    scopes = entry.get("scopes", list(DEFAULT_SCOPES))
    if not isinstance(scopes, list) or not set(scopes) <= set(SCOPES):
        raise KeyFileError(f"{where}.scopes: expected a list of {', '.join(SCOPES)}")
    tenant = entry.get("tenant") or "k" + str(digest).lower()[:16]
    if not isinstance(tenant, str):
        raise KeyFileError(f"{where}.tenant: expected a string")
    limits = _limits(f"{where}.limits", entry.get("limits") or {}, LIMITS)
    model_limits = entry.get("model_limits") or {}
    if not isinstance(model_limits, dict):
        raise KeyFileError(f"{where}.model_limits: expected a mapping of model to limits")
    per_model = {
        model: _limits(f"{where}.model_limits.{model}", value, ("requests_per_minute", "tokens_per_minute"))
        for model, value in model_limits.items()
    }
    audience = entry.get("audience", AGENT)
    if audience not in (AGENT, CLIENT):
        raise KeyFileError(f"{where}.audience: expected {AGENT} or {CLIENT}")
    token_key = entry.get("token_key")
    if audience == CLIENT and not token_key:
        raise KeyFileError(
            f"{where}.token_key: a customer-facing key needs the public key its front end signs customer tokens with"
        )
    if audience != CLIENT and token_key:
        raise KeyFileError(f"{where}.token_key: only a customer-facing key (audience client) takes customer tokens")
    try:
        verifying = load_public_key(token_key) if isinstance(token_key, str) else None
    except TokenKeyError as error:
        raise KeyFileError(f"{where}.token_key: {error}") from None
    if token_key and verifying is None:
        raise KeyFileError(f"{where}.token_key: expected a PEM public key")
    return ApiKey(key_id, raw, tenant, frozenset(scopes), {**DEFAULT_LIMITS, **limits}, per_model, audience, verifying)


def _limits(where: str, limits: object, names: tuple[str, ...]) -> dict[str, int]:
    if not isinstance(limits, dict) or not set(limits) <= set(names):
        raise KeyFileError(f"{where}: expected a mapping of {', '.join(names)}")
    for name, value in limits.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise KeyFileError(f"{where}.{name}: expected a positive integer")
    return dict(limits)


class ApiKeys:
    def __init__(
        self,
        keys: tuple[str, ...] = (),
        admin_keys: tuple[str, ...] = (),
        key_file: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._plain = _plain(keys, DEFAULT_SCOPES, "key") + _plain(
            admin_keys, (*DEFAULT_SCOPES, "admin", "audit"), "admin"
        )
        self._file = Path(key_file) if key_file else None
        self._clock = clock
        self._records: list[ApiKey] = list(self._plain)
        self._checked_at = float("-inf")
        self._mtime: float | None = None
        self._reload()

    def _reload(self) -> None:
        """Re-read the key file when it changed (checked at most once a
        second); a file that turned bad keeps the last good keys."""
        now = self._clock()
        if self._file is None or now - self._checked_at < RELOAD_EVERY_S:
            return
        self._checked_at = now
        try:
            mtime = self._file.stat().st_mtime
            if mtime == self._mtime:
                return
            records, revoked = _read(self._file.read_text())
        except (OSError, KeyFileError, yaml.YAMLError) as error:
            if self._mtime is None:
                raise KeyFileError(f"GATEWAY_KEYS_FILE {self._file}: {error}") from None
            return
        self._mtime = mtime
        # A key named in both places is the file's record; a key the file
        # revoked is refused wherever else it is named.
        shadowed = {record.digest for record in records} | revoked
        self._records = [*records, *(r for r in self._plain if r.digest not in shadowed)]

    def verify(self, exchange: Exchange) -> ApiKey:
        """The record of a valid key; 401 for a missing or unknown one."""
        key = _bearer(exchange)
        if not key:
            raise OpenAIError(401, NO_KEY, type="invalid_request_error")
        self._reload()
        digest = digest_of(key)
        found = None
        for record in self._records:  # every record, so timing says nothing
            if hmac.compare_digest(digest, record.digest) and found is None:
                found = record
        if found is None:
            raise OpenAIError(401, "Incorrect API key provided.", type="invalid_request_error", code="invalid_api_key")
        return found

    def authorize(self, exchange: Exchange, scope: str) -> ApiKey:
        """The key's record when it holds `scope`; 401 without a valid key,
        403 with one that lacks the scope."""
        record = self.verify(exchange)
        if scope not in record.scopes:
            message = "This endpoint needs an admin key." if scope == "admin" else f"This key lacks the {scope} scope."
            raise OpenAIError(403, message, type="invalid_request_error", code="insufficient_permissions")
        return record

    @property
    def configured(self) -> bool:
        return bool(self._records)


def _bearer(exchange: Exchange) -> bytes:
    scheme, _, key = exchange.header(b"authorization").partition(b" ")
    return key.strip() if scheme.lower() == b"bearer" else b""


def add_key(
    path: Path,
    key_id: str,
    scopes: list[str],
    tenant: str = "",
    key: str = "",
    limits: dict[str, int] | None = None,
    model_limits: dict[str, dict[str, int]] | None = None,
    audience: str = AGENT,
    token_key: str = "",
) -> str:
    """Add a key to a keys file (created when missing); the new key, shown
    once. A customer-facing key (audience client) needs `token_key`, the
    PEM public key of its front end's customer tokens."""
    data = yaml.safe_load(path.read_text()) if path.exists() else None
    data = data or {"keys": []}
    if any(entry.get("id") == key_id for entry in data["keys"]):
        raise KeyFileError(f"a key named {key_id!r} exists; revoke it first")
    if key and digest_of(key).hex() in {entry.get("sha256") for entry in data.get("revoked") or []}:
        raise KeyFileError("this key was revoked; a revoked key never comes back")
    key = key or "sk-" + secrets.token_hex(24)
    entry: dict[str, Any] = {"id": key_id, "sha256": digest_of(key).hex(), "scopes": scopes}
    if tenant:
        entry["tenant"] = tenant
    if limits:
        entry["limits"] = limits
    if model_limits:
        entry["model_limits"] = model_limits
    if audience != AGENT:
        entry["audience"] = audience
    if token_key:
        entry["token_key"] = token_key
    data["keys"].append(entry)
    _write(path, data)
    return key


def revoke_key(path: Path, key_id: str = "", key: str = "") -> None:
    """Revoke a key by its record's id (or by the key itself, for one given
    in GATEWAY_API_KEYS): its digest stays in `revoked`, so the key is
    refused wherever else it is named and can never be added again."""
    data = (yaml.safe_load(path.read_text()) if path.exists() else None) or {"keys": []}
    digest = digest_of(key).hex() if key else ""
    gone = [entry for entry in data["keys"] if entry.get("id") == key_id or entry.get("sha256") == digest]
    if not gone and not key:
        raise KeyFileError(f"no key named {key_id!r}")
    kept = [entry for entry in data["keys"] if entry not in gone]
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    revoked = list(data.get("revoked") or [])
    for entry in gone or [{"id": key_id or "(given by value)", "sha256": digest}]:
        revoked.append({"id": entry["id"], "sha256": entry["sha256"], "at": at})
    _write(path, {**data, "keys": kept, "revoked": revoked})


def _write(path: Path, data: dict[str, Any]) -> None:
    read_key_file(yaml.safe_dump(data))  # never write a file the gateway would refuse
    temporary = path.with_suffix(".tmp")
    temporary.write_text(
        "# API keys of the REST gateway: only a hash of each key is stored.\n" + yaml.safe_dump(data, sort_keys=False)
    )
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)  # the gateway picks it up within a second


def main(argv: list[str] | None = None) -> int:
    """`python -m gateway.api_keys add|revoke --file F --id ID [--scopes chat,feedback]`"""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("add", "revoke"))
    parser.add_argument("--file", required=True, type=Path, help="the keys file (GATEWAY_KEYS_FILE)")
    parser.add_argument("--id", default="", help="the key's name (required to add)")
    parser.add_argument(
        "--key-from-stdin", action="store_true", help="revoke: the key itself, read from stdin (a GATEWAY_API_KEYS key)"
    )
    parser.add_argument("--scopes", default=",".join(DEFAULT_SCOPES), help=f"comma-separated: {', '.join(SCOPES)}")
    parser.add_argument("--tenant", default="", help="whose cached data the key uses (default: its own)")
    parser.add_argument(
        "--audience", default=AGENT, choices=(AGENT, CLIENT), help="client: a customer-facing chat (client mode only)"
    )
    parser.add_argument(
        "--token-key", type=Path, help="client: the PEM public key its front end signs customer tokens with"
    )
    parser.add_argument("--limits", default="", help=f"e.g. requests_per_minute=60 (of {', '.join(LIMITS)})")
    args = parser.parse_args(argv)
    try:
        limits = {}
        for item in filter(None, args.limits.split(",")):
            name, _, value = item.partition("=")
            if not value.isdigit():
                raise KeyFileError(f"--limits {item!r}: expected name=number")
            limits[name.strip()] = int(value)
        if args.action == "add" and not args.id:
            raise KeyFileError("--id: a name is required to add a key")
        if args.action == "revoke" and not (args.id or args.key_from_stdin):
            raise KeyFileError("--id or --key-from-stdin: which key to revoke")
        if args.action == "add":
            scopes = [s for s in args.scopes.split(",") if s]
            token_key = args.token_key.read_text() if args.token_key else ""
            print(
                add_key(
                    args.file, args.id, scopes, args.tenant, limits=limits, audience=args.audience, token_key=token_key
                )
            )
        else:
            revoke_key(args.file, args.id, sys.stdin.readline().strip() if args.key_from_stdin else "")
    except (KeyFileError, OSError, yaml.YAMLError) as error:
        print(f"{args.file}: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
