"""SingleFlight: concurrent callers asking for the same key share one call.

The call runs in its own task, so a caller that gives up (cancelled, timed
out) does not cancel it for the others; the key is forgotten once the call
ends, so the next caller after that starts afresh."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self._calls: dict[Hashable, asyncio.Task[T]] = {}
        self.started = 0
        self.joined = 0

    async def run(self, key: Hashable, call: Callable[[], Awaitable[T]]) -> T:
        task = self._calls.get(key)
        if task is None:
            task = asyncio.ensure_future(call())
            self._calls[key] = task
            self.started += 1
            task.add_done_callback(lambda _: self._calls.pop(key, None))
        else:
            self.joined += 1
        return await asyncio.shield(task)
