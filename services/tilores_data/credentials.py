"""ClientCredentials: an OAuth2 client-credentials token for the Tilores API,
cached and fetched again before it expires.

Two ways to present the credentials, both seen against Tilores' Cognito
token endpoint: HTTP Basic with a scope (the Tilores SDK), or client_id and
client_secret in the form body without a scope."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aiohttp

from services.runtime.faults import Unauthenticated, Unavailable

DEFAULT_SCOPE = "tilores/mutation.submit tilores/query.search tilores/query.entity"
REFRESH_MARGIN_S = 60.0


class ClientCredentials:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        scope: str | None = DEFAULT_SCOPE,
        in_body: bool = False,
        timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._session = session
        self._token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._scope = scope
        self._in_body = in_body
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def token(self) -> str:
        """A valid access token; one fetch serves every concurrent caller."""
        if self._token and self._clock() < self._expires_at - REFRESH_MARGIN_S:
            return self._token
        async with self._lock:
            if self._token and self._clock() < self._expires_at - REFRESH_MARGIN_S:
                return self._token
            self._token, lifetime = await self._fetch()
            self._expires_at = self._clock() + lifetime
            return self._token

    def invalidate(self, token: str) -> None:
        """Forget a token the API refused, so the next call fetches anew."""
        if self._token == token:
            self._token = None

    async def _fetch(self) -> tuple[str, float]:
        form = {"grant_type": "client_credentials"}
        headers = {}
        if self._in_body:
            form |= {"client_id": self._client_id, "client_secret": self._client_secret}
        else:
            headers["Authorization"] = aiohttp.encode_basic_auth(self._client_id, self._client_secret)
        if self._scope:
            form["scope"] = self._scope
        self.fetches += 1
        try:
            async with self._session.post(self._token_url, data=form, headers=headers, timeout=self._timeout) as reply:
                body = await reply.json(content_type=None)
                status = reply.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise Unavailable(f"the Tilores token endpoint is unreachable ({type(error).__name__})") from None
        if status in (400, 401, 403):
            reason = body.get("error", "refused") if isinstance(body, dict) else "refused"
            raise Unauthenticated(f"the Tilores token endpoint refused the client credentials ({reason})")
        if status != 200 or not isinstance(body, dict) or not body.get("access_token"):
            raise Unavailable(f"the Tilores token endpoint answered HTTP {status}")
        return str(body["access_token"]), float(body.get("expires_in") or 3600)
