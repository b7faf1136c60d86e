"""LruCache: an in-process cache bounded by entry count and total bytes, with
a time to live per entry. The least recently used entries go first. Values
are bytes, or any object stored with its size given."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sized
from typing import Generic, TypeVar

from services.runtime.faults import InvalidArgument

# A key: a string, or a tuple of strings and numbers (a prompt's name,
# mode and version); its size is counted as the text it holds.
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def _key_size(key: object) -> int:
    return sum(len(str(part)) for part in key) if isinstance(key, tuple) else len(str(key))


class LruCache(Generic[K, V]):
    def __init__(self, max_entries: int, max_bytes: int, clock: Callable[[], float] = time.monotonic):
        if max_entries < 1:
            raise InvalidArgument("max_entries must be at least 1", field="max_entries")
        if max_bytes < 1:
            raise InvalidArgument("max_bytes must be at least 1", field="max_bytes")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        self._entries: OrderedDict[K, tuple[V, float, int]] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, expires_at, _ = entry
        if expires_at <= self._clock():
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return value

    def set(self, key: K, value: V, ttl_s: float, size: int | None = None) -> bool:
        """Store a value; False when it alone is larger than the byte bound.
        `size` is required for values that are not bytes."""
        if ttl_s <= 0:
            raise InvalidArgument("ttl must be positive", field="ttl")
        if size is None:
            if not isinstance(value, Sized):
                raise TypeError("a value without a length needs its size")
            size = len(value)
        cost = size + _key_size(key)
        self._remove(key)
        if cost > self.max_bytes:
            return False
        self._entries[key] = (value, self._clock() + ttl_s, cost)
        self._bytes += cost
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            oldest = next(iter(self._entries))
            self._remove(oldest)
        return True

    def delete(self, key: K) -> bool:
        return self._remove(key)

    def delete_prefix(self, prefix: str) -> int:
        """Remove every entry whose key starts with `prefix`; how many went."""
        doomed = [key for key in self._entries if isinstance(key, str) and key.startswith(prefix)]
        for key in doomed:
            self._remove(key)
        return len(doomed)

    def _remove(self, key: K) -> bool:
        entry = self._entries.pop(key, None)
        if entry is None:
            return False
        self._bytes -= entry[2]
        return True
