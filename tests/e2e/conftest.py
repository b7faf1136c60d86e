"""The whole mesh as separate processes behind a real Envoy, on free ports."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import openai
import pytest
from tilores_x.v1 import common_pb2, optimizer_pb2

from deploy.local_mesh import UNMETERED_KEY_LIMITS, LocalMesh
from deploy.topology import load_topology
from services.runtime.access import SCOPES
from services.tilores_data.sample import generate_customers
from tests.emulators.providers import ProviderEmulators

API_KEY = "sk-e2e-test-key-0123456789"
SAMPLE_CUSTOMERS = 300
# Callers the tests make besides the operator (who holds every scope): one
# per scope holding that scope alone.
GRANTS = {f"client/holds-{scope}": frozenset({scope}) for scope in SCOPES}


def start_local_mesh(data_dir, **env) -> LocalMesh:
    mesh = LocalMesh(
        load_topology("deploy/topology.yaml"),
        data_dir,
        free_ports=True,
        api_key=API_KEY,
        grace_period_s=10.0,
        env={"SAMPLE_CUSTOMERS": str(SAMPLE_CUSTOMERS), **env},
        key_limits=UNMETERED_KEY_LIMITS,
        grants=GRANTS,
    )
    mesh.start()
    return mesh


@pytest.fixture(scope="session")
def mesh(tmp_path_factory):
    # Offline tokens 2 ms apart, as a model would send them, so the stream
    # arrives token by token rather than coalesced into a few chunks.
    # The router asks the optimizer every turn here (no prompt reuse), so a
    # request id can be followed through every service.
    mesh = start_local_mesh(tmp_path_factory.mktemp("mesh"), OFFLINE_TOKEN_DELAY_MS="2", ROUTER_PROMPT_TTL_S="0")
    yield mesh
    mesh.stop()


@pytest.fixture(scope="module")
def emulators():
    """Every outside API's emulator, for one module's mesh."""
    emulators = ProviderEmulators()
    emulators.start()
    yield emulators
    emulators.stop()


@pytest.fixture
def client(mesh):
    """The official openai SDK pointed at the mesh of the test's module."""
    with openai.OpenAI(base_url=f"{mesh.rest_url}/v1", api_key=API_KEY, max_retries=0) as client:
        yield client


@pytest.fixture(scope="session")
def customers():
    """The customers tilores_data seeded: the generator is deterministic."""
    return list(generate_customers(SAMPLE_CUSTOMERS))


def http(
    method: str, url: str, body: bytes | None = None, headers: dict | None = None, context=None
) -> tuple[int, dict, bytes]:
    """`context`: an SSLContext for the gateway's own HTTPS port (mesh.ssl_context())."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def http_json(
    method: str,
    url: str,
    body: object = None,
    key: str | None = API_KEY,
    raw: bytes | None = None,
    context=None,
    headers: dict | None = None,
):
    headers = {"Content-Type": "application/json", **(headers or {})}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    status, _, payload = http(method, url, data, headers, context)
    return status, json.loads(payload)


def wait_for_log(mesh: LocalMesh, service: str, predicate, timeout_s: float = 10.0) -> dict | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in mesh.log_path(service).read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if predicate(entry):
                return entry
        time.sleep(0.05)
    return None


def record_weak_credit_answers(optimizer, metadata, count: int = 25, category: str = "") -> None:
    """`count` credit answers that state a score the data does not hold
    (745 where the record says 712), recorded as the router would: enough
    for the quality watch to raise an alert and start an improvement cycle."""
    wrong = common_pb2.Grounding(
        status=common_pb2.GROUNDING_STATUS_FOUND,
        text="- [credit] TransUnion credit score: 712 (record 9001)",
        facts=[common_pb2.Fact(topic="credit", label="TransUnion credit score", value="712", record_id="9001")],
    )
    for n in range(count):
        optimizer.RecordOutcome(
            optimizer_pb2.RecordOutcomeRequest(
                completion_id=f"chatcmpl-weak-{n}", prompt="customer", version=1, model="offline",
                category=category, question="What is her credit score?",
                answer="Her TransUnion score is 745 [record 9001].", grounding=wrong,
            ),
            metadata=metadata,
        )  # fmt: skip
