"""Legacy completions (`POST /v1/completions`) through Envoy with the official
openai SDK: grounded answers in the text_completion shapes, streamed and
whole, and every refused option named."""

from __future__ import annotations

import json

import openai
import pytest
from langchain_openai import OpenAI

from tests.e2e.conftest import API_KEY, http

PROMPT = "What is the credit score of edwina.hawthorne@example.com?"


def test_a_whole_completion_is_grounded_in_the_customers_records(client):
    completion = client.completions.create(model="offline", prompt=PROMPT, max_tokens=400)
    assert completion.object == "text_completion" and completion.id.startswith("cmpl-")
    choice = completion.choices[0]
    assert choice.index == 0 and choice.finish_reason == "stop"
    assert "Edwina Hawthorne" in choice.text and "712" in choice.text and "705" in choice.text
    assert completion.usage.completion_tokens > 0 and completion.usage.total_tokens > completion.usage.prompt_tokens


def test_max_tokens_defaults_to_16_as_openais_does(client):
    completion = client.completions.create(model="offline", prompt=PROMPT)
    assert completion.choices[0].finish_reason == "length" and completion.usage.completion_tokens == 16


def test_a_streamed_completion_equals_the_whole_one_and_ends_with_usage(client):
    whole = client.completions.create(model="offline", prompt=PROMPT, max_tokens=400).choices[0].text
    chunks = list(
        client.completions.create(
            model="offline", prompt=PROMPT, max_tokens=400, stream=True, stream_options={"include_usage": True}
        )
    )
    assert all(c.object == "text_completion" for c in chunks)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


def test_echo_puts_the_prompt_before_the_answer_and_a_list_gives_one_choice_each(client):
    echoed = client.completions.create(model="offline", prompt=PROMPT, max_tokens=50, echo=True)
    assert echoed.choices[0].text.startswith(PROMPT + "Offline answer")
    both = client.completions.create(
        model="offline", prompt=[PROMPT, "What is the status of bea.dalton1@example.net?"], max_tokens=400
    )
    assert [c.index for c in both.choices] == [0, 1]
    assert "Edwina Hawthorne" in both.choices[0].text and "Bea Dalton" in both.choices[1].text


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        ({"best_of": 3}, "best_of"),
        ({"suffix": "end"}, "suffix"),
        ({"logprobs": 2}, "logprobs"),
        ({"prompt": [[1, 2, 3]]}, "prompt"),
        ({"prompt": 7}, "prompt"),
        ({"max_tokens": -1}, "max_tokens"),
        ({"temperature": 9}, "temperature"),
    ],
)
def test_options_it_cannot_honour_are_refused_by_name(client, extra, param):
    with pytest.raises(openai.BadRequestError) as refused:
        client.completions.create(**({"model": "offline", "prompt": PROMPT} | extra))
    assert refused.value.status_code == 400 and refused.value.body["param"] == param


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_an_unknown_model_is_a_404_streamed_or_not(client, stream):
    # As OpenAI does: the status says it before any event would.
    with pytest.raises(openai.NotFoundError) as caught:
        client.completions.create(model="no-such-model", prompt=PROMPT, stream=stream)
    assert caught.value.status_code == 404 and caught.value.body["param"] == "model"


def test_no_key_no_completion(mesh):
    status, _headers, raw = http(
        "POST",
        f"{mesh.rest_url}/v1/completions",
        json.dumps({"model": "offline", "prompt": PROMPT}).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 401 and "API key" in json.loads(raw)["error"]["message"]
    status, _headers, raw = http(
        "POST",
        f"{mesh.rest_url}/v1/completions",
        json.dumps({"model": "offline"}).encode(),
        {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
    )
    assert status == 400 and json.loads(raw)["error"]["param"] == "prompt"


def test_langchains_completion_model_works_against_the_mesh(mesh):
    llm = OpenAI(model="offline", base_url=f"{mesh.rest_url}/v1", api_key=API_KEY, max_tokens=400, max_retries=0)
    answer = llm.invoke(PROMPT)
    assert "Edwina Hawthorne" in answer and "712" in answer
    assert "Edwina Hawthorne" in "".join(llm.stream(PROMPT))
