import pytest

from services.runtime.faults import InvalidArgument
from services.runtime.lru import LruCache


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_entry_bound_evicts_least_recently_used():
    cache = LruCache(max_entries=2, max_bytes=1000)
    cache.set("a", b"1", 60)
    cache.set("b", b"2", 60)
    assert cache.get("a") == b"1"  # a is now the most recent
    cache.set("c", b"3", 60)
    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c")) == (b"1", b"3")


def test_byte_bound_evicts_until_it_fits():
    cache = LruCache(max_entries=100, max_bytes=25)
    cache.set("a", b"x" * 10, 60)
    cache.set("b", b"y" * 10, 60)
    assert cache.size_bytes == 22
    cache.set("c", b"z" * 10, 60)
    assert cache.get("a") is None
    assert cache.size_bytes == 22
    assert cache.set("huge", b"h" * 100, 60) is False
    assert cache.get("b") == b"y" * 10


def test_entries_expire_after_their_ttl():
    clock = FakeClock()
    cache = LruCache(max_entries=10, max_bytes=1000, clock=clock)
    cache.set("k", b"v", 5)
    clock.now += 4.9
    assert cache.get("k") == b"v"
    clock.now += 0.2
    assert cache.get("k") is None
    assert len(cache) == 0 and cache.size_bytes == 0


def test_replace_and_delete_keep_the_byte_count_right():
    cache = LruCache(max_entries=10, max_bytes=1000)
    cache.set("k", b"12345", 60)
    cache.set("k", b"12", 60)
    assert cache.size_bytes == 3
    assert cache.delete("k") is True
    assert cache.delete("k") is False
    assert cache.size_bytes == 0


def test_bad_ttl_names_the_field():
    with pytest.raises(InvalidArgument) as caught:
        LruCache(10, 100).set("k", b"v", 0)
    assert caught.value.field == "ttl"
