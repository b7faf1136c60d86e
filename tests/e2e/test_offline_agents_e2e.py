"""The keyless `offline` model as agent frameworks use it, through Envoy
with their own clients: tool calls (auto, required, a named function),
streamed as OpenAI's deltas, a tool loop answered from the tool's result
and the records, and JSON-schema answers filled from the records."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import litellm
import openai
import pytest
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from tests.docs import section as section_of
from tests.e2e.conftest import API_KEY

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
EDWINA = "edwina.hawthorne@example.com"
QUESTION = f"Does {EDWINA} have open tickets?"


def _tool(name: str, description: str, properties: dict, required: list[str]) -> dict:
    parameters = {"type": "object", "properties": properties, "required": required, "additionalProperties": False}
    return {"type": "function", "function": {"name": name, "description": description, "parameters": parameters}}


WEATHER = _tool("get_weather", "The weather in a city", {"city": {"type": "string"}}, ["city"])
TICKETS = _tool(
    "get_open_tickets",
    "The open support tickets of a customer",
    {"email": {"type": "string", "description": "the customer's e-mail"}},
    ["email"],
)
PAYMENTS = _tool(
    "get_payments",
    "A customer's payments",
    {"client_id": {"type": "string"}, "limit": {"type": "integer"}},
    ["client_id"],
)
ORDERS = _tool("get_order", "An order", {"order_number": {"type": "string"}}, ["order_number"])
TOOLS = [WEATHER, TICKETS, PAYMENTS]


class CreditSummary(BaseModel):
    """What a credit agent needs about a customer."""

    customer_name: str
    client_id: str
    transunion_credit_score: int | None
    last_payment_date: str | None
    has_open_tickets: bool


def _user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_with_tools_and_auto_it_calls_the_tool_the_question_is_about(client):
    reply = client.chat.completions.create(model="offline", messages=_user(QUESTION), tools=TOOLS)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and not choice.message.content
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_open_tickets", {"email": EDWINA})


def test_with_tools_it_cannot_fill_and_auto_it_answers_in_words(client):
    reply = client.chat.completions.create(model="offline", messages=_user(QUESTION), tools=[ORDERS])
    choice = reply.choices[0]
    assert choice.finish_reason == "stop" and not choice.message.tool_calls
    assert "Open ticket 597128" in choice.message.content


def test_required_and_a_named_function_are_honoured(client):
    required = client.chat.completions.create(
        model="offline",
        messages=_user(f"Any failed payments for {EDWINA}?"),
        tools=[WEATHER, PAYMENTS],
        tool_choice="required",
    )
    (call,) = required.choices[0].message.tool_calls
    # The client id is not in the question: it comes from her records.
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_payments", {"client_id": "2480135"})
    named = client.chat.completions.create(
        model="offline",
        messages=_user(QUESTION),
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_payments"}},
    )
    assert named.choices[0].message.tool_calls[0].function.name == "get_payments"


def test_a_named_function_it_cannot_fill_is_a_400_naming_the_parameter(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="offline",
            messages=_user(QUESTION),
            tools=[TICKETS, ORDERS],
            tool_choice={"type": "function", "function": {"name": "get_order"}},
        )
    assert caught.value.param == "tools[1].function.parameters.order_number"
    assert "'order_number'" in caught.value.message and "get_order" in caught.value.message
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="offline", messages=_user("hello"), tools=[ORDERS], tool_choice="required")
    assert caught.value.param == "tools[0].function.parameters.order_number"


def test_a_streamed_tool_call_arrives_as_deltas_and_equals_the_whole_one(client):
    whole = client.chat.completions.create(model="offline", messages=_user(QUESTION), tools=TOOLS)
    chunks = list(client.chat.completions.create(model="offline", messages=_user(QUESTION), tools=TOOLS, stream=True))
    deltas = [d for c in chunks if c.choices for d in (c.choices[0].delta.tool_calls or ())]
    first, rest = deltas[0], deltas[1:]
    assert first.id and first.function.name == "get_open_tickets" and first.type == "function"
    assert len(rest) > 1 and all(d.id is None and d.function.name is None for d in rest)  # arguments in pieces
    arguments = (first.function.arguments or "") + "".join(d.function.arguments for d in rest)
    (call,) = whole.choices[0].message.tool_calls
    assert (first.id, first.function.name, arguments) == (call.id, call.function.name, call.function.arguments)
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


def test_after_the_tools_result_it_answers_from_the_result_and_the_records(client):
    messages = _user(QUESTION)
    reply = client.chat.completions.create(model="offline", messages=messages, tools=TOOLS).choices[0].message
    call = reply.tool_calls[0]
    messages += [
        reply.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"open": ["597128 Credit report access"]})},
    ]
    answer = client.chat.completions.create(model="offline", messages=messages, tools=TOOLS).choices[0]
    assert answer.finish_reason == "stop" and not answer.message.tool_calls
    text = answer.message.content
    assert "get_open_tickets returned: open: 597128 Credit report access" in text
    assert "Edwina Hawthorne" in text and "Open ticket 597128" in text


def test_a_json_schema_answer_is_filled_from_the_records(client):
    parsed = (
        client.chat.completions.parse(
            model="offline",
            messages=_user(f"Credit score and last payment of {EDWINA}?"),
            response_format=CreditSummary,
        )
        .choices[0]
        .message.parsed
    )
    assert parsed == CreditSummary(
        customer_name="Edwina Hawthorne",
        client_id="2480135",
        transunion_credit_score=712,
        last_payment_date="2026-10-26",
        has_open_tickets=True,
    )


def test_a_schema_nothing_on_file_fills_is_a_400_naming_the_property(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.parse(
            model="offline", messages=_user("Credit score of nobody.here@example.com?"), response_format=CreditSummary
        )
    assert caught.value.param == "response_format.json_schema.schema.customer_name"
    assert "'customer_name'" in caught.value.message


def _langchain(mesh) -> ChatOpenAI:
    return ChatOpenAI(model="offline", base_url=f"{mesh.rest_url}/v1", api_key=API_KEY, max_retries=0)


@tool
def get_open_tickets(email: str) -> str:
    """The open support tickets of the customer with this e-mail."""
    return "597128: Credit report access (from the ticket system)"


@tool
def get_payments(client_id: str) -> str:
    """The payments of the customer with this client id."""
    return "4 approved charges of 79.00"


@pytest.mark.parametrize("choice", [None, "any", "get_payments"])
def test_langchain_bind_tools_calls_with_each_tool_choice(mesh, choice):
    llm = _langchain(mesh).bind_tools([get_open_tickets, get_payments], tool_choice=choice)
    message = llm.invoke(QUESTION)
    (call,) = message.tool_calls
    expected = ("get_payments", {"client_id": "2480135"}) if choice == "get_payments" else (
        "get_open_tickets", {"email": EDWINA})  # fmt: skip
    assert (call["name"], call["args"]) == expected


def test_langchain_streams_a_tool_call_that_equals_the_whole_one(mesh):
    llm = _langchain(mesh).bind_tools([get_open_tickets, get_payments])
    chunks = list(llm.stream(QUESTION))
    assert len(chunks) > 2
    streamed = chunks[0]
    for chunk in chunks[1:]:
        streamed += chunk
    assert streamed.tool_calls == llm.invoke(QUESTION).tool_calls


def test_langchain_tool_loop_answers_from_the_tools_result(mesh):
    llm = _langchain(mesh).bind_tools([get_open_tickets])
    messages = [HumanMessage(QUESTION)]
    reply = llm.invoke(messages)
    call = reply.tool_calls[0]
    messages += [reply, ToolMessage(get_open_tickets.invoke(call["args"]), tool_call_id=call["id"])]
    answer = llm.invoke(messages)
    assert not answer.tool_calls
    assert "Credit report access (from the ticket system)" in answer.content and "Edwina Hawthorne" in answer.content


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_langchain_structured_output_with_each_method(mesh, method):
    structured = _langchain(mesh).with_structured_output(CreditSummary, method=method)
    summary = structured.invoke(f"Credit score and last payment of {EDWINA}?")
    assert summary.customer_name == "Edwina Hawthorne" and summary.transunion_credit_score == 712
    assert summary.last_payment_date == "2026-10-26" and summary.has_open_tickets is True


def test_langchain_structured_output_default_and_json_mode(mesh):
    default = _langchain(mesh).with_structured_output(CreditSummary).invoke(f"Credit score of {EDWINA}?")
    assert default.client_id == "2480135"
    # json_mode: a JSON object, the offline model's own shape.
    answer = _langchain(mesh).with_structured_output(method="json_mode").invoke(f"Credit score of {EDWINA}?")
    assert answer["customer"] == "Edwina Hawthorne" and answer["status"] == "found"


def test_a_langchain_agent_runs_its_loop_keyless(mesh):
    agent = create_agent(_langchain(mesh), tools=[get_open_tickets])
    result = agent.invoke({"messages": [("user", QUESTION)]})
    kinds = [type(m).__name__ for m in result["messages"]]
    assert kinds == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"]
    assert result["messages"][1].tool_calls[0]["args"] == {"email": EDWINA}
    assert "Credit report access (from the ticket system)" in result["messages"][-1].content


def test_litellm_as_a_client_calls_and_streams_tools(mesh):
    common = {"model": "openai/offline", "api_base": f"{mesh.rest_url}/v1", "api_key": API_KEY}
    reply = litellm.completion(messages=_user(QUESTION), tools=TOOLS, **common)
    call = reply.choices[0].message.tool_calls[0]
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_open_tickets", {"email": EDWINA})
    pieces = [c.choices[0].delta.tool_calls for c in litellm.completion(messages=_user(QUESTION), tools=TOOLS,
                                                                         stream=True, **common)]  # fmt: skip
    arguments = "".join(d.function.arguments or "" for p in pieces if p for d in p)
    assert json.loads(arguments) == {"email": EDWINA}


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is installed by make test")
def test_node_sdk_runs_a_tool_loop_and_a_json_schema_answer(mesh):
    script = REPO / "tests" / "e2e" / "clients" / "agent.mjs"
    run = subprocess.run(["node", str(script), f"{mesh.rest_url}/v1", API_KEY], cwd=REPO, capture_output=True,
                         text=True, timeout=60, check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout)
    assert seen["call"] == {"name": "get_open_tickets", "arguments": {"email": EDWINA}}
    assert seen["streamed"] == seen["whole"] and seen["argumentPieces"] > 1
    assert "Edwina Hawthorne" in seen["answer"] and "get_open_tickets returned" in seen["answer"]
    assert seen["structured"] == {"customer_name": "Edwina Hawthorne", "transunion_credit_score": 712}


def _readme_examples() -> list[str]:
    section = section_of("docs/models.md", "## Agents with the keyless model")
    return [block.split("```", 1)[0] for block in section.split("```python\n")[1:]]


@pytest.mark.parametrize("number", [0, 1])
def test_the_readmes_agent_examples_run_as_written(mesh, number, capsys):
    example = _readme_examples()[number]
    example = example.replace('"http://localhost:8080/v1"', repr(f"{mesh.rest_url}/v1"))
    example = example.replace('"<dev key>"', repr(API_KEY))
    exec(compile(example, "README.md", "exec"), {"__name__": "readme_example"})
    printed = capsys.readouterr().out
    for line in _expected_lines(_readme_examples()[number]):
        assert line in printed, (line, printed)


def _expected_lines(example: str) -> list[str]:
    """What the example's comments say it prints (`# prints: …`)."""
    return [line.split("# prints: ", 1)[1].strip() for line in example.splitlines() if "# prints: " in line]
