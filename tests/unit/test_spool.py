"""The spool keeps an Outbox's items on disk until they are taken, and a new
process sends again what an earlier one left: a record cut short by the
writer's death is dropped, done segments are removed, one process owns a
folder."""

from __future__ import annotations

import asyncio

import pytest

from services.runtime import spool as spool_module
from services.runtime.outbox import Outbox, RetryLater
from services.runtime.spool import Spool, SpoolError


def test_items_left_by_a_dead_process_are_recovered_in_order(tmp_path):
    first = Spool(tmp_path, "outcomes")
    for n in range(5):
        first.append(f"item {n}".encode())
    first.append(b"last")
    first._lock.close()  # the writer dies: the kernel lets go of its lock
    second = Spool(tmp_path, "outcomes")
    assert [payload for payload, _ in second.recover()] == [*(f"item {n}".encode() for n in range(5)), b"last"]


def test_a_record_cut_short_ends_its_segment(tmp_path):
    first = Spool(tmp_path, "outcomes")
    first.append(b"whole")
    first.append(b"cut short")
    first._lock.close()
    segment = next(tmp_path.glob("outcomes-*.spool"))
    segment.write_bytes(segment.read_bytes()[:-3])
    assert [payload for payload, _ in Spool(tmp_path, "outcomes").recover()] == [b"whole"]


def test_a_segment_is_removed_once_closed_and_every_item_done(tmp_path, monkeypatch):
    monkeypatch.setattr(spool_module, "SEGMENT_ITEMS", 3)
    spool = Spool(tmp_path, "outcomes")
    numbers = [spool.append(b"x") for _ in range(7)]
    assert numbers == [1, 1, 1, 2, 2, 2, 3]
    for number in numbers[:3]:
        spool.done(number)
    assert sorted(p.name for p in tmp_path.glob("*.spool")) == ["outcomes-2.spool", "outcomes-3.spool"]
    for number in numbers[3:]:
        spool.done(number)
    spool.close()  # the open segment is closed: all done, so removed too
    assert not list(tmp_path.glob("*.spool"))


def test_one_process_owns_a_folder(tmp_path):
    held = Spool(tmp_path, "outcomes")
    with pytest.raises(SpoolError, match="another process holds the outcomes spool"):
        Spool(tmp_path, "outcomes")
    held.close()
    Spool(tmp_path, "outcomes")  # free again once its owner let go


async def test_an_outbox_delivers_what_the_last_process_left_exactly_as_posted(tmp_path):
    taken: list[str] = []
    away = True

    async def send(items: list[str]) -> None:
        if away:
            raise RetryLater("away")
        taken.extend(items)

    outbox = Outbox(send, batch=10, spool=Spool(tmp_path, "o"), encode=str.encode, decode=bytes.decode)
    for n in range(25):
        outbox.post(f"turn-{n}")
    await asyncio.sleep(0.05)
    outbox._spool._lock.close()  # SIGKILL: nothing delivered, no drain
    for task in outbox._tasks:
        task.cancel()

    away = False
    again = Outbox(send, batch=10, spool=Spool(tmp_path, "o"), encode=str.encode, decode=bytes.decode)
    assert again.recover() == 25
    assert await again.drain(5.0) == 0
    assert taken == [f"turn-{n}" for n in range(25)]
    assert not list(tmp_path.glob("*.spool"))  # all taken: nothing left on disk


async def test_a_batch_stops_before_the_bytes_a_call_may_carry(tmp_path):
    calls: list[list[str]] = []

    async def send(items: list[str]) -> None:
        calls.append(items)

    outbox = Outbox(
        send,
        senders=1,
        batch=100,
        spool=Spool(tmp_path, "o"),
        encode=str.encode,
        decode=bytes.decode,
        max_batch_bytes=10,
    )
    outbox._tasks = [asyncio.ensure_future(asyncio.sleep(0))]  # hold the senders until all are posted
    for item in ["aaaa", "bbbb", "cccc", "d" * 50, "e"]:
        outbox.post(item)
    outbox._tasks = []
    outbox.post("f")
    assert await outbox.drain(5.0) == 0
    assert [item for call in calls for item in call] == ["aaaa", "bbbb", "cccc", "d" * 50, "e", "f"]
    assert calls == [["aaaa", "bbbb"], ["cccc"], ["d" * 50], ["e", "f"]]


async def test_a_disk_that_fails_keeps_items_in_memory_and_the_turn_going(tmp_path):
    taken: list[str] = []

    async def send(items: list[str]) -> None:
        taken.extend(items)

    spool = Spool(tmp_path, "o")

    def full(payload: bytes) -> int:
        raise OSError(28, "No space left on device")

    spool.append = full
    outbox = Outbox(send, batch=10, spool=spool, encode=str.encode, decode=bytes.decode)
    outbox.post("turn-1")  # does not raise
    assert await outbox.drain(5.0) == 0
    assert taken == ["turn-1"] and outbox.unspooled == 1
