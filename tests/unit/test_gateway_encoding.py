"""SSE chunk encoding, request validation and gRPC-to-OpenAI error mapping."""

import grpc
import orjson
import pytest
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from tilores_x.v1 import common_pb2

from gateway.chat_request import parse_chat_request
from gateway.openai_errors import OpenAIError, from_grpc
from gateway.sse import DONE, ChunkEncoder, error_event


def _event(raw: bytes) -> dict:
    assert raw.startswith(b"data: ") and raw.endswith(b"\n\n")
    return orjson.loads(raw[6:])


def test_chunks_have_openai_shapes():
    encoder = ChunkEncoder("chatcmpl-1", 1700000000, "offline", include_usage=True)
    role = _event(encoder.role())
    assert role["object"] == "chat.completion.chunk"
    assert role["choices"] == [
        {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
    ]
    assert role["usage"] is None
    delta = _event(encoder.delta('Score "712"\n'))
    assert delta["choices"][0]["delta"] == {"content": 'Score "712"\n'}
    assert (delta["id"], delta["created"], delta["model"]) == ("chatcmpl-1", 1700000000, "offline")
    assert _event(encoder.finish("length"))["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "length",
    }
    usage = _event(encoder.usage(10, 5))
    assert usage["choices"] == []
    assert usage["usage"] == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    assert DONE == b"data: [DONE]\n\n"


def test_chunks_without_usage_have_no_usage_key():
    encoder = ChunkEncoder("chatcmpl-1", 1, "offline", include_usage=False)
    assert "usage" not in _event(encoder.delta("x"))


def test_mid_stream_error_event():
    assert _event(error_event("UNAVAILABLE", "provider dropped")) == {
        "error": {"message": "provider dropped", "type": "api_error", "param": None, "code": "unavailable"}
    }


def _rpc_error(code: int, message: str, field: str | None = None, retry_ms: int | None = None):
    status = status_pb2.Status(code=code, message=message)
    if field:
        status.details.add().Pack(
            error_details_pb2.BadRequest(
                field_violations=[error_details_pb2.BadRequest.FieldViolation(field=field, description=message)]
            )
        )
    if retry_ms:
        info = error_details_pb2.RetryInfo()
        info.retry_delay.FromMilliseconds(retry_ms)
        status.details.add().Pack(info)
    converted = rpc_status.to_status(status)
    return grpc.aio.AioRpcError(
        converted.code, grpc.aio.Metadata(), grpc.aio.Metadata(*converted.trailing_metadata), message
    )


def test_unknown_model_maps_to_openai_404():
    error = from_grpc(_rpc_error(code_pb2.NOT_FOUND, "The model `x` does not exist.", field="model"))
    assert error.status == 404
    assert error.body() == {
        "error": {
            "message": "The model `x` does not exist.",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
    }


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        (code_pb2.INVALID_ARGUMENT, 400, "invalid_request_error"),
        (code_pb2.UNAUTHENTICATED, 401, "authentication_error"),
        (code_pb2.RESOURCE_EXHAUSTED, 429, "rate_limit_error"),
        (code_pb2.UNAVAILABLE, 503, "api_error"),
        (code_pb2.DEADLINE_EXCEEDED, 504, "timeout_error"),
        (code_pb2.INTERNAL, 500, "api_error"),
    ],
)
def test_status_codes_map_to_http(code, status, kind):
    error = from_grpc(_rpc_error(code, "boom"))
    assert (error.status, error.type, error.message) == (status, kind, "boom")


def test_retry_info_becomes_retry_after():
    error = from_grpc(_rpc_error(code_pb2.RESOURCE_EXHAUSTED, "slow down", retry_ms=2500))
    assert error.retry_after_s == 2.5


def _error_of(body) -> dict:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    with pytest.raises(OpenAIError) as caught:
        parse_chat_request(raw)
    return {"status": caught.value.status, **caught.value.body()["error"]}


def test_request_validation_names_the_field():
    user = {"role": "user", "content": "hi"}
    assert _error_of(b"{not json")["status"] == 400
    assert _error_of([1, 2])["message"].startswith("Invalid request body")
    assert _error_of({"model": "offline"}) == {
        "status": 400,
        "message": "Missing required parameter: 'messages'.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "missing_required_parameter",
    }
    assert _error_of({"model": "offline", "messages": []})["code"] == "empty_array"
    assert _error_of({"model": "offline", "messages": "hi"})["message"] == (
        "Invalid type for 'messages': expected an array, but got a string instead."
    )
    assert _error_of({"messages": [user]})["param"] == "model"
    assert _error_of({"model": 5, "messages": [user]})["param"] == "model"
    assert _error_of({"model": "offline", "messages": [user, {"role": "robot", "content": "x"}]})["param"] == (
        "messages[1].role"
    )
    assert _error_of({"model": "offline", "messages": [{"content": "x"}]})["param"] == "messages[0].role"
    assert _error_of({"model": "offline", "messages": [{"role": "user", "content": 5}]})["param"] == (
        "messages[0].content"
    )
    assert _error_of({"model": "offline", "messages": [user], "temperature": 3})["param"] == "temperature"
    assert _error_of({"model": "offline", "messages": [user], "stream": "yes"})["param"] == "stream"
    assert _error_of({"model": "offline", "messages": [user], "max_tokens": 0})["param"] == "max_tokens"
    assert _error_of({"model": "offline", "messages": [user], "logprobs": True})["code"] == "unsupported_parameter"
    assert _error_of({"model": "offline", "messages": [user], "tools": [{"type": "web"}]})["param"] == "tools[0]"
    assert _error_of({"model": "offline", "messages": [user], "stop": ["a", "b", "c", "d", "e"]})["param"] == "stop"
    assert _error_of({"model": "offline", "messages": [user], "tool_choice": "required"})["param"] == "tool_choice"
    assert _error_of({"model": "offline", "messages": [{"role": "tool", "content": "x"}]})["param"] == (
        "messages[0].tool_call_id"
    )
    assert _error_of({"model": "offline", "messages": [user], "bogus": 1})["message"] == (
        "Unrecognized request argument supplied: bogus"
    )
    assert _error_of({"model": "offline", "messages": [user], "stream_options": {"include_usage": True}})["param"] == (
        "stream_options"
    )


def test_valid_request_becomes_a_router_request():
    call = parse_chat_request(
        orjson.dumps(
            {
                "model": "offline",
                "stream": True,
                "stream_options": {"include_usage": True},
                "temperature": 0,
                "max_tokens": 50,
                "user": "agent-7",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {
                        "role": "user",
                        "content": [{"type": "text", "text": "status of "}, {"type": "text", "text": "x"}],
                    },
                ],
            }
        )
    )
    assert (call.model, call.stream, call.include_usage) == ("offline", True, True)
    assert call.request.temperature == 0 and call.request.HasField("temperature")
    assert call.request.max_tokens == 50
    assert call.request.conversation_id == "agent-7"
    assert [(m.role, m.content) for m in call.request.messages] == [
        (common_pb2.ROLE_SYSTEM, "Be brief."),
        (common_pb2.ROLE_USER, "status of x"),
    ]
