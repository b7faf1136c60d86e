"""The soak in small (`make soak` runs 1,000 streams): many slow streams at
once through Envoy and every hop, while the servers age their connections
out every few seconds, as they do every 5 minutes in production. Every
stream must reach `data: [DONE]`: no limit on the way cuts an answer that
is within the documented cap."""

from __future__ import annotations

import pytest
import uvloop

from bench.soak import report, soak
from tests.e2e.conftest import API_KEY, start_local_mesh

pytestmark = pytest.mark.e2e
STREAMS = 100


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    # Offline tokens 150 ms apart: every answer (about 100 tokens) streams for
    # about 15 s, far longer than a connection lives here (3 s) and than the
    # shutdown grace.
    mesh = start_local_mesh(
        tmp_path_factory.mktemp("soak"), OFFLINE_TOKEN_DELAY_MS="150", MAX_CONNECTION_AGE_S="3", LOG_LEVEL="WARNING"
    )
    yield mesh
    mesh.stop()


def test_every_slow_stream_finishes_while_connections_age_out(mesh):
    results = uvloop.run(soak(mesh.rest_url, STREAMS, cap_s=120, rate=150, key=API_KEY))
    summary = report(results)
    assert all(r.done for r in results), summary
    assert min(r.duration_s for r in results) > 10, summary  # the streams really outlived the connections
