"""LookupLimit against a real redis-server: two routers share one count of
distinct customers per principal and hour; a customer already seen stays
available; the next hour starts afresh; with Redis gone each router counts
on its own rather than refusing or admitting everything."""

from __future__ import annotations

import pytest

from services.router.lookup_limit import LookupLimit, LookupLimitReached


class Clock:
    def __init__(self, now: float = 7200.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_two_replicas_share_one_count_per_principal(redis_server):
    clock = Clock()
    one, two = LookupLimit(3, redis_server.url, clock), LookupLimit(3, redis_server.url, clock)
    await one.admit("key/desk-7", ["e1", "e2"])
    await two.admit("key/desk-7", ["e3"])
    with pytest.raises(LookupLimitReached, match="key/desk-7 has looked at 3 different customers this hour") as caught:
        await two.admit("key/desk-7", ["e4"])
    assert caught.value.retry_after_s == 3600  # the next hour of the clock
    await one.admit("key/desk-7", ["e1", "e3"])  # seen already: always allowed
    await one.admit("key/other", ["e4"])  # another principal counts its own
    # A batch that would cross the limit is refused whole.
    with pytest.raises(LookupLimitReached):
        await one.admit("key/other", ["e5", "e6", "e7"])
    await one.admit("key/other", ["e5", "e6"])
    clock.now += 3600
    await two.admit("key/desk-7", ["e4", "e5", "e6"])
    await one.close()
    await two.close()


async def test_a_key_record_may_set_its_own_limit(redis_server):
    limit = LookupLimit(100, redis_server.url, Clock())
    await limit.admit("key/narrow", ["a"], per_hour=1)
    with pytest.raises(LookupLimitReached, match="the limit is 1"):
        await limit.admit("key/narrow", ["b"], per_hour=1)
    await limit.close()


async def test_without_redis_each_replica_counts_its_own(redis_server):
    limit = LookupLimit(2, redis_server.url, Clock())
    await limit.admit("key/desk-7", ["e1"])
    redis_server.stop()
    await limit.admit("key/desk-7", ["e2"])  # counted locally: e1 was seen while Redis was up
    with pytest.raises(LookupLimitReached):
        await limit.admit("key/desk-7", ["e3"])
    await limit.close()


async def test_a_customer_redis_already_took_this_hour_costs_no_round_trip(redis_server, caplog):
    limit = LookupLimit(5, redis_server.url, Clock())
    await limit.admit("key/desk-7", ["e1", "e2"])
    redis_server.stop()
    with caplog.at_level("ERROR", logger="router.lookups"):
        await limit.admit("key/desk-7", ["e2"])  # known from the first call: Redis is not asked
        await limit.admit("key/desk-7", ["e1", "e2"])
    assert "lookups.redis_unavailable" not in caplog.text
    with caplog.at_level("ERROR", logger="router.lookups"):
        await limit.admit("key/desk-7", ["e3"])  # a new one is: Redis is away, counted here
    assert "lookups.redis_unavailable" in caplog.text
    await limit.close()


@pytest.mark.parametrize("shared", [True, False], ids=["redis", "one-replica"])
async def test_past_the_limit_a_lookup_of_nobody_is_refused_like_a_new_customer(redis_server, shared):
    """Otherwise the limit would leak who is a customer: a new customer
    429, a stranger 404."""
    limit = LookupLimit(2, redis_server.url if shared else "", Clock())
    await limit.admit("key/prober", [])  # below the limit: nobody is just nobody
    await limit.admit("key/prober", ["e1", "e2"])
    with pytest.raises(LookupLimitReached) as customer:
        await limit.admit("key/prober", ["e3"])
    with pytest.raises(LookupLimitReached) as nobody:
        await limit.admit("key/prober", [])
    assert str(nobody.value) == str(customer.value)
    await limit.admit("key/prober", ["e1"])  # seen already: still allowed
    await limit.close()
