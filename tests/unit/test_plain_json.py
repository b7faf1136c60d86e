"""gateway/plain_json.py: protobuf messages as the JSON a REST client reads,
and the schema of that JSON."""

from __future__ import annotations

from jsonschema import Draft202012Validator
from tilores_x.v1 import audit_pb2, optimizer_pb2

from gateway.plain_json import plain_dict, plain_schemas, schema_ref
from gateway.query_params import moment_param
from services.runtime.moment_wire import seconds_of, timestamp_of
from services.runtime.moments import iso_of


def test_a_timestamp_is_iso_8601_in_utc_and_an_unset_one_null():
    run = optimizer_pb2.EvaluationRun(id="eval-1", started_at=timestamp_of(1_796_000_000.25))
    plain = plain_dict(run)
    assert plain["started_at"] == "2026-11-30T00:53:20.250Z"
    assert plain["finished_at"] is None
    assert (plain["error"], plain["prompt_version"], plain["note"]) == (None, None, None)


def test_moments_go_both_ways_to_the_millisecond():
    assert seconds_of(timestamp_of(1_796_000_000.125)) == 1_796_000_000.125
    assert timestamp_of(None) is None
    assert iso_of(0) == "1970-01-01T00:00:00.000Z"


def test_the_schema_says_what_plain_dict_writes():
    schemas = plain_schemas(optimizer_pb2.ListPromptsResponse, audit_pb2.AccessRecord)
    summary = schemas["PromptSummary"]
    assert summary["properties"]["running_experiment_id"] == {"type": ["integer", "null"]}
    assert summary["properties"]["updated_at"] == {"type": ["string", "null"], "format": "date-time"}
    assert summary["additionalProperties"] is False and set(summary["required"]) == set(summary["properties"])
    validator = Draft202012Validator(
        {**schema_ref(optimizer_pb2.ListPromptsResponse), "$defs": {}, "components": {"schemas": schemas}}
    )
    listed = optimizer_pb2.ListPromptsResponse(
        prompts=[
            optimizer_pb2.PromptSummary(name="customer", active_version=1, versions=1, updated_at=timestamp_of(1.0))
        ]
    )
    assert not list(validator.iter_errors(plain_dict(listed)))
    # What plain JSON forbids, the schema rejects: an epoch number, a 0 for "none".
    wrong = plain_dict(listed)
    wrong["prompts"][0]["updated_at"] = 1.0
    assert list(validator.iter_errors(wrong))


def test_a_time_filter_takes_iso_8601_or_seconds():
    assert moment_param({"since": "2026-11-30T00:53:20.250Z"}, "since") == 1_796_000_000.25
    assert moment_param({"since": "2026-11-30T00:53:20"}, "since") == 1_796_000_000.0  # no zone: UTC
    assert moment_param({"since": "1796000000.5"}, "since") == 1_796_000_000.5
    assert moment_param({}, "since") == 0.0
