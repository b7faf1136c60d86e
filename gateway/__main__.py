"""Start the REST gateway: `python -m gateway` (its settings: gateway/settings.py).

LISTEN_ADDR               host:port to listen on (default 127.0.0.1:8000)
GRACE_PERIOD_S            how long in-flight streams may finish on SIGTERM (default 30)
LOOP_STALL_LIMIT_S        an event loop stuck this long ends the process, to be restarted (default 20)
PORT_FILE                 file to write the bound port to (for port 0)
TLS_CERT_FILE, TLS_KEY_FILE, TLS_CA_FILE   its certificate in the mesh (services/runtime/identity.py):
                          it calls the mesh with it and serves HTTPS with it (Envoy checks it is the
                          gateway; callers prove who they are with API keys)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from typing import Any

import uvicorn
import uvloop

from gateway.app import build_asgi_app
from gateway.settings import GatewaySettings
from services.runtime.identity import configure_identity, tls_from_env
from services.runtime.logs import configure_logging
from services.runtime.loop_watchdog import LoopWatchdog
from services.runtime.settings import SettingsError, env_float, env_str
from services.runtime.telemetry import configure_tracing

log = logging.getLogger("gateway")
# Longer than Envoy keeps an idle connection to the gateway
# (deploy.envoy_config.REST_UPSTREAM_IDLE_S), so Envoy is the one to close it.
KEEP_ALIVE_S = 75


class GracefulServer(uvicorn.Server):
    """uvicorn re-raises SIGTERM after draining, so the process would end by
    the signal; this one drains and then exits 0 like the gRPC services."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        yield


def bind(listen_addr: str) -> socket.socket:
    host, _, port = listen_addr.rpartition(":")
    if not host or not port.isdigit():
        raise SettingsError(f"LISTEN_ADDR: expected host:port, got {listen_addr!r}")
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host.strip("[]"), int(port)))
    sock.listen(1024)
    return sock


async def serve() -> None:
    settings = GatewaySettings.from_env()
    tls = tls_from_env()
    configure_identity(tls)  # the gateway calls the mesh with its own certificate
    # ... and serves with it, so the hop from Envoy is encrypted and Envoy
    # knows it reached the gateway.
    served_tls: dict[str, Any] = (
        {"ssl_certfile": env_str("TLS_CERT_FILE"), "ssl_keyfile": env_str("TLS_KEY_FILE")} if tls else {}
    )
    sock = bind(env_str("LISTEN_ADDR", "127.0.0.1:8000"))
    config = uvicorn.Config(
        build_asgi_app(settings),
        loop="none",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_config=None,
        proxy_headers=False,  # Envoy in front; client addresses are not used
        timeout_keep_alive=KEEP_ALIVE_S,
        timeout_graceful_shutdown=int(env_float("GRACE_PERIOD_S", 30.0)),
        **served_tls,
    )
    server = GracefulServer(config)
    port_file = env_str("PORT_FILE")
    if port_file:
        with open(f"{port_file}.tmp", "w") as handle:
            handle.write(str(sock.getsockname()[1]))
        os.replace(f"{port_file}.tmp", port_file)
    log.info("serving", extra={"fields": {"port": sock.getsockname()[1]}})
    loop = asyncio.get_running_loop()
    watchdog = LoopWatchdog(env_float("LOOP_STALL_LIMIT_S", 20.0, minimum=1.0))
    watchdog.start(loop)
    await server.serve(sockets=[sock])
    watchdog.stop()


def main() -> None:
    configure_logging("gateway", env_str("LOG_LEVEL", "INFO"))
    try:
        configure_tracing("gateway")  # before the channels and the app exist
        uvloop.run(serve())
    except SettingsError as error:
        log.error("bad settings", extra={"fields": {"error": str(error)}})
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
