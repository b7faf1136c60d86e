"""Per-key quotas as a client meets them, with three gateway replicas behind
Envoy counting in one Redis: exactly the limit is admitted under concurrent
load, the rest gets 429 with Retry-After and OpenAI's rate-limit headers,
and limits per model and on tokens hold too."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from deploy.local_mesh import UNMETERED_KEY_LIMITS, LocalMesh
from deploy.topology import load_topology
from gateway.api_keys import add_key
from tests.e2e.conftest import SAMPLE_CUSTOMERS, http

pytestmark = pytest.mark.e2e
QUESTION = {"role": "user", "content": "What is the status of client id 2480135?"}


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    mesh = LocalMesh(
        load_topology("deploy/topology.yaml"),
        tmp_path_factory.mktemp("quotas"),
        free_ports=True,
        grace_period_s=10.0,
        replicas={"gateway": 3},
        key_limits=UNMETERED_KEY_LIMITS,
        env={"SAMPLE_CUSTOMERS": str(SAMPLE_CUSTOMERS)},
    )
    mesh.start()
    yield mesh
    mesh.stop()


def _key(mesh: LocalMesh, name: str, **limits) -> str:
    key = add_key(mesh.data_dir / "gateway-keys.yaml", name, ["chat", "models"], **limits)
    time.sleep(1.5)  # every replica re-reads the file within a second
    return key


def _in_one_minute() -> None:
    """Start with at least 25 s left of the clock's minute, the window."""
    if time.time() % 60 > 35:
        time.sleep(60 - time.time() % 60 + 0.5)


def _chat(mesh: LocalMesh, key: str, model: str = "offline") -> tuple[int, dict, dict]:
    status, headers, body = http(
        "POST",
        f"{mesh.rest_url}/v1/chat/completions",
        json.dumps({"model": model, "messages": [QUESTION]}).encode(),
        {"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    return status, {k.lower(): v for k, v in headers.items()}, json.loads(body)


def test_three_replicas_admit_exactly_the_limit_under_load(mesh):
    key = _key(mesh, "load", limits={"requests_per_minute": 40})
    _in_one_minute()
    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(lambda _: _chat(mesh, key), range(80)))
    admitted = [r for r in results if r[0] == 200]
    refused = [r for r in results if r[0] == 429]
    assert len(admitted) == 40 and len(refused) == 40, [r[0] for r in results]
    _, headers, body = refused[0]
    assert body["error"]["type"] == "rate_limit_error" and body["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(headers["retry-after"]) <= 60
    assert headers["x-ratelimit-limit-requests"] == "40" and headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"].endswith("s")
    # Every admitted answer told the client where it stood.
    remaining = sorted(int(r[1]["x-ratelimit-remaining-requests"]) for r in admitted)
    assert remaining == list(range(40))


def test_the_sdk_sees_a_rate_limit_error(mesh):
    key = _key(mesh, "sdk", limits={"requests_per_minute": 1})
    _in_one_minute()
    client = openai.OpenAI(base_url=f"{mesh.rest_url}/v1", api_key=key, max_retries=0)
    client.chat.completions.create(model="offline", messages=[QUESTION])
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="offline", messages=[QUESTION])
    assert caught.value.response.headers["x-ratelimit-remaining-requests"] == "0"


def test_a_model_limit_and_a_token_limit_hold(mesh):
    key = _key(mesh, "per-model", model_limits={"gpt-4o-mini": {"requests_per_minute": 2}})
    _in_one_minute()
    statuses = [_chat(mesh, key, "gpt-4o-mini")[0] for _ in range(3)]
    assert statuses == [200, 200, 429]
    status, _, body = _chat(mesh, key, "gpt-4o-mini")
    assert status == 429 and "of gpt-4o-mini" in body["error"]["message"]
    assert _chat(mesh, key, "offline")[0] == 200  # other models are not held back
    thrifty = _key(mesh, "thrifty", limits={"tokens_per_minute": 50})
    _in_one_minute()
    status, headers, _ = _chat(mesh, thrifty)  # an answer of several hundred tokens spends the minute
    assert status == 200 and headers["x-ratelimit-limit-tokens"] == "50"
    status, headers, body = _chat(mesh, thrifty)
    assert status == 429 and "for tokens" in body["error"]["message"]
    assert headers["x-ratelimit-remaining-tokens"] == "0"


def test_each_prompt_of_a_completions_call_counts_as_a_request(mesh):
    key = _key(mesh, "prompts", limits={"requests_per_minute": 20})
    _in_one_minute()
    client = openai.OpenAI(base_url=f"{mesh.rest_url}/v1", api_key=key, max_retries=0)
    prompts = [f"What is the status of client id 2480135? ({n})" for n in range(16)]
    reply = client.completions.with_raw_response.create(model="offline", prompt=prompts, max_tokens=4)
    assert len(reply.parse().choices) == 16
    assert reply.headers["x-ratelimit-remaining-requests"] == "4"
    with pytest.raises(openai.RateLimitError):  # 16 more would be 32 of 20
        client.completions.create(model="offline", prompt=prompts, max_tokens=4)
