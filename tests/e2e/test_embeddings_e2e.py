"""Embeddings (`POST /v1/embeddings`) through Envoy with the official openai
SDK, on a fresh machine with no keys: the offline embedding model, float
and base64 vectors, shorter vectors, token-id inputs, and errors by field."""

from __future__ import annotations

import base64
import json
import math
import struct

import openai
import pytest

from tests.e2e.conftest import API_KEY, http

TEXTS = ["What is the credit score of Edwina?", "Edwina's credit score, please", "How is the weather in Tampa?"]


def _post(mesh, body: dict) -> tuple[int, dict]:
    status, _headers, raw = http(
        "POST",
        f"{mesh.rest_url}/v1/embeddings",
        json.dumps(body).encode(),
        {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
    )
    return status, json.loads(raw)


def _dot(a, b) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_the_sdk_gets_one_unit_vector_per_text_and_spelling_decides_closeness(client):
    # The SDK asks for base64 and decodes it: the base64 path is what it tests.
    reply = client.embeddings.create(model="offline-embedding", input=TEXTS)
    vectors = [d.embedding for d in reply.data]
    assert [d.index for d in reply.data] == [0, 1, 2] and reply.model == "offline-embedding"
    assert all(len(v) == 256 and math.isclose(_dot(v, v), 1.0, rel_tol=1e-5) for v in vectors)
    assert _dot(vectors[0], vectors[1]) > _dot(vectors[0], vectors[2])
    assert reply.usage.prompt_tokens > 0 and reply.usage.total_tokens == reply.usage.prompt_tokens
    again = client.embeddings.create(model="offline-embedding", input=TEXTS[0]).data[0].embedding
    assert again == pytest.approx(vectors[0], abs=1e-6)


def test_float_and_base64_are_the_same_vector(mesh):
    status, floats = _post(mesh, {"model": "offline-embedding", "input": TEXTS[0], "encoding_format": "float"})
    assert status == 200 and isinstance(floats["data"][0]["embedding"], list)
    status, packed = _post(mesh, {"model": "offline-embedding", "input": TEXTS[0], "encoding_format": "base64"})
    raw = base64.b64decode(packed["data"][0]["embedding"])
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == pytest.approx(floats["data"][0]["embedding"], abs=1e-7)


def test_shorter_vectors_and_token_id_inputs(client):
    short = client.embeddings.create(model="offline-embedding", input=TEXTS[:2], dimensions=64)
    assert [len(d.embedding) for d in short.data] == [64, 64]
    tokens = client.embeddings.create(model="offline-embedding", input=[[101, 2054, 2003], [101, 2054]])
    assert len(tokens.data) == 2 and _dot(tokens.data[0].embedding, tokens.data[1].embedding) > 0


def test_the_catalog_lists_embedding_models_and_says_what_the_offline_one_is(client):
    models = {m.id: m for m in client.models.list().data}
    offline = models["offline-embedding"].model_dump()
    assert offline["kind"] == "embedding" and offline["dimensions"] == 256 and offline["available"] is True
    assert "Lexical, not semantic" in offline["description"]
    assert models["text-embedding-3-small"].model_dump()["available"] is False  # no OpenAI key here


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "offline", "input": "x"}, "model"),
        ({"model": "offline-embedding", "input": []}, "input"),
        ({"model": "offline-embedding", "input": 7}, "input"),
        ({"model": "offline-embedding", "input": ["a", 1]}, "input"),
        ({"model": "offline-embedding"}, "input"),
        ({"model": "offline-embedding", "input": "x", "dimensions": 100_000}, "dimensions"),
        ({"model": "offline-embedding", "input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"model": "offline-embedding", "input": "x", "extra": 1}, "extra"),
        ({"model": "text-embedding-3-small", "input": "x"}, "model"),
    ],
)
def test_bad_requests_name_the_field(mesh, body, param):
    status, answer = _post(mesh, body)
    assert status == 400 and answer["error"]["param"] == param, answer


def test_an_embedding_model_cannot_chat(client):
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="offline-embedding", messages=[{"role": "user", "content": "hi"}])
    assert refused.value.body["param"] == "model" and "/v1/embeddings" in refused.value.body["message"]


def test_no_key_no_vectors_and_too_many_inputs_are_refused_by_name(mesh):
    status, _headers, raw = http(
        "POST",
        f"{mesh.rest_url}/v1/embeddings",
        json.dumps({"model": "offline-embedding", "input": "x"}).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 401 and "API key" in json.loads(raw)["error"]["message"]
    status, answer = _post(mesh, {"model": "offline-embedding", "input": ["x"] * 2049})
    assert status == 400 and answer["error"]["param"] == "input" and "2048" in answer["error"]["message"]
