"""Outbox: outcomes survive a receiver that is away for a while, a
full buffer drops the oldest and says so, a refusal is not retried."""

from __future__ import annotations

import asyncio

from services.runtime.outbox import Outbox, RetryLater


class Receiver:
    def __init__(self, away_for: int = 0, refuse: set[int] | None = None):
        self.away_for = away_for  # calls answered "retry later" first
        self.refuse = refuse or set()
        self.calls = 0
        self.taken: list[int] = []

    async def __call__(self, item: int) -> None:
        self.calls += 1
        await asyncio.sleep(0)
        if self.calls <= self.away_for:
            raise RetryLater("away")
        if item in self.refuse:
            raise ValueError("bad outcome")
        self.taken.append(item)


async def test_every_outcome_arrives_after_an_outage():
    receiver = Receiver(away_for=40)
    outbox = Outbox(receiver, first_backoff_s=0.001, max_backoff_s=0.01)
    for n in range(100):
        outbox.post(n)
    assert await outbox.drain(5.0) == 0
    assert sorted(receiver.taken) == list(range(100))
    assert (outbox.delivered, outbox.dropped, outbox.rejected, outbox.pending) == (100, 0, 0, 0)


async def test_a_full_buffer_drops_the_oldest_and_counts_them():
    receiver = Receiver(away_for=10**9)  # never back
    outbox = Outbox(receiver, capacity=10, senders=1, first_backoff_s=0.001, max_backoff_s=0.001)
    for n in range(25):
        outbox.post(n)
    await asyncio.sleep(0.01)
    assert outbox.pending == 10 and outbox.dropped == 15
    assert await outbox.drain(0.05) == 10


async def test_a_refused_outcome_is_not_retried():
    receiver = Receiver(refuse={3})
    outbox = Outbox(receiver)
    for n in range(5):
        outbox.post(n)
    assert await outbox.drain(1.0) == 0
    assert sorted(receiver.taken) == [0, 1, 2, 4] and receiver.calls == 5
    assert outbox.rejected == 1


async def test_items_posted_within_the_linger_go_in_one_call():
    batches: list[list[int]] = []

    async def receive(items: list[int]) -> None:
        batches.append(items)

    outbox = Outbox(receive, batch=100, senders=2, linger_s=0.05)
    for n in range(30):  # as turns end, a few milliseconds apart
        outbox.post(n)
        await asyncio.sleep(0.001)
    assert await outbox.drain(1.0) == 0
    assert batches == [list(range(30))]


async def test_without_a_linger_each_item_goes_as_soon_as_a_sender_is_free():
    batches: list[list[int]] = []

    async def receive(items: list[int]) -> None:
        batches.append(items)

    outbox = Outbox(receive, batch=100, senders=2)
    for n in range(30):
        outbox.post(n)
        await asyncio.sleep(0.001)
    assert await outbox.drain(1.0) == 0
    assert sorted(n for items in batches for n in items) == list(range(30)) and len(batches) > 10


async def test_a_full_batch_does_not_wait_for_the_linger():
    batches: list[list[int]] = []

    async def receive(items: list[int]) -> None:
        batches.append(items)

    outbox = Outbox(receive, batch=10, senders=1, linger_s=30.0)
    for n in range(20):
        outbox.post(n)
    await asyncio.sleep(0.05)
    assert batches == [list(range(10)), list(range(10, 20))]
    assert await outbox.drain(0.1) == 0
