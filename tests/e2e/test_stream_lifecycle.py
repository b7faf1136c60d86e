"""Streams under stress of their own: a client that hangs up mid-answer and
a SIGTERM that arrives mid-answer. Offline tokens are 30 ms apart here so
the answer is still streaming when the test acts."""

import signal
import socket
import threading
import uuid

import pytest

from tests.e2e.conftest import API_KEY, start_local_mesh, wait_for_log

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def slow_mesh(tmp_path_factory):
    mesh = start_local_mesh(tmp_path_factory.mktemp("slow-mesh"), OFFLINE_TOKEN_DELAY_MS="30")
    yield mesh
    mesh.stop()


def _open_stream(mesh, request_id: str) -> socket.socket:
    body = (
        b'{"model":"offline","stream":true,"messages":[{"role":"user",'
        b'"content":"What is the status and credit score of edwina.hawthorne@example.com?"}]}'
    )
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {API_KEY}\r\n"
        f"Content-Type: application/json\r\nx-request-id: {request_id}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    sock = socket.create_connection(("127.0.0.1", mesh.envoy_ports["rest"]), timeout=30)
    sock.sendall(head.encode() + body)
    return sock


def _read_until(sock: socket.socket, marker: bytes) -> bytes:
    received = b""
    while marker not in received:
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def test_client_hang_up_cancels_the_model_stream(slow_mesh):
    request_id = uuid.uuid4().hex
    sock = _open_stream(slow_mesh, request_id)
    assert b'"content":"Offline ' in _read_until(sock, b'"content":"Offline ')
    sock.close()
    cancelled = wait_for_log(
        slow_mesh, "llm_gateway", lambda e: e.get("request_id") == request_id and e["event"] == "generate.cancelled"
    )
    assert cancelled is not None
    assert cancelled["messages_sent"] < 40  # stopped long before the answer's ~80 tokens
    router = wait_for_log(
        slow_mesh, "router", lambda e: e.get("request_id") == request_id and e.get("method", "").endswith("/Chat")
    )
    assert router["code"] == "CANCELLED"


def test_sigterm_mid_stream_lets_the_answer_finish(slow_mesh):
    request_id = uuid.uuid4().hex
    sock = _open_stream(slow_mesh, request_id)
    received = [_read_until(sock, b'"content":"Offline ')]
    done = threading.Event()

    def read_rest():
        # The last event, then the end of the chunked body: a complete response.
        received.append(_read_until(sock, b"data: [DONE]\n\n\r\n0\r\n\r\n"))
        done.set()

    reader = threading.Thread(target=read_rest, daemon=True)
    reader.start()
    stopping = ["gateway", "router", "llm_gateway"]
    for name in stopping:
        slow_mesh.processes[name].send_signal(signal.SIGTERM)
    assert done.wait(30)
    sock.close()
    stream = b"".join(received)
    assert stream.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n")
    assert b"712" in stream and b'"finish_reason":"stop"' in stream
    for name in stopping:
        assert slow_mesh.processes[name].wait(timeout=20) == 0, name
