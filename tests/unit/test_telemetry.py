"""How a service sets up tracing from the standard OTEL_* variables. Each
case runs in a fresh interpreter: a process has one tracer provider."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import json
from opentelemetry import trace
from services.runtime.settings import SettingsError
from services.runtime.telemetry import configure_tracing, current_trace_id
try:
    provider = configure_tracing("probe")
except SettingsError as error:
    print(json.dumps({"error": str(error)}))
    raise SystemExit(0)
from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
with trace.get_tracer("probe").start_as_current_span("turn") as span:
    seen = {"provider": provider is not None, "recording": span.is_recording(), "trace_id": current_trace_id(),
            "http_spans": AioHttpClientInstrumentor().is_instrumented_by_opentelemetry}
print(json.dumps(seen), flush=True)
"""


def probe(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    result = subprocess.run(
        [sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(result.stdout.splitlines()[0])  # the console exporter prints after it


def test_without_an_exporter_spans_carry_ids_but_record_nothing():
    seen = probe()
    assert seen["provider"] is True
    assert seen["recording"] is False  # nothing would leave the process
    assert seen["http_spans"] is False  # no hooks on every provider request for spans nobody keeps
    assert len(seen["trace_id"]) == 32 and int(seen["trace_id"], 16)  # still in the logs and the metadata


@pytest.mark.parametrize(
    "env",
    [
        {"OTEL_TRACES_EXPORTER": "console"},
        {"OTEL_TRACES_EXPORTER": "none", "OTEL_TRACES_SAMPLER": "always_on"},
    ],
)
def test_an_exporter_or_an_explicit_sampler_records_spans(env):
    seen = probe(**env)
    assert seen["recording"] is True and seen["http_spans"] is True


def test_an_unknown_exporter_is_refused_by_name():
    assert probe(OTEL_TRACES_EXPORTER="zipkin-ish") == {
        "error": "OTEL_TRACES_EXPORTER: expected none, otlp or console, got 'zipkin-ish'"
    }


def test_sdk_disabled_makes_no_trace_at_all():
    assert probe(OTEL_SDK_DISABLED="true") == {
        "provider": False,
        "recording": False,
        "trace_id": "",
        "http_spans": False,
    }
