"""The Tilores-compatible server started on its own, as a developer would."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

QUERY = (
    '{ search(input: {parameters: {EMAIL: "edwina.hawthorne@example.com"}}) { entities { records { FIRST_NAME } } } }'
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def post(url: str, data: bytes, headers: dict) -> dict:
    with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=10) as reply:
        return json.loads(reply.read())


def test_started_from_the_command_line_it_serves_tokens_and_queries(tmp_path):
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "services.tilores_data.graphql_server", "--db", str(tmp_path / "t.db"),
         "--customers", "20", "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert f"http://127.0.0.1:{port}/" in server.stdout.readline()
        form = urllib.parse.urlencode(
            {"grant_type": "client_credentials", "client_id": "local-client", "client_secret": "local-secret"}
        ).encode()
        for _ in range(100):  # the banner comes just before the socket is bound
            try:
                token = post(f"http://127.0.0.1:{port}/oauth2/token", form, {})["access_token"]
                break
            except OSError:
                time.sleep(0.05)
        body = post(
            f"http://127.0.0.1:{port}/",
            json.dumps({"query": QUERY}).encode(),
            {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        [entity] = body["data"]["search"]["entities"]
        assert "Edwina" in {r["FIRST_NAME"] for r in entity["records"]}
    finally:
        server.terminate()
        server.wait(timeout=10)
