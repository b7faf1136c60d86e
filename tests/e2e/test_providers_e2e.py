"""Every provider through the whole mesh with the openai SDK as the client:
Envoy -> gateway -> router -> llm_gateway -> the provider's official SDK ->
a local emulator of the provider's API."""

from __future__ import annotations

import openai
import orjson
import pytest
from langchain_openai import ChatOpenAI

from tests.e2e.conftest import API_KEY, start_local_mesh
from tests.emulators.base import Script
from tests.emulators.providers import REPLY

pytestmark = pytest.mark.e2e
MODELS = {
    "gpt-4o-mini": "openai",
    "llama-3.3-70b-versatile": "groq",
    "claude-3-haiku": "anthropic",
    "gemini-2.5-flash": "gemini",
}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_credit_report",
            "description": "Credit report of a customer",
            "parameters": {"type": "object", "properties": {"client_id": {"type": "string"}}},
        },
    }
]
CALLS = [
    ("call_a", "get_credit_report", '{"client_id": "2480135", "bureaus": ["TransUnion"]}'),
    ("call_b", "get_credit_report", '{"client_id": "7654321"}'),
]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory, emulators):
    # Breakers stay closed here so one test's injected failures do not turn
    # the next test away; tests/integration/test_failover.py covers them.
    mesh = start_local_mesh(tmp_path_factory.mktemp("providers"), LLM_BREAKER_FAILURES="100000", **emulators.env())
    yield mesh
    mesh.stop()


@pytest.fixture(params=list(MODELS), ids=list(MODELS.values()))
def model(request, emulators):
    for emulator in (emulators.openai, emulators.anthropic, emulators.gemini):
        emulator.script = Script(text=REPLY)
        emulator.queue = []
    return request.param


def ask(client, model: str, stream: bool, **kwargs):
    return client.chat.completions.create(
        model=model, stream=stream, messages=[{"role": "user", "content": "What can you do?"}], **kwargs
    )


def test_streamed_and_whole_answers_are_the_same(client, model):
    chunks = list(ask(client, model, True, stream_options={"include_usage": True}))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    whole = ask(client, model, False)
    assert streamed == whole.choices[0].message.content == REPLY
    assert chunks[-2].choices[0].finish_reason == whole.choices[0].finish_reason == "stop"
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens == len(REPLY.split(" "))


def test_streamed_tool_calls_equal_the_whole_answers_tool_calls(client, model, emulators):
    emulator = emulators.by_provider[MODELS[model]]
    emulator.script = Script(text="", tool_calls=CALLS)
    calls: dict[int, dict] = {}
    finish = None
    for chunk in ask(client, model, True, tools=TOOLS):
        if not chunk.choices:
            continue
        finish = chunk.choices[0].finish_reason or finish
        for delta in chunk.choices[0].delta.tool_calls or ():
            entry = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] = entry["id"] or delta.id or ""
            entry["name"] = entry["name"] or (delta.function.name or "")
            entry["arguments"] += delta.function.arguments or ""
    whole = ask(client, model, False, tools=TOOLS)
    assert finish == whole.choices[0].finish_reason == "tool_calls"
    streamed = [(c["id"], c["name"], orjson.loads(c["arguments"])) for _, c in sorted(calls.items())]
    assembled = [
        (c.id, c.function.name, orjson.loads(c.function.arguments)) for c in whole.choices[0].message.tool_calls
    ]
    assert streamed == assembled == [(i, n, orjson.loads(a)) for i, n, a in CALLS]
    # The tools reached the provider in its own shape.
    sent = emulator.requests[-1]
    names = {
        "openai": lambda: sent["tools"][0]["function"]["name"],
        "groq": lambda: sent["tools"][0]["function"]["name"],
        "anthropic": lambda: sent["tools"][0]["name"],
        "gemini": lambda: sent["tools"][0]["functionDeclarations"][0]["name"],
    }
    assert names[MODELS[model]]() == "get_credit_report"


def test_a_cut_after_tokens_is_an_sse_error_never_done(client, model, emulators):
    emulators.by_provider[MODELS[model]].script = Script(text="one two three four five six seven", cut_after=5)
    seen = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in ask(client, model, True):
            seen.append(chunk)
    assert "stream broke" in str(caught.value)
    assert any(c.choices and c.choices[0].delta.content for c in seen)


def test_a_failure_before_the_first_token_fails_over(client, model, emulators):
    failing = emulators.by_provider[MODELS[model]]
    failing.script = Script(status=503)
    reply = ask(client, model, False)
    assert reply.choices[0].message.content  # another model of the chain answered
    assert reply.choices[0].finish_reason == "stop"
    # ... and the answer names it, as does every chunk of a stream.
    assert reply.model != model and MODELS.get(reply.model) not in (MODELS[model],)
    chunks = list(ask(client, model, True))
    assert {c.model for c in chunks} == {reply.model}


def test_no_fallback_surfaces_the_providers_failure(client, model, emulators):
    emulators.by_provider[MODELS[model]].script = Script(status=503)
    with pytest.raises(openai.InternalServerError) as caught:
        ask(client, model, False, extra_body={"no_fallback": True})
    assert caught.value.status_code == 503


def test_parameters_a_provider_cannot_honour_are_refused_by_name(client, model):
    if MODELS[model] == "anthropic":
        with pytest.raises(openai.BadRequestError) as caught:
            ask(client, model, False, seed=7, extra_body={"no_fallback": True})
        assert caught.value.param == "seed"
    else:
        reply = ask(client, model, False, seed=7, top_p=0.5, stop=["END"], response_format={"type": "json_object"})
        assert reply.choices[0].message.content == REPLY


