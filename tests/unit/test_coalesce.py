import asyncio

import pytest

from services.llm_gateway.service import MAX_HOLD_S, LlmGatewayService
from services.runtime.coalesce import batches, joined


async def ticks(items, delay_s=0.0, fail_after=None):
    for n, item in enumerate(items):
        if fail_after is not None and n == fail_after:
            raise RuntimeError("source broke")
        if delay_s:
            await asyncio.sleep(delay_s)
        yield item


async def test_a_fast_consumer_gets_every_item_alone():
    got = [batch async for batch in batches(ticks(range(5), delay_s=0.005))]
    assert got == [[0], [1], [2], [3], [4]]


async def test_a_busy_consumer_gets_what_piled_up_in_order():
    got = []
    async for batch in batches(ticks(range(50), delay_s=0.001)):
        got.append(batch)
        await asyncio.sleep(0.01)
    assert [item for batch in got for item in batch] == list(range(50))
    assert len(got) < 25


async def test_items_before_an_error_are_delivered_first():
    got = []
    with pytest.raises(RuntimeError, match="source broke"):
        async for batch in batches(ticks(range(10), delay_s=0.001, fail_after=3)):
            got.extend(batch)
    assert got == [0, 1, 2]


async def test_leaving_early_closes_the_source():
    closed = asyncio.Event()

    async def source():
        try:
            for n in range(1000):
                await asyncio.sleep(0.001)
                yield n
        finally:
            closed.set()

    stream = batches(source())
    async for _ in stream:
        break
    await stream.aclose()
    assert closed.is_set()


async def test_a_cancelled_source_is_not_a_normal_end():
    async def source():
        yield 1
        raise asyncio.CancelledError  # as grpc raises when the call was cancelled elsewhere

    got = []
    with pytest.raises(asyncio.CancelledError):
        async for batch in batches(source()):
            got.extend(batch)
    assert got == [1]


def test_joined_merges_runs_of_deltas_and_keeps_other_items_in_place():
    batch = ["a", "b", 1, "c", 2, 3, "d", "e", ""]
    assert list(joined(batch, lambda x: x if isinstance(x, str) else None)) == ["ab", 1, "c", 2, 3, "de"]


async def test_a_hold_gathers_a_fast_stream_but_never_holds_the_first_item():
    got = [batch async for batch in batches(ticks(range(20), delay_s=0.005), hold_s=0.03)]
    assert got[0] == [0]
    assert [item for batch in got for item in batch] == list(range(20))
    assert len(got) < 20 and max(len(batch) for batch in got) > 1


async def test_a_hold_ends_with_the_source_and_passes_its_error_after_its_items():
    got = []
    with pytest.raises(RuntimeError, match="source broke"):
        async for batch in batches(ticks(range(5), delay_s=0.002, fail_after=3), hold_s=10.0):
            got.append(batch)
    assert [item for batch in got for item in batch] == [0, 1, 2]


def test_the_hold_grows_with_the_answers_streaming_at_once_up_to_its_ceiling():
    service = LlmGatewayService(chain=None, hold_s=0.015)
    holds = []
    for open_streams in (0, 100, 300, 1000):
        service._open = open_streams
        holds.append(round(service.hold_s(), 4))
    assert holds == [0.015, 0.03, 0.06, MAX_HOLD_S]
    assert LlmGatewayService(chain=None, hold_s=0.0).hold_s() == 0.0  # STREAM_HOLD_MS=0: no hold at all
