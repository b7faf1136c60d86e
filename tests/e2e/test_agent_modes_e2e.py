"""Agent modes through Envoy with the official openai SDK: slash commands
switch the mode for the conversation, the agent sees the operational record
and the customer their own account without internals, a customer-facing key
stays in client mode and is refused the credit endpoints, /help and /agents
answer, and quality is grouped by mode."""

from __future__ import annotations

import subprocess
import sys
import time

import openai
import pytest
from cryptography.hazmat.primitives import serialization

from gateway.customer_tokens import mint
from tests.docs import doc
from tests.e2e.conftest import http_json

EDWINA = "edwina.hawthorne@example.com"


def _ask(client, *turns: str, **extra) -> str:
    """A conversation: each turn is a user message, answered by the mesh
    before the next is asked; the answer to the last one."""
    messages: list[dict] = []
    answer = ""
    for text in turns:
        messages.append({"role": "user", "content": text})
        reply = client.chat.completions.create(model="offline", messages=messages, extra_body=extra or None)
        answer = reply.choices[0].message.content
        messages.append({"role": "assistant", "content": answer})
    return answer


@pytest.fixture(scope="module")
def client_key(mesh, tmp_path_factory):
    """A key of a customer-facing chat, added as docs/security.md says."""
    front_end = tmp_path_factory.mktemp("web-chat")
    subprocess.run([sys.executable, "-m", "gateway.customer_tokens", "keypair", "--out", str(front_end)], check=True)
    completed = subprocess.run(
        [sys.executable, "-m", "gateway.api_keys", "add", "--file", str(mesh.data_dir / "gateway-keys.yaml"),
         "--id", "web-chat", "--scopes", "chat,models", "--audience", "client",
         "--token-key", str(front_end / "customer-token.pub")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    key = completed.stdout.strip()
    private = serialization.load_pem_private_key((front_end / "customer-token.key").read_bytes(), None)
    token = {"X-Customer-Token": mint(private, "web-chat", EDWINA)}
    deadline = time.monotonic() + 10
    while http_json("GET", f"{mesh.rest_url}/v1/models", key=key, headers=token)[0] != 200:
        assert time.monotonic() < deadline, "the gateway did not pick up the new key"
        time.sleep(0.2)
    return key, token


def test_the_agent_mode_shows_the_calls_with_their_agents_and_records(client):
    answer = _ask(client, "/cs", f"tell me about the calls with {EDWINA}")
    assert "Calls on file: 2" in answer
    assert "agent agent.jessup" in answer and "campaign Billing Follow-up" in answer
    assert "[record " in answer


def test_the_client_mode_shows_the_same_calls_without_internals(client):
    answer = _ask(client, "/client", f"I am {EDWINA}. Tell me about my calls")
    assert "Calls on file: 2" in answer
    assert "agent." not in answer and "campaign" not in answer and "[record " not in answer


def test_a_category_focuses_a_question_that_names_no_topic(client):
    answer = _ask(client, "/client credit", f"my e-mail is {EDWINA}, how am I doing?")
    assert "TransUnion credit score (report of" in answer and ": 712" in answer
    assert "Monthly fee" not in answer  # billing is not the focus
    billing = _ask(client, f"/cs billing how is {EDWINA} doing?")
    assert "Monthly fee" in billing and "credit score" not in billing


def test_a_customer_is_never_shown_another_persons_data(client, customers):
    other = customers[1].records[0]["EMAIL"]
    answer = _ask(client, "/client", f"I am {EDWINA}", f"what is the credit score of {other}?")
    assert answer.startswith("I can only help with your own account")
    assert other not in answer and "Dalton" not in answer


def test_help_and_agents_answer_with_what_exists(client):
    helped = _ask(client, "/help")
    assert "/cs, /cst, /zoho: Call-centre agent mode (zoho_cs_agent)." in helped
    assert "/client: Customer chat mode (client_chat_agent)." in helped
    agents = _ask(client, "/agents")
    assert "zoho_cs_agent" in agents and "client_chat_agent" in agents and "status, credit, billing" in agents
    stream = client.chat.completions.create(
        model="offline", messages=[{"role": "user", "content": "/help"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == helped


def test_agent_type_and_category_fields_select_the_mode(client):
    answer = _ask(client, f"tell me about the calls with {EDWINA}", agent_type="client_chat_agent")
    assert "Calls on file: 2" in answer and "agent." not in answer
    answer = _ask(client, f"how is {EDWINA} doing?", agent_type="zoho_cs_agent", category="billing")
    assert "Monthly fee" in answer and "[record " in answer


@pytest.mark.parametrize(
    ("extra", "status", "param"),
    [
        ({"agent_type": "robot"}, 400, "agent_type"),
        ({"category": "weather"}, 400, "category"),
        ({"prompt_id": "no such/prompt"}, 400, "prompt_id"),
        ({"prompt_id": "nope"}, 404, "prompt_id"),
        ({"prompt_version": 0}, 400, "prompt_version"),
        ({"prompt_id": "client_billing", "prompt_version": 99}, 404, "prompt_version"),
    ],
)
def test_bad_mode_and_prompt_fields_are_errors_naming_them(mesh, extra, status, param):
    body = {"model": "offline", "messages": [{"role": "user", "content": f"status of {EDWINA}?"}], **extra}
    got, reply = http_json("POST", f"{mesh.rest_url}/v1/chat/completions", body)
    assert (got, reply["error"]["param"]) == (status, param), reply


def test_a_pinned_prompt_answers(client):
    answer = _ask(client, f"status of {EDWINA}?", prompt_id="client_status", prompt_version=1)
    assert "Account status" in answer


def test_a_customer_facing_key_stays_in_client_mode(mesh, client_key):
    client_key, token = client_key
    with openai.OpenAI(base_url=f"{mesh.rest_url}/v1", api_key=client_key, max_retries=0, default_headers=token) as web:
        answer = _ask(web, f"I am {EDWINA}, tell me about my calls")
        assert "Calls on file: 2" in answer and "agent." not in answer and "[record " not in answer
        refused = _ask(web, "/cs")
        assert refused.startswith("This chat is for customers")
        answer = _ask(web, "/zoho", f"tell me about the calls with {EDWINA}")
        assert "agent." not in answer
        with pytest.raises(openai.PermissionDeniedError) as raised:
            _ask(web, f"calls of {EDWINA}", agent_type="zoho_cs_agent")
        assert raised.value.body["param"] == "agent_type"
    for method, path, body in (
        ("GET", f"/v1/credit-report/{EDWINA}", None),
        ("POST", "/v1/credit-comparison", {"customers": [EDWINA]}),
        ("GET", "/v1/field-discovery/credit", None),
    ):
        status, reply = http_json(method, f"{mesh.rest_url}{path}", body, key=client_key, headers=token)
        assert status == 403 and reply["error"]["code"] == "insufficient_permissions", (path, reply)


def test_every_mode_and_category_has_its_prompt_and_quality_is_grouped_by_mode(mesh, client):
    status, listed = http_json("GET", f"{mesh.rest_url}/v1/prompts", key=mesh.admin_key)
    assert status == 200
    names = {p["name"]: p["active_version"] for p in listed["prompts"]}
    assert {"customer", "general", "agent_status", "agent_credit", "agent_billing", "client", "client_status",
            "client_credit", "client_billing"} <= set(names)  # fmt: skip
    assert names["client_billing"] == 1
    for _ in range(10):
        _ask(client, "/client billing", f"I am {EDWINA}, when do I pay next?")
    deadline = time.monotonic() + 20
    while True:
        _status, quality = http_json("GET", f"{mesh.rest_url}/v1/quality?check=now", key=mesh.admin_key)
        groups = {(g["group"], g["key"]): g for g in quality["groups"]}
        if ("mode", "client/billing") in groups or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    group = groups[("mode", "client/billing")]
    assert group["turns"] >= 10 and group["mean"] > 0.9
    assert ("prompt", "client_billing:v1") in groups


def test_the_readmes_agent_mode_example_runs_as_written(client):
    readme = doc("docs/api.md")
    opening = readme.index("```python\n", readme.index("- **Agent modes**"))
    example = readme[opening + 10 : readme.index("```\n", opening)]
    answers: list[str] = []

    class Recording:
        """The SDK client, keeping each answer the example asks for."""

        class chat:  # noqa: N801 - the SDK's own attribute names
            class completions:  # noqa: N801
                @staticmethod
                def create(**kwargs):
                    reply = client.chat.completions.create(**kwargs)
                    answers.append(reply.choices[0].message.content)
                    return reply

    exec(compile("\n".join(line[2:] for line in example.splitlines()), "README.md", "exec"), {"client": Recording})
    billing, helped, credit = answers
    assert "Next payment date" in billing and "[record " not in billing
    assert helped.startswith("Commands (at the start of a message")
    assert "TransUnion credit score" in credit and "Monthly fee" not in credit
