"""ConsoleRoutes: the operations console, a page the gateway serves with
every asset it needs (no CDN; the plotting and diff libraries are copied
from their npm packages into gateway/console/vendor by `make
console-assets`).

  GET /console                the page (no data in it)
  GET /console/{asset}        its script, styles and vendored libraries
  GET /v1/console/session     who the key is and what the console may show it (admin keys)
  GET /v1/console/mesh        the mesh as /health/detailed sees it, and this gateway replica's HTTP totals
                              (admin keys)

The page holds no data: it asks for everything with the key the operator
types in, kept in the tab's sessionStorage, over the same /v1/ API any
client uses, so the API's scope checks are the console's. A key without
the `admin` scope is told that it cannot open the console and sees nothing.
A strict Content-Security-Policy allows only the console's own files.
"""

from __future__ import annotations

from pathlib import Path

from gateway import metrics
from gateway.exchange import Exchange
from gateway.health_report import HealthReport
from gateway.routes import PUBLIC, Route

FOLDER = Path(__file__).with_name("console")
TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
}
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        b"base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-cache"),
]
# Pages and the key scope each needs; the access log is the auditors'.
PAGES = {"mesh": "admin", "quality": "admin", "experiments": "admin", "prompts": "admin", "access": "audit"}


def _assets() -> dict[str, Path]:
    """The files the console may serve, by the name in its URL."""
    found = {}
    for path in sorted(FOLDER.rglob("*")):
        if path.is_file() and path.suffix in TYPES and path.name != "index.html":
            found[path.relative_to(FOLDER).as_posix()] = path
    return found


class ConsoleRoutes:
    def __init__(self, report: HealthReport):
        self._report = report
        self._assets = {name: (path.read_bytes(), TYPES[path.suffix]) for name, path in _assets().items()}
        self._page = (FOLDER / "index.html").read_bytes()

    def routes(self) -> list[Route]:
        names = "|".join(name.replace(".", r"\.") for name in self._assets)
        return [
            Route("GET", "/console", self.page, PUBLIC),
            Route("GET", "/console/{asset}", self.asset, PUBLIC, {"asset": f"(?:{names})"}),
            Route("GET", "/v1/console/session", self.session, "admin"),
            Route("GET", "/v1/console/mesh", self.mesh, "admin"),
        ]

    async def page(self, exchange: Exchange) -> None:
        await exchange.start(200, [(b"content-type", TYPES[".html"]), *SECURITY_HEADERS])
        await exchange.send(self._page)

    async def asset(self, exchange: Exchange, asset: str) -> None:
        body, content_type = self._assets[asset]
        await exchange.start(200, [(b"content-type", content_type), *SECURITY_HEADERS])
        await exchange.send(body)

    async def session(self, exchange: Exchange) -> None:
        key = exchange.key
        pages = [page for page, scope in PAGES.items() if scope in key.scopes]
        await exchange.json(200, {"key_id": key.id, "tenant": key.tenant, "scopes": sorted(key.scopes), "pages": pages})

    async def mesh(self, exchange: Exchange) -> None:
        status, body = await self._report.report()
        await exchange.json(200, {"status_code": status, **body, "gateway": metrics.snapshot()})
