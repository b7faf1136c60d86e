"""batches: forward a stream in batches of whatever has already arrived,
optionally held a few milliseconds so a fast stream goes on in fewer messages.

A producer task drains the source as fast as it yields; the consumer takes
everything pending each time it is ready for more. With a fast consumer every
item goes on alone, the moment it arrives; when the consumer is busy (a slow
hop, a full socket) the items that piled up go on together, so a hop sends
fewer, larger messages with the same content in the same order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypeVar

T = TypeVar("T")


async def batches(source: AsyncIterator[T], hold_s: float | Callable[[], float] = 0.0) -> AsyncIterator[list[T]]:
    """Lists of items in source order; an error of the source is raised
    after the items that came before it. `hold_s` (seconds, or a function
    giving them each time): after a batch, the next waits until that long
    has passed (or the source ends), so a fast source's items go on a few
    together rather than a message each; the first batch is never held."""
    # No hold (the router's and the gateway's hops): no clock read per batch.
    hold = hold_s if callable(hold_s) else (lambda: hold_s) if hold_s else None
    pending: list[T] = []
    wake = asyncio.Event()
    ended = asyncio.Event()
    finished = False
    failure: BaseException | None = None
    loop = asyncio.get_running_loop()
    sent_at: float | None = None

    async def pump() -> None:
        nonlocal finished, failure
        try:
            async for item in source:
                pending.append(item)
                wake.set()
        except BaseException as error:  # handed to the consumer, in order
            # (a cancelled upstream call included: the consumer must not
            # mistake it for a normal end)
            failure = error
        finally:
            finished = True
            wake.set()
            ended.set()

    producer = asyncio.ensure_future(pump())
    try:
        while True:
            if not pending and not finished:
                await wake.wait()
                wake.clear()
            if hold is not None and sent_at is not None and not finished:
                delay = sent_at + hold() - loop.time()
                if delay > 0:  # hold, unless the source ends meanwhile
                    timer = loop.call_later(delay, ended.set)
                    await ended.wait()
                    timer.cancel()
                    if not finished:
                        ended.clear()
            if pending:
                batch = pending[:]
                pending.clear()
                sent_at = loop.time() if hold is not None else None
                yield batch
            elif finished:
                if failure is not None:
                    raise failure
                return
    finally:
        if not producer.done():
            # The consumer went away: stop the source (closing its upstream).
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await producer


def joined(batch: list[T], text_of: Callable[[T], str | None]) -> Iterator[str | T]:
    """The batch with every run of consecutive text deltas joined into one
    string; other items pass through in place. `text_of` gives an item's
    delta text, or None for an item that is not a delta."""
    run: list[str] = []
    for item in batch:
        text = text_of(item)
        if text is not None:
            run.append(text)
            continue
        if run:
            yield "".join(run)
            run = []
        yield item
    if run:
        yield "".join(run)
