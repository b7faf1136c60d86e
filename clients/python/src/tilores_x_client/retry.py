"""RetryPolicy: which failures are tried again, how often and after how long.

Only UNAVAILABLE before the first message of an answer is retried: the mesh
answers UNAVAILABLE when it did nothing (no replica reachable, a peer down),
so asking again cannot do anything twice, and no token has reached the
caller yet. Everything else, and any failure after the first message, is
the caller's to decide. Waits grow exponentially with full jitter (so many
clients do not retry in step) and never pass the call's deadline.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import grpc


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` in all (1: never retry); waits of up to `initial_backoff`
    seconds, growing by `multiplier` to at most `max_backoff`."""

    attempts: int = 4
    initial_backoff: float = 0.2
    max_backoff: float = 2.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts: at least 1")
        if not 0 <= self.initial_backoff <= self.max_backoff:
            raise ValueError("initial_backoff: between 0 and max_backoff")
        if self.multiplier < 1:
            raise ValueError("multiplier: at least 1")

    def retries(self, code: grpc.StatusCode, attempt: int, answered: bool) -> bool:
        """Whether a call that failed with `code` on its `attempt`-th try
        (1-based), having `answered` with a message or not, goes again."""
        return code == grpc.StatusCode.UNAVAILABLE and not answered and attempt < self.attempts

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after the `attempt`-th try failed."""
        ceiling = min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))
        return (rng or random).uniform(0, ceiling)


NEVER = RetryPolicy(attempts=1)
