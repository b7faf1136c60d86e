"""Failover as a user meets it: the openai provider is configured but its
host refuses connections, and a chat client still gets an answer, from the
next model of the chain, which every chunk names."""

from __future__ import annotations

import socket

import openai
import pytest

from tests.e2e.conftest import start_local_mesh

pytestmark = pytest.mark.e2e
QUESTION = {"role": "user", "content": "What is the status of edwina.hawthorne@example.com?"}


def _refused_url() -> str:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/v1"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    mesh = start_local_mesh(
        tmp_path_factory.mktemp("refused"),
        OPENAI_API_KEY="sk-refused",
        OPENAI_BASE_URL=_refused_url(),
        LLM_BREAKER_FAILURES="100000",  # every request meets the refusal itself
    )
    yield mesh
    mesh.stop()


def test_a_refused_connection_fails_over_at_once(client):
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", stream=True, messages=[QUESTION]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Edwina Hawthorne" in text
    assert {c.model for c in chunks} == {"offline"}  # the model that answered, on every chunk
    whole = client.chat.completions.create(model="gpt-4o-mini", messages=[QUESTION])
    assert whole.model == "offline" and "Edwina Hawthorne" in whole.choices[0].message.content


def test_a_refused_connection_with_no_fallback_is_503_saying_so(client):
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=[QUESTION], extra_body={"no_fallback": True})
    assert caught.value.status_code == 503
    assert "cannot reach the provider" in caught.value.message
    assert "did not answer in time" not in caught.value.message
