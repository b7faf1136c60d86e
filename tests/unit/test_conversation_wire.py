"""A request's conversation is checked once, for the router and the model
gateway alike, and a bad message is named by its place in the caller's
own list."""

from __future__ import annotations

import pytest
from tilores_x.v1 import common_pb2, router_pb2

from services.router.service import turn_request
from services.runtime.conversation_wire import messages_of
from services.runtime.faults import InvalidArgument

USER = common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content="Her credit score?")


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (common_pb2.ChatMessage(content="no role"), "messages[1].role"),
        (common_pb2.ChatMessage(role=common_pb2.ROLE_TOOL, content="712"), "messages[1].tool_call_id"),
        (
            common_pb2.ChatMessage(
                role=common_pb2.ROLE_ASSISTANT, tool_calls=[common_pb2.ToolCall(id="call_1", name="")]
            ),
            "messages[1].tool_calls[0]",
        ),
    ],
)
def test_a_bad_message_is_named_where_the_caller_put_it(message, field):
    with pytest.raises(InvalidArgument) as refused:
        messages_of([USER, message])
    assert refused.value.field == field
    # The router checks the caller's list before it adds its system prompt.
    with pytest.raises(InvalidArgument) as refused:
        turn_request(router_pb2.ChatRequest(model="offline", messages=[USER, message]))
    assert refused.value.field == field


def test_an_empty_conversation_is_refused_and_a_good_one_read():
    with pytest.raises(InvalidArgument, match="messages must not be empty"):
        messages_of([])
    [read] = messages_of([USER])
    assert (read.role, read.content) == ("user", "Her credit score?")
