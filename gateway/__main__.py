"""Start the REST gateway: `python -m gateway`.

GATEWAY_API_KEYS          comma-separated API keys clients must send as Bearer (required)
GATEWAY_ADMIN_KEYS        comma-separated admin keys for /v1/prompts, /v1/experiments, /v1/quality
LISTEN_ADDR               host:port to listen on (default 127.0.0.1:8000)
ROUTER_SERVICE_ADDR       router address (default 127.0.0.1:50051)
LLM_GATEWAY_SERVICE_ADDR  llm_gateway address, for GET /v1/models (default 127.0.0.1:50052)
OPTIMIZER_SERVICE_ADDR    optimizer address, for feedback and the admin API (default 127.0.0.1:50055)
GATEWAY_CHAT_TIMEOUT_S    deadline of one chat request (default 300)
GATEWAY_HEARTBEAT_S       `: ping` interval while a stream waits for its first token (default 15)
GRACE_PERIOD_S            how long in-flight streams may finish on SIGTERM (default 30)
PORT_FILE                 file to write the bound port to (for port 0)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket

import uvicorn
import uvloop

from gateway.app import GatewaySettings, build_asgi_app
from services.runtime.logs import configure_logging
from services.runtime.settings import SettingsError, env_float, env_str, peer_addr
from services.runtime.telemetry import configure_tracing

log = logging.getLogger("gateway")


class GracefulServer(uvicorn.Server):
    """uvicorn re-raises SIGTERM after draining, so the process would end by
    the signal; this one drains and then exits 0 like the gRPC services."""

    @contextlib.contextmanager
    def capture_signals(self):
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        yield


def settings_from_env() -> GatewaySettings:
    keys = tuple(k.strip() for k in env_str("GATEWAY_API_KEYS").split(",") if k.strip())
    if not keys:
        raise SettingsError("GATEWAY_API_KEYS: at least one API key is required")
    return GatewaySettings(
        router_addr=peer_addr("router"),
        llm_gateway_addr=peer_addr("llm_gateway"),
        optimizer_addr=peer_addr("optimizer"),
        api_keys=keys,
        chat_timeout_s=env_float("GATEWAY_CHAT_TIMEOUT_S", 300.0, minimum=1.0),
        heartbeat_s=env_float("GATEWAY_HEARTBEAT_S", 15.0, minimum=0.01),
        admin_keys=tuple(k.strip() for k in env_str("GATEWAY_ADMIN_KEYS").split(",") if k.strip()),
    )


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
    settings = settings_from_env()
    sock = bind(env_str("LISTEN_ADDR", "127.0.0.1:8000"))
    config = uvicorn.Config(
        build_asgi_app(settings),
        loop="none",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_config=None,
        proxy_headers=False,  # Envoy in front; client addresses are not used
        timeout_graceful_shutdown=int(env_float("GRACE_PERIOD_S", 30.0)),
    )
    server = GracefulServer(config)
    port_file = env_str("PORT_FILE")
    if port_file:
        with open(f"{port_file}.tmp", "w") as handle:
            handle.write(str(sock.getsockname()[1]))
        os.replace(f"{port_file}.tmp", port_file)
    log.info("serving", extra={"fields": {"port": sock.getsockname()[1]}})
    await server.serve(sockets=[sock])


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