CLIENT_TOOL_CHOICE = {
    "openai": {"type": "function", "function": {"name": "get_credit_report"}},
    "groq": {"type": "function", "function": {"name": "get_credit_report"}},
    "anthropic": {"type": "tool", "name": "get_credit_report", "disable_parallel_tool_use": True},
    "gemini": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_credit_report"]}},
}


def test_langchain_bind_tools_with_a_named_tool_choice(mesh, model, emulators):
    emulator = emulators.by_provider[MODELS[model]]
    emulator.script = Script(text="", tool_calls=CALLS[:1])

    def get_credit_report(client_id: str) -> str:
        """Credit report of a customer."""
        return client_id

    chat = ChatOpenAI(model=model, base_url=f"{mesh.rest_url}/v1", api_key=API_KEY, max_retries=0)
    bound = chat.bind_tools([get_credit_report], tool_choice="get_credit_report", parallel_tool_calls=False)
    message = bound.invoke("What is the credit report of client 2480135?")
    assert [(c["name"], c["args"]["client_id"]) for c in message.tool_calls] == [("get_credit_report", "2480135")]
    sent = emulator.requests[-1]
    if MODELS[model] == "gemini":
        assert sent["toolConfig"] == CLIENT_TOOL_CHOICE["gemini"]
    else:
        assert sent["tool_choice"] == CLIENT_TOOL_CHOICE[MODELS[model]]
    if MODELS[model] in ("openai", "groq"):
        assert sent["parallel_tool_calls"] is False


def test_tool_choice_none_offers_the_model_no_tool_at_all(client, model, emulators):
    emulator = emulators.by_provider[MODELS[model]]
    emulator.script = Script(text=REPLY)
    before = len(emulator.requests)
    reply = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "What is the credit score of edwina.hawthorne@example.com?"}],
        tools=TOOLS,
        tool_choice="none",
    )
    assert reply.choices[0].message.content == REPLY and not reply.choices[0].message.tool_calls
    [sent] = emulator.requests[before:]  # one round: no data tool ran
    assert "tools" not in sent and "tool_choice" not in sent and "toolConfig" not in sent
    # Without tools of the client's own, "none" keeps the router's data tools away too.
    before = len(emulator.requests)
    client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "What is the credit score of edwina.hawthorne@example.com?"}],
        tool_choice="none",
    )
    [sent] = emulator.requests[before:]
    assert "tools" not in sent


def test_tool_choice_required_reaches_the_provider(client, model, emulators):
    emulator = emulators.by_provider[MODELS[model]]
    emulator.script = Script(text="", tool_calls=CALLS[:1])
    reply = ask(client, model, False, tools=TOOLS, tool_choice="required")
    assert reply.choices[0].finish_reason == "tool_calls"
    sent = emulator.requests[-1]
    expected = {
        "openai": lambda: sent["tool_choice"] == "required",
        "groq": lambda: sent["tool_choice"] == "required",
        "anthropic": lambda: sent["tool_choice"] == {"type": "any"},
        "gemini": lambda: sent["toolConfig"]["functionCallingConfig"]["mode"] == "ANY",
    }
    assert expected[MODELS[model]]()


def test_openai_embeddings_through_the_sdk_and_the_emulator(client, emulators):
    seen = len(emulators.openai.requests)
    reply = client.embeddings.create(model="text-embedding-3-small", input=["credit score", "billing"], dimensions=64)
    assert [len(d.embedding) for d in reply.data] == [64, 64] and reply.model == "text-embedding-3-small"
    assert abs(sum(x * x for x in reply.data[0].embedding) - 1) < 1e-4 and reply.usage.prompt_tokens == 3
    sent = emulators.openai.requests[seen:]
    assert len(sent) == 1 and sent[0]["model"] == "text-embedding-3-small" and sent[0]["dimensions"] == 64
    assert sent[0]["input"] == ["credit score", "billing"]
    full = client.embeddings.create(model="text-embedding-3-small", input="credit score")
    assert len(full.data[0].embedding) == 1536


def test_a_failing_embedding_provider_is_a_clear_error_and_no_other_model_answers(client, emulators):
    # A Retry-After longer than the mesh may wait: no retry, no other model.
    seen = len(emulators.openai.requests)
    emulators.openai.queue.append(Script(status=429, retry_after="30"))
    with pytest.raises(openai.RateLimitError) as failed:
        client.embeddings.create(model="text-embedding-3-small", input="credit score")
    assert "text-embedding-3-small" in failed.value.body["message"] and "openai" in failed.value.body["message"]
    assert not emulators.openai.queue and len(emulators.openai.requests) == seen + 1


def test_gemini_embeddings_in_batches_of_what_the_api_takes(client, emulators):
    seen = len(emulators.gemini.requests)
    texts = [f"customer note {n}" for n in range(150)]
    reply = client.embeddings.create(model="text-embedding-004", input=texts, dimensions=32)
    assert len(reply.data) == 150 and all(len(d.embedding) == 32 for d in reply.data)
    assert [d.index for d in reply.data] == list(range(150))
    calls = emulators.gemini.requests[seen:]
    assert [len(c["requests"]) for c in calls] == [100, 50]  # the API's 100 per call
    again = client.embeddings.create(model="text-embedding-004", input="customer note 120", dimensions=32)
    assert again.data[0].embedding == pytest.approx(reply.data[120].embedding, abs=1e-6)
    with pytest.raises(openai.BadRequestError) as refused:
        client.embeddings.create(model="text-embedding-004", input=[[1, 2, 3]])
    assert refused.value.body["param"] == "input"
