"""ApiKeys: who a request comes from, by its `Authorization: Bearer` key.
A key's tenant is a digest, so the key itself goes no further than the
gateway; admin keys may also use the admin API."""

from __future__ import annotations

import hashlib
import hmac

from gateway.exchange import Exchange
from gateway.openai_errors import OpenAIError

NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)


class ApiKeys:
    def __init__(self, keys: tuple[str, ...], admin_keys: tuple[str, ...] = ()):
        self._keys = tuple(key.encode() for key in keys)
        self._tenants = {key: "k" + hashlib.sha256(key).hexdigest()[:16] for key in self._keys}
        self._admin_keys = tuple(key.encode() for key in admin_keys)

    def tenant(self, exchange: Exchange) -> str:
        """The tenant of a valid key; 401 for a missing or unknown one."""
        key = _bearer(exchange)
        if not key:
            raise OpenAIError(401, NO_KEY, type="invalid_request_error")
        if not _known(key, self._keys):
            raise OpenAIError(401, "Incorrect API key provided.", type="invalid_request_error", code="invalid_api_key")
        return self._tenants[key]

    def admin(self, exchange: Exchange) -> None:
        """Admin keys pass; an ordinary key gets 403, no key 401."""
        key = _bearer(exchange)
        if key and _known(key, self._admin_keys):
            return
        self.tenant(exchange)  # 401 for a missing or unknown key
        raise OpenAIError(
            403, "This endpoint needs an admin key.", type="invalid_request_error", code="insufficient_permissions"
        )


def _bearer(exchange: Exchange) -> bytes:
    scheme, _, key = exchange.header(b"authorization").partition(b" ")
    return key.strip() if scheme.lower() == b"bearer" else b""


def _known(key: bytes, keys: tuple[bytes, ...]) -> bool:
    # Compare against every key so timing says nothing about which is close.
    return any([hmac.compare_digest(key, known) for known in keys])
