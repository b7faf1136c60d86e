"""Outbox: items on their way to another service, off the hot path (turn
outcomes to the optimizer, access records to the audit log). Each waits in
a bounded buffer until the receiver has taken it; a send that fails for a
while (the receiver restarting, a deploy) is retried with jittered
exponential backoff rather than lost. Only a full buffer drops items, the
oldest first, and counts them. Delivery is at least once. Each send runs in
the context the item was posted from, so its request id and trace are the
ones of the call that posted it.

With `batch` above 1 the receiver takes lists: what piled up while the
previous send was on its way goes in one call, sent in the context of the
first item. With `linger_s` as well, a batch short of `batch` waits that
long for more before it goes (as a Kafka producer's linger.ms does): an
RPC per many turns under load rather than one per turn or two, for a
record that arrives `linger_s` later. With `max_batch_bytes` (items
spooled, so their size is known) a batch also stops before that many
bytes, so no call grows past what the receiver takes, whatever one item
holds.

With a `spool` (and `encode`, `decode`) every item is also on disk from the
moment it is posted until it is taken: `recover()` sends again what an
earlier process left (runtime/spool.py), so an item outlives the death of
the process that posted it. The receiver must take each item once."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import random
from collections import Counter, deque
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Generic, TypeVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from services.runtime.spool import Spool

T = TypeVar("T")
log = logging.getLogger("outbox")


class RetryLater(Exception):
    """The receiver is away for now; the same item should be sent again."""


class Outbox(Generic[T]):
    def __init__(
        self,
        send: Callable[[Any], Coroutine[Any, Any, None]],  # takes an item, or a list of them with `batch`
        *,
        name: str = "outcomes",
        capacity: int = 10_000,
        senders: int = 4,
        first_backoff_s: float = 0.05,
        max_backoff_s: float = 2.0,
        batch: int = 1,
        spool: Spool | None = None,
        encode: Callable[[T], bytes] | None = None,
        decode: Callable[[bytes], T] | None = None,
        max_batch_bytes: int = 0,
        linger_s: float = 0.0,
    ):
        self._send = send
        self._batch = batch
        self.name = name  # in logs and metrics: `outcomes`, `access_records`
        if spool is not None and (encode is None or decode is None):
            raise ValueError("a spooled outbox needs encode and decode")
        self._spool, self._encode, self._decode = spool, encode, decode
        self._max_batch_bytes = max_batch_bytes
        self._linger_s = linger_s
        # One sender gathers a batch at a time, so two do not each linger
        # and then split what arrived between them.
        self._gathering = asyncio.Lock()
        # Each item with the context it was posted in, its spool segment (0:
        # none) and its size on disk.
        self._pending: deque[tuple[T, contextvars.Context, int, int]] = deque()
        self._capacity = capacity
        self._senders = senders
        self._first_backoff_s = first_backoff_s
        self._max_backoff_s = max_backoff_s
        self._ready = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()
        self._tasks: list[asyncio.Task[None]] = []
        self._in_flight = 0
        self.delivered = 0
        self.dropped = 0
        self.rejected = 0
        self.unspooled = 0  # items the spool could not write, kept in memory only

    @property
    def pending(self) -> int:
        """Items not yet taken by the receiver (waiting or being sent)."""
        return len(self._pending) + self._in_flight

    def post(self, item: T) -> None:
        """Queue an item (on disk too, with a spool, before this returns);
        never waits."""
        if self._spool is None or self._encode is None:
            self._queue(item, contextvars.copy_context(), 0, 0)
            return
        payload = self._encode(item)
        try:
            segment = self._spool.append(payload)
        except OSError as error:  # a full or failing disk: the item goes on in memory
            segment = 0
            self.unspooled += 1
            if self.unspooled == 1 or self.unspooled % 1000 == 0:
                log.warning(
                    f"{self.name}.not_spooled", extra={"fields": {"error": error.strerror, "items": self.unspooled}}
                )
        self._queue(item, contextvars.copy_context(), segment, len(payload))

    def recover(self) -> int:
        """Queue what an earlier process left in the spool; how many items."""
        if self._spool is None or self._decode is None:
            return 0
        recovered = self._spool.recover()
        for payload, segment in recovered:
            self._queue(self._decode(payload), contextvars.Context(), segment, len(payload))
        return len(recovered)

    def _queue(self, item: T, context: contextvars.Context, segment: int, size: int) -> None:
        if self._pending and len(self._pending) + self._in_flight >= self._capacity:
            _, _, oldest, _ = self._pending.popleft()
            self._finished([oldest])
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning(f"{self.name}.dropped", extra={"fields": {"dropped": self.dropped}})
        self._pending.append((item, context, segment, size))
        self._empty.clear()
        self._ready.set()
        if not self._tasks:
            self._tasks = [asyncio.ensure_future(self._deliver()) for _ in range(self._senders)]

    def _finished(self, segments: list[int]) -> None:
        """Items taken, refused for good or dropped: off the disk."""
        if self._spool is None:
            return
        for segment, count in Counter(segments).items():
            self._spool.done(segment, count)

    async def _deliver(self) -> None:
        while True:
            if not self._pending:
                self._ready.clear()
                await self._ready.wait()
                continue
            item: T | list[T]
            if self._batch > 1:
                async with self._gathering:
                    if self._linger_s and len(self._pending) < self._batch:
                        await asyncio.sleep(self._linger_s)
                    if not self._pending:  # another sender took them
                        continue
                    taken = self._next_batch()
                item, context, count = [i for i, _, _, _ in taken], taken[0][1], len(taken)
                segments = [s for _, _, s, _ in taken]
            else:
                item, context, segment, _ = self._pending.popleft()
                count, segments = 1, [segment]
            self._in_flight += count
            try:
                await self._until_taken(item, context, count)
                self._finished(segments)  # not when cancelled at shutdown: then they stay on disk
            finally:
                self._in_flight -= count
                if not self._pending and not self._in_flight:
                    self._empty.set()

    def _next_batch(self) -> list[tuple[T, contextvars.Context, int, int]]:
        taken = [self._pending.popleft()]
        size = taken[0][3]
        while self._pending and len(taken) < self._batch:
            if self._max_batch_bytes and size + self._pending[0][3] > self._max_batch_bytes:
                break
            taken.append(self._pending.popleft())
            size += taken[-1][3]
        return taken

    async def _until_taken(self, item: T | list[T], context: contextvars.Context, count: int = 1) -> None:
        backoff = self._first_backoff_s
        while True:
            try:
                await asyncio.create_task(self._send(item), context=context)
            except RetryLater:
                # Jittered, so replicas that saw the same outage do not return in step.
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, self._max_backoff_s)
                continue
            except Exception as error:  # refused for good: retrying cannot help
                self.rejected += count
                log.warning(f"{self.name}.rejected", extra={"fields": {"error": type(error).__name__, "items": count}})
                return
            self.delivered += count
            return

    async def drain(self, timeout_s: float) -> int:
        """Wait up to `timeout_s` for the buffer to empty, then stop sending;
        the number of items left undelivered."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._empty.wait(), timeout_s)
        left = self.pending
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if left:
            fields = {"pending": left, "kept_on_disk": self._spool is not None}  # sent again on the next start
            log.warning(f"{self.name}.undelivered_at_shutdown", extra={"fields": fields})
        if self._spool is not None:
            self._spool.close()
        return left


def outbox_metrics(outbox: Outbox[Any], prefix: str, what: str) -> Callable[[], Iterable[Metric]]:
    """Scrape-time figures (`<prefix>_pending`, `<prefix>_total{result}`):
    items waiting, delivered, refused and dropped."""

    def collect() -> Iterable[Metric]:
        pending = GaugeMetricFamily(f"{prefix}_pending", f"{what} not yet taken by the receiver.")
        pending.add_metric([], outbox.pending)
        handled = CounterMetricFamily(prefix, f"{what} by what became of them.", labels=["result"])
        handled.add_metric(["delivered"], outbox.delivered)
        handled.add_metric(["rejected"], outbox.rejected)
        handled.add_metric(["dropped"], outbox.dropped)
        return [pending, handled]

    return collect
