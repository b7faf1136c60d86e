"""ToolPlan: which of the caller's tools the offline model calls, with
arguments from the conversation and the records only."""

import orjson
import pytest

from services.llm_gateway.providers.events import GenerationRequest, Grounding
from services.llm_gateway.providers.tool_plan import plan, tool_results
from services.runtime.conversation import Fact, Message, Tool, ToolCall, ToolCallAssembly, ToolCallDelta, ToolChoice
from services.runtime.faults import InvalidArgument

FOUND = Grounding(
    status="found",
    query="email e@example.com",
    customer_name="Edwina Hawthorne",
    facts=(Fact("identity", "Client ID", "2480135", "r1"), Fact("contact", "Mailing city", "Chicago", "r1")),
)


def _tool(name: str, description: str, **properties: str) -> Tool:
    schema = {
        "type": "object",
        "properties": {p: {"type": t} for p, t in properties.items()},
        "required": list(properties),
    }
    return Tool(name, description, schema)


TICKETS = _tool("get_open_tickets", "Open support tickets of a customer", email="string")
PAYMENTS = _tool("list_payments", "A customer's payments", client_id="string")
WEATHER = _tool("get_weather", "The weather in a city", city="string")
ORDER = _tool("get_order", "An order", order_number="string")


def _request(text: str, *tools: Tool, choice: ToolChoice | None = None, grounding=FOUND, extra=()) -> GenerationRequest:
    return GenerationRequest("offline", [Message("user", text), *extra], tools=tools, tool_choice=choice,
                             grounding=grounding)  # fmt: skip


def test_auto_calls_the_tool_the_question_is_about_with_the_users_identifier():
    (call,) = plan(_request("Does e@example.com have open tickets?", WEATHER, PAYMENTS, TICKETS))
    assert (call.name, orjson.loads(call.arguments)) == ("get_open_tickets", {"email": "e@example.com"})
    (call,) = plan(_request("Any failed payments for e@example.com?", WEATHER, PAYMENTS, TICKETS))
    assert (call.name, orjson.loads(call.arguments)) == ("list_payments", {"client_id": "2480135"})


def test_auto_answers_in_words_when_no_tool_fits_or_the_tools_have_answered():
    assert plan(_request("Does e@example.com have open tickets?", ORDER)) == []
    assert plan(_request("hello", WEATHER, grounding=Grounding(status="no_identifier"))) == []
    answered = (
        Message("assistant", "", tool_calls=(ToolCall("call_1", "get_open_tickets", "{}"),)),
        Message("tool", '{"open": []}', tool_call_id="call_1"),
    )
    request = _request("Does e@example.com have open tickets?", TICKETS, extra=answered)
    assert plan(request) == []
    assert tool_results(request.messages)[0].name == "get_open_tickets"


def test_required_and_named_are_honoured_or_refused_naming_the_parameter():
    (call,) = plan(_request("hi e@example.com", WEATHER, choice=ToolChoice("required")))
    assert orjson.loads(call.arguments) == {"city": "Chicago"}  # from her records
    with pytest.raises(InvalidArgument) as caught:
        plan(_request("hi e@example.com", TICKETS, ORDER, choice=ToolChoice("function", "get_order")))
    assert caught.value.field == "tools[1].function.parameters.order_number"
    with pytest.raises(InvalidArgument) as caught:
        plan(_request("hi", ORDER, choice=ToolChoice("required"), grounding=Grounding(status="no_identifier")))
    assert caught.value.field == "tools[0].function.parameters.order_number"
    with pytest.raises(InvalidArgument) as caught:
        plan(_request("hi", ORDER, WEATHER, choice=ToolChoice("required"), grounding=Grounding(status="")))
    assert caught.value.field == "tool_choice" and "'get_order', 'get_weather'" in caught.value.message


def test_the_same_conversation_gets_the_same_call_id():
    first = plan(_request("Does e@example.com have open tickets?", TICKETS))
    assert first == plan(_request("Does e@example.com have open tickets?", TICKETS))
    assert first[0].id != plan(_request("Open tickets of e@example.com?", TICKETS))[0].id


def test_streamed_pieces_are_assembled_into_whole_calls_in_index_order():
    calls = ToolCallAssembly()
    assert not calls
    for piece in (
        ToolCallDelta(1, id="call_b", name="second"),
        ToolCallDelta(0, id="call_a", name="first", arguments='{"a"'),
        ToolCallDelta(1, arguments="{}"),
        ToolCallDelta(0, arguments=": 1}"),
    ):
        calls.add(piece)
    assert calls.calls() == [ToolCall("call_a", "first", '{"a": 1}'), ToolCall("call_b", "second", "{}")]
