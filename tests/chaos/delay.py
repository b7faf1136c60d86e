"""A slow link where the kernel has no netem: each packet the namespace's
NFQUEUE holds is let go `delay ± jitter` after it arrived, and never
before the packet ahead of it, so a flow keeps its order (netem's
behaviour with a rate set).

`python -m tests.chaos.delay --queue 7 --delay-ms 200 --jitter-ms 50`,
run inside the namespace whose iptables rules queue the packets; prints
`ready` once bound, then holds packets until SIGTERM."""

from __future__ import annotations

import argparse
import heapq
import random
import signal
import sys
import threading
import time
from itertools import count

import fnfqueue

MAX_HELD = 50_000


class Delayer:
    def __init__(self, delay_s: float, jitter_s: float):
        self.delay_s = delay_s
        self.jitter_s = jitter_s
        self._held: list[tuple[float, int, fnfqueue.Packet]] = []
        self._order = count()
        self._last_due = 0.0
        self._changed = threading.Condition()

    def hold(self, packet: fnfqueue.Packet) -> None:
        due = time.monotonic() + self.delay_s + random.uniform(-self.jitter_s, self.jitter_s)
        due = self._last_due = max(due, self._last_due)
        with self._changed:
            heapq.heappush(self._held, (due, next(self._order), packet))
            self._changed.notify()

    def flush(self) -> None:
        """Let every held packet go now: stopping drops none."""
        with self._changed:
            while self._held:
                heapq.heappop(self._held)[2].accept()

    def release_forever(self) -> None:
        while True:
            with self._changed:
                while not self._held or self._held[0][0] > time.monotonic():
                    self._changed.wait(self._held[0][0] - time.monotonic() if self._held else None)
                _, _, packet = heapq.heappop(self._held)
            packet.accept()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queue", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, required=True)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    delayer = Delayer(args.delay_ms / 1000, args.jitter_ms / 1000)
    connection = fnfqueue.Connection(packet_size=8192)
    queue = connection.bind(args.queue)
    queue.set_mode(0, fnfqueue.COPY_META)  # the verdict needs only the packet's id
    queue.set_maxlen(MAX_HELD)

    def stop(*_: object) -> None:
        delayer.flush()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    threading.Thread(target=delayer.release_forever, daemon=True).start()
    print("ready", flush=True)
    while True:
        try:
            for packet in connection:
                delayer.hold(packet)
            return 0
        except fnfqueue.BufferOverflowException:
            connection.reset()  # the kernel dropped what did not fit, as a full link does
        except Exception as error:  # fnfqueue raises a bare Exception for a verdict refused
            # The kernel no longer held a packet whose verdict went out: that
            # packet is gone, the rest are not.
            if "Hmm" not in str(error):
                raise


if __name__ == "__main__":
    raise SystemExit(main())
