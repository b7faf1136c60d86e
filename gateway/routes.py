"""Route and RouteTable: which handler answers a method and path, and who
may call it. A route's template (`/v1/models/{model}`) is also its metrics
label, so labels are bounded to the routes the gateway knows."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from gateway.openai_errors import OpenAIError

if TYPE_CHECKING:  # the exchange is only named here
    from gateway.exchange import Exchange

PUBLIC = "public"  # a route anyone may call; any other access is the scope an API key needs
UNMATCHED = "unmatched"  # the metrics label of any path no route knows
_PARAM = re.compile(r"\{(\w+)\}")

Handler = Callable[..., Awaitable[None]]


@dataclass(frozen=True)
class Route:
    """`handler(exchange, **path_params)` answers `method template`, for
    anyone (PUBLIC) or for a key with the scope `access`."""

    method: str
    template: str
    handler: Handler
    access: str
    # Patterns of path parameters other than "one path segment".
    params: dict[str, str] = field(default_factory=dict)
    # Only for keys whose chats are with agents: a customer-facing key
    # (audience client) may not read other people's data here.
    agents_only: bool = False

    def pattern(self) -> re.Pattern[str]:
        parts = _PARAM.split(self.template)
        regex = "".join(
            re.escape(part) if n % 2 == 0 else f"(?P<{part}>{self.params.get(part, '[^/]+')})"
            for n, part in enumerate(parts)
        )
        return re.compile(f"^{regex}$")


class RouteTable:
    def __init__(self, routes: Iterable[Route]):
        self._routes = [(route, route.pattern()) for route in routes]

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        """The route for a request; 404 for an unknown path, 405 for a
        known path asked with another method."""
        allowed = []
        for route, pattern in self._routes:
            found = pattern.match(path)
            if found is None:
                continue
            if route.method == method:
                return route, found.groupdict()
            allowed.append(route.method)
        if allowed:
            raise OpenAIError(
                405,
                f"Method {method} is not allowed here; use {' or '.join(dict.fromkeys(allowed))}.",
                code="method_not_allowed",
            )
        raise OpenAIError(404, f"Invalid URL ({method} {path})", code="unknown_url")

    def template_of(self, path: str) -> str:
        """The metrics label of a path: its route's template, else `unmatched`."""
        return next((route.template for route, pattern in self._routes if pattern.match(path)), UNMATCHED)


def unavailable(routes: list[Route], message: str) -> list[Route]:
    """The same routes answering 503 with `message`: a peer they need is
    not configured."""

    async def refuse(exchange: Exchange, **params: str) -> None:
        raise OpenAIError(503, message, type="server_error")

    return [replace(route, handler=refuse) for route in routes]
