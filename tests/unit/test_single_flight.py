import asyncio

import pytest

from services.runtime.single_flight import SingleFlight


async def test_concurrent_callers_share_one_call():
    flight: SingleFlight[str] = SingleFlight()
    calls = 0
    release = asyncio.Event()

    async def lookup() -> str:
        nonlocal calls
        calls += 1
        await release.wait()
        return "edwina"

    waiters = [asyncio.ensure_future(flight.run("k", lookup)) for _ in range(20)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiters) == ["edwina"] * 20
    assert calls == 1 and (flight.started, flight.joined) == (1, 19)
    # Afterwards a new caller starts a new call.
    assert await flight.run("k", lookup) == "edwina" and calls == 2


async def test_a_caller_giving_up_does_not_cancel_the_call_for_others():
    flight: SingleFlight[int] = SingleFlight()
    release = asyncio.Event()

    async def slow() -> int:
        await release.wait()
        return 42

    impatient = asyncio.ensure_future(flight.run("k", slow))
    patient = asyncio.ensure_future(flight.run("k", slow))
    await asyncio.sleep(0)
    impatient.cancel()
    release.set()
    assert await patient == 42
    with pytest.raises(asyncio.CancelledError):
        await impatient


async def test_errors_reach_every_caller():
    flight: SingleFlight[int] = SingleFlight()

    async def broken() -> int:
        await asyncio.sleep(0)
        raise LookupError("down")

    results = await asyncio.gather(*(flight.run("k", broken) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, LookupError) for r in results)
