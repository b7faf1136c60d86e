"""The faults a cluster meets, each with the bounds the mesh must keep.

A fault starts, lasts `duration_s` under a steady load, heals, and the load
goes on for `settle_s`; `detect_bound_s` bounds how long after the start new
requests may still fail, `recover_bound_s` how long after healing. A fault
that is no outage to users (a slow or lossy link, a store away that the
mesh works around) has no failure budget at all (bounds of 0)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from tests.chaos.cluster import EDGE, NODE_A, NODE_B, POSTGRES_HOST, REDIS_HOST, Cluster


@dataclass(frozen=True)
class Fault:
    name: str
    start: Callable[[Cluster], None]
    heal: Callable[[Cluster], None]
    duration_s: float
    detect_bound_s: float
    recover_bound_s: float
    settle_s: float = 10.0
    # Whether quotas may drift while it lasts (Redis away): the report says how far.
    quotas_may_drift: bool = False

    def shorter(self, duration_s: float, settle_s: float) -> Fault:
        return replace(self, duration_s=duration_s, settle_s=settle_s)


def _heal(cluster: Cluster) -> None:
    cluster.network.heal()


def _kill(host: str) -> Callable[[Cluster], None]:
    return lambda cluster: cluster.kill_host(host)


def _restart(host: str) -> Callable[[Cluster], None]:
    return lambda cluster: cluster.restart_host(host)


# A peer gone silent is found within about 4 s (Envoy's health checks, TCP
# keepalive and TCP_USER_TIMEOUT, gRPC pings: deploy/envoy_config.py,
# services/runtime/channels.py); a request caught by it then fails or is
# retried elsewhere. 2 s more for a loaded 2-core machine to run the timers.
LOST_PEER_BOUND_S = 6

FAULTS = (
    Fault(f"{NODE_A} vanishes", lambda c: c.network.vanish(NODE_A), _heal, 20, LOST_PEER_BOUND_S, LOST_PEER_BOUND_S),
    Fault(
        f"partition {NODE_A} / {NODE_B}",
        lambda c: c.network.partition(NODE_A, NODE_B),
        _heal,
        20,
        LOST_PEER_BOUND_S,
        LOST_PEER_BOUND_S,
    ),
    Fault(
        f"partition {EDGE} / {NODE_A}",
        lambda c: c.network.partition(EDGE, NODE_A),
        _heal,
        20,
        LOST_PEER_BOUND_S,
        LOST_PEER_BOUND_S,
    ),
    # Node-b's gateway waits 0.25 s for Redis, less than a round trip on
    # this link may take: such a quota check admits without counting.
    Fault(
        f"{NODE_B} link +200±50 ms", lambda c: c.network.slow(NODE_B, 200, 50), _heal, 20, 0, 0, quotas_may_drift=True
    ),
    Fault(f"{NODE_B} link 5 % loss", lambda c: c.network.lossy(NODE_B, 5), _heal, 20, 0, 0),
    Fault(f"{NODE_B} SIGKILLed", _kill(NODE_B), _restart(NODE_B), 10, LOST_PEER_BOUND_S, LOST_PEER_BOUND_S),
    Fault(f"{REDIS_HOST} vanishes", lambda c: c.network.vanish(REDIS_HOST), _heal, 20, 0, 0, quotas_may_drift=True),
    Fault(f"{POSTGRES_HOST} vanishes 10 s", lambda c: c.network.vanish(POSTGRES_HOST), _heal, 10, 0, 0),
)

# What `make test` runs: a host vanishing and a partition, shorter.
SHORT = (FAULTS[0].shorter(10, 6), FAULTS[1].shorter(10, 6))
