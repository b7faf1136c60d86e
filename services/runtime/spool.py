"""Spool: what an Outbox holds, also on disk, so that it outlives the process.

An item is appended (length-prefixed bytes) to the current segment file
before the caller goes on, and marked done once the receiver has taken it
(or refused it for good). A segment is removed when it is closed (it holds
SEGMENT_ITEMS) and every item in it is done. A process that starts on a
spool left by an earlier one (SIGKILLed, out of memory, a stuck loop that
ended itself) recovers the items of the segments it finds and sends them
again; the receiver takes each id once, so a repeat changes nothing.

Items are written with one write(2) each: they survive the death of the
process, which is what happens here; a machine that loses power may lose
the last second's (segments are fsynced when closed and at shutdown). Disk
use is bounded by what the Outbox holds (its capacity), in segments of
SEGMENT_ITEMS. One process owns a folder (an exclusive lock): replicas have
folders of their own.
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from services.runtime.settings import SettingsError, env_str

log = logging.getLogger("spool")

SEGMENT_ITEMS = 1000
_LENGTH = struct.Struct("<I")


class SpoolError(RuntimeError):
    """The folder cannot be used: not writable, or held by another process."""


@dataclass
class _Segment:
    number: int
    path: Path
    written: int = 0
    done: int = 0
    closed: bool = False


class Spool:
    def __init__(self, folder: str | Path, name: str):
        self.folder = Path(folder)
        self.name = name
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._lock = open(self.folder / f"{name}.lock", "a")  # noqa: SIM115 - held while the process lives
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SpoolError(f"{self.folder}: another process holds the {name} spool") from None
        except OSError as error:
            raise SpoolError(f"{self.folder}: {error.strerror}") from None
        self._segments: dict[int, _Segment] = {}
        self._current: _Segment | None = None
        self._fd = -1
        found = sorted(self.folder.glob(f"{name}-*.spool"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
        self._next = int(found[-1].stem.rsplit("-", 1)[1]) + 1 if found else 1
        self._left = found  # segments of an earlier process, read by recover()

    def recover(self) -> list[tuple[bytes, int]]:
        """The items an earlier process left undelivered, oldest first, each
        with the segment it stays in until done."""
        items: list[tuple[bytes, int]] = []
        for path in self._left:
            number = int(path.stem.rsplit("-", 1)[1])
            payloads = _read(path)
            if not payloads:
                path.unlink(missing_ok=True)
                continue
            self._segments[number] = _Segment(number, path, written=len(payloads), closed=True)
            items.extend((payload, number) for payload in payloads)
        self._left = []
        if items:
            log.info(f"{self.name}.recovered", extra={"fields": {"items": len(items)}})
        return items

    def append(self, payload: bytes) -> int:
        """Write one item; the number of the segment that holds it."""
        segment = self._current
        if segment is None or segment.written >= SEGMENT_ITEMS:
            segment = self._open_segment()
        os.write(self._fd, _LENGTH.pack(len(payload)) + payload)
        segment.written += 1
        return segment.number

    def done(self, number: int, count: int = 1) -> None:
        """`count` items of segment `number` are taken (or refused for good);
        number 0 (an item never written) is nothing here."""
        segment = self._segments.get(number)
        if segment is None:
            return
        segment.done += count
        self._remove_if_done(segment)

    def close(self) -> None:
        """Flush what is left to disk and let go of the folder; segments
        whose items are all done are removed."""
        if self._current is not None:
            self._close_current()
        self._lock.close()

    def _open_segment(self) -> _Segment:
        if self._current is not None:
            self._close_current()
        number, self._next = self._next, self._next + 1
        path = self.folder / f"{self.name}-{number}.spool"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._current = self._segments[number] = _Segment(number, path)
        return self._current

    def _close_current(self) -> None:
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = -1
        segment, self._current = self._current, None
        if segment is None:
            return
        segment.closed = True
        self._remove_if_done(segment)

    def _remove_if_done(self, segment: _Segment) -> None:
        if segment.closed and segment.done >= segment.written:
            segment.path.unlink(missing_ok=True)
            del self._segments[segment.number]


def spool_from_env(name: str) -> Spool | None:
    """The `name` spool in SPOOL_DIR (a folder of this process's own); None
    when SPOOL_DIR is unset. A folder that cannot be used is a bad setting."""
    folder = env_str("SPOOL_DIR")
    if not folder:
        return None
    try:
        return Spool(folder, name)
    except SpoolError as error:
        raise SettingsError(f"SPOOL_DIR: {error}") from None


def _read(path: Path) -> list[bytes]:
    """A segment's items; a record cut short by the writer's death ends it."""
    data = path.read_bytes()
    items, offset = [], 0
    while offset + _LENGTH.size <= len(data):
        (length,) = _LENGTH.unpack_from(data, offset)
        end = offset + _LENGTH.size + length
        if end > len(data):
            log.warning("spool.torn_record", extra={"fields": {"segment": path.name}})
            break
        items.append(data[offset + _LENGTH.size : end])
        offset = end
    return items
