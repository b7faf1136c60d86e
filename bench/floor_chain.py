"""The floor of this architecture: the mesh's chain for a streamed answer
with nothing in it, to measure beside the mesh in the same run.

  Envoy (the mesh's own configuration)
    -> edge    an HTTPS server (uvicorn, httptools, the gateway's certificate)
               relaying a grpc.aio unary-stream call as OpenAI SSE, with the
               gateway's coalescing and its ChunkEncoder
    -> router  a grpc.aio server (mutual TLS, the router's certificate and the
               mesh's channel options) relaying a second unary-stream call
    -> model   a grpc.aio server calling the upstream through the `openai`
               provider (the official SDK's client, the same SSE reading),
               with the model gateway's hold-and-join coalescing
    -> the same fake upstream as the mesh's

No logging, spans, metrics, quotas, scopes, lookups, prompts, outcome
recording or access log. Each hop runs in its own process, started with
`python -m bench.floor_chain <role> ...`; FloorChain starts all three and an
Envoy, on free ports, with the mesh's certificates.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import orjson
import uvicorn
import uvloop
from tilores_x.v1 import common_pb2, llm_gateway_pb2, llm_gateway_pb2_grpc, router_pb2, router_pb2_grpc

from deploy.certificates import MeshCertificates
from deploy.edge_envoy import EdgeEnvoy, with_parent
from deploy.envoy_config import render_envoy_config
from deploy.local_mesh import LocalMesh
from deploy.topology import Topology
from gateway import sse
from gateway.__main__ import KEEP_ALIVE_S
from gateway.sse import DONE, ChunkEncoder
from services.llm_gateway.providers.environment import build_providers
from services.llm_gateway.service import DEFAULT_HOLD_S
from services.llm_gateway.wire import generation_request
from services.runtime.channels import CHANNEL_OPTIONS
from services.runtime.coalesce import batches, joined
from services.runtime.conversation_wire import stream_message
from services.runtime.identity import MeshTls, member_host

REPO = Path(__file__).resolve().parents[1]
ROLES = ("model", "router", "edge")


def _tls(certs: Path, name: str) -> MeshTls:
    issued = MeshCertificates(certs).issue("service", name)
    return MeshTls(issued.cert_file.read_bytes(), issued.key_file.read_bytes(), issued.ca_file.read_bytes())


def _channel(addr: str, certs: Path, own: str, peer: str) -> grpc.aio.Channel:
    options = (*CHANNEL_OPTIONS, ("grpc.ssl_target_name_override", member_host("service", peer)))
    return grpc.aio.secure_channel(addr, _tls(certs, own).channel_credentials(), options=options)


def _text(event: object) -> str | None:
    return event if type(event) is str else None


def _delta(event: Any) -> str | None:
    return event.delta if event.WhichOneof("event") == "delta" else None


class FloorModel(llm_gateway_pb2_grpc.LlmGatewayServiceServicer):
    """The model hop: the provider's stream, coalesced as the model gateway does."""

    def __init__(self, upstream: str, api_key: str):
        env = {"OPENAI_API_KEY": api_key, "OPENAI_BASE_URL": upstream}
        self._provider = build_providers(env, 60.0)["openai"]

    async def Generate(self, request: Any, context: Any) -> AsyncIterator[llm_gateway_pb2.GenerateResponse]:
        generation = replace(generation_request(request, None), upstream_model="gpt-4o-mini")
        response = llm_gateway_pb2.GenerateResponse
        async for batch in batches(self._provider.stream(generation), DEFAULT_HOLD_S):
            for item in joined(batch, _text):
                yield stream_message(item, response)


class FloorRouter(router_pb2_grpc.RouterServiceServicer):
    """The router hop: one call to the model hop, relayed as it comes."""

    def __init__(self, model: llm_gateway_pb2_grpc.LlmGatewayServiceStub):
        self._model = model

    async def Chat(self, request: Any, context: Any) -> AsyncIterator[router_pb2.ChatResponse]:
        call = self._model.Generate(
            llm_gateway_pb2.GenerateRequest(model=request.model, messages=request.messages), timeout=60.0
        )
        response = router_pb2.ChatResponse
        async for batch in batches(call.__aiter__()):
            for item in joined(batch, _delta):
                yield response(delta=item) if type(item) is str else _as_chat(item)


def _as_chat(event: llm_gateway_pb2.GenerateResponse) -> router_pb2.ChatResponse:
    kind = event.WhichOneof("event")
    if kind == "finish":
        return router_pb2.ChatResponse(finish=event.finish)
    if kind == "usage":
        return router_pb2.ChatResponse(usage=event.usage)
    return router_pb2.ChatResponse(error=event.error)


class FloorEdge:
    """The gateway hop as a bare ASGI app: /health, and POST
    /v1/chat/completions relayed as OpenAI SSE."""

    def __init__(self, router_addr: str, certs: Path):
        self._router_addr = router_addr
        self._certs = certs
        self._router: router_pb2_grpc.RouterServiceStub | None = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                if message["type"] == "lifespan.startup":
                    channel = _channel(self._router_addr, self._certs, "gateway", "router")
                    self._router = router_pb2_grpc.RouterServiceStub(channel)
                    await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["path"] == "/health":
            await _answer(send, 200, b'{"status":"ok"}')
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await self._chat(orjson.loads(body), send)

    async def _chat(self, body: dict, send: Any) -> None:
        assert self._router is not None
        messages = [common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content=m["content"]) for m in body["messages"]]
        call = self._router.Chat(router_pb2.ChatRequest(model=body["model"], messages=messages), timeout=60.0)
        headers = [(k.lower(), v) for k, v in sse.HEADERS]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        encoder = ChunkEncoder(f"chatcmpl-floor{time.monotonic_ns()}", int(time.time()), body["model"], False)
        await send({"type": "http.response.body", "body": encoder.role(), "more_body": True})
        async for batch in batches(call.__aiter__()):
            out = []
            for item in joined(batch, _delta):
                if type(item) is str:
                    out.append(encoder.delta(item))
                elif item.WhichOneof("event") == "finish":
                    out.append(encoder.finish("stop"))
            if out:
                await send({"type": "http.response.body", "body": b"".join(out), "more_body": True})
        await send({"type": "http.response.body", "body": DONE, "more_body": False})


