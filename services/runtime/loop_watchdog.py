"""LoopWatchdog: a process whose event loop has stopped turning ends itself.

A coroutine that never yields (a scan gone quadratic, a synchronous call
that hangs) stops every request the process serves, and its health answers
with them: the probes time out, yet the process stays alive, holding its
connections. The loop stamps the time every HEARTBEAT_S; a daemon thread
reads the stamp, and once it is older than the limit (LOOP_STALL_LIMIT_S)
logs where the loop stands (the main thread's stack: code, never values)
and ends the process with EXIT_STUCK. The local runner and the kubelet then
start it again, as they do a process that crashed.

Tests that must stall a loop set LOOP_STALL_TEST_SIGNAL=1: SIGUSR2 then
blocks the loop for an hour. Nothing else can reach it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
import time
import traceback

log = logging.getLogger("watchdog")

EXIT_STUCK = 70  # EX_SOFTWARE: the process ended itself, stuck
HEARTBEAT_S = 0.5
DEFAULT_LIMIT_S = 20.0


class LoopWatchdog:
    """Watches one event loop from a thread of its own."""

    def __init__(self, limit_s: float = DEFAULT_LIMIT_S, exit_code: int = EXIT_STUCK):
        self.limit_s = limit_s
        self._exit_code = exit_code
        self._beat = time.monotonic()
        self._stopped = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = threading.main_thread().ident

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._beat = time.monotonic()
        loop.call_soon(self._heartbeat)
        threading.Thread(target=self._watch, name="loop-watchdog", daemon=True).start()
        if os.environ.get("LOOP_STALL_TEST_SIGNAL") == "1":  # tests only: SIGUSR2 blocks the loop
            loop.add_signal_handler(signal.SIGUSR2, time.sleep, 3600)

    def stop(self) -> None:
        self._stopped.set()

    def stalled_s(self) -> float:
        """Seconds since the loop last turned (about HEARTBEAT_S when it runs)."""
        return time.monotonic() - self._beat

    def _heartbeat(self) -> None:
        self._beat = time.monotonic()
        if self._loop is not None and not self._stopped.is_set():
            self._loop.call_later(HEARTBEAT_S, self._heartbeat)

    def _watch(self) -> None:
        while not self._stopped.wait(min(1.0, self.limit_s / 4)):
            stalled = self.stalled_s()
            if stalled > self.limit_s:
                self._end(stalled)
                return

    def _end(self, stalled: float) -> None:
        # Exit even if logging itself is what hangs (a full pipe, a lock the
        # stuck thread holds): the exit is armed before the log is written.
        threading.Timer(2.0, os._exit, (self._exit_code,)).start()
        frame = sys._current_frames().get(self._loop_thread) if self._loop_thread is not None else None
        stack = "".join(traceback.format_stack(frame)[-12:]) if frame is not None else ""
        log.critical(
            "event loop stuck: exiting to be restarted",
            extra={"fields": {"stalled_s": round(stalled, 1), "limit_s": self.limit_s, "stack": stack}},
        )
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(self._exit_code)