async def _answer(send: Any, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


async def _serve_grpc(servicer: Any, add: Any, certs: Path, name: str, port_file: Path) -> None:
    server = grpc.aio.server(options=CHANNEL_OPTIONS)
    add(servicer, server)
    port = server.add_secure_port("127.0.0.1:0", _tls(certs, name).server_credentials())
    await server.start()
    port_file.write_text(str(port))
    await server.wait_for_termination()


async def _serve_edge(router_addr: str, certs: Path, port_file: Path) -> None:
    issued = MeshCertificates(certs).issue("service", "gateway")
    config = uvicorn.Config(
        FloorEdge(router_addr, certs),
        host="127.0.0.1",
        port=0,
        loop="none",
        http="httptools",
        timeout_keep_alive=KEEP_ALIVE_S,
        lifespan="on",
        access_log=False,
        log_config=None,
        ssl_certfile=str(issued.cert_file),
        ssl_keyfile=str(issued.key_file),
    )
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn says so by this flag only
        await asyncio.sleep(0.01)
    port_file.write_text(str(server.servers[0].sockets[0].getsockname()[1]))
    await task


class FloorChain:
    """The three hops and an Envoy, started on free ports; `rest_url` is
    where a client sends its chat completions, `pids` each process."""

    def __init__(self, topology: Topology, certs: Path, run_dir: Path, upstream: str, api_key: str):
        self.topology, self.certs, self.run_dir, self.upstream = topology, certs, Path(run_dir), upstream
        self.api_key = api_key
        self.processes: dict[str, subprocess.Popen] = {}
        self.ports: dict[str, int] = {}
        self.edge: EdgeEnvoy | None = None
        self.rest_url = ""

    @classmethod
    def beside(cls, mesh: LocalMesh, upstream: str, api_key: str) -> FloorChain:
        """The floor of a running mesh: its topology and certificates, the same upstream."""
        return cls(mesh.topology, mesh.data_dir / "certs", mesh.run_dir / "floor", upstream, api_key)

    def start(self, timeout_s: float = 60.0) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._start("model", "--upstream", self.upstream, "--api-key", self.api_key)
        self._start("router", "--peer", f"127.0.0.1:{self.ports['model']}")
        self._start("edge", "--peer", f"127.0.0.1:{self.ports['router']}")
        config = render_envoy_config(
            self.topology,
            ports={"gateway": [self.ports["edge"]]},
            listener_ports={"rest": 0, "grpc": 0, "admin": 0},
            tls=MeshCertificates(self.certs).issue("edge", "envoy"),
        )
        self.edge = EdgeEnvoy(config, self.run_dir, self.run_dir / "envoy.log", drain_time_s=1)
        ports = self.edge.start(timeout_s)
        assert self.edge.process is not None
        self.processes["envoy"] = self.edge.process
        self.rest_url = f"http://127.0.0.1:{ports['rest']}"

    def _start(self, role: str, *args: str) -> None:
        port_file = self.run_dir / f"floor-{role}.port"
        port_file.unlink(missing_ok=True)
        log = open(self.run_dir / f"floor-{role}.log", "ab")  # noqa: SIM115 - open for the process lifetime
        self.processes[role] = subprocess.Popen(
            with_parent([sys.executable, "-m", "bench.floor_chain", role, "--certs", str(self.certs),
                         "--port-file", str(port_file), *args]),
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while not port_file.exists():
            if self.processes[role].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"floor {role} did not start (log: {self.run_dir / f'floor-{role}.log'})")
            time.sleep(0.02)
        self.ports[role] = int(port_file.read_text())

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("role", choices=ROLES)
    parser.add_argument("--certs", type=Path, required=True, help="the mesh's certificate folder")
    parser.add_argument("--port-file", type=Path, required=True)
    parser.add_argument("--upstream", default="", help="model: the fake upstream's base URL")
    parser.add_argument("--api-key", default="", help="model: the key the fake upstream takes")
    parser.add_argument("--peer", default="", help="router, edge: the next hop's host:port")
    args = parser.parse_args(argv)
    if args.role == "model":
        serve = _serve_grpc(
            FloorModel(args.upstream, args.api_key),
            llm_gateway_pb2_grpc.add_LlmGatewayServiceServicer_to_server,
            args.certs,
            "llm_gateway",
            args.port_file,
        )
    elif args.role == "router":

        async def routed() -> None:
            channel = _channel(args.peer, args.certs, "router", "llm_gateway")
            stub = llm_gateway_pb2_grpc.LlmGatewayServiceStub(channel)
            await _serve_grpc(
                FloorRouter(stub), router_pb2_grpc.add_RouterServiceServicer_to_server, args.certs, "router",
                args.port_file,
            )  # fmt: skip

        serve = routed()
    else:
        serve = _serve_edge(args.peer, args.certs, args.port_file)
    uvloop.run(serve)
    return 0


if __name__ == "__main__":
    sys.exit(main())
