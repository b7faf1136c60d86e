"""pip's output as progress for a person waiting on `make run`: a line per
package collected, each step pip takes (building, installing), and while
pip says nothing a line every few seconds that it is still working, so
no minute of a first install passes in silence.

    pip install -r requirements-dev.txt | python -m deploy.install_progress
"""

from __future__ import annotations

import argparse
import os
import selectors
import sys
import time
from typing import TextIO

# The lines of pip's worth showing; the rest (requirement already
# satisfied, downloading, using cached ...) would only scroll.
SHOWN = ("Collecting ", "Building wheel", "Installing collected packages", "Successfully installed")
MAX_LINE_CHARS = 160


def shown(line: str) -> str | None:
    """The line as printed, or None when it is not worth a line."""
    if not line.startswith(SHOWN):
        return None
    if line.startswith("Installing collected packages"):
        count = line.count(",") + 1
        return f"installing {count} packages ..."
    return line if len(line) <= MAX_LINE_CHARS else line[: MAX_LINE_CHARS - 3] + "..."


def relay(source: TextIO, sink: TextIO, quiet_s: float = 10.0) -> None:
    """Copies the lines worth showing from `source` to `sink` as they come,
    and says "still working" after every `quiet_s` of nothing shown."""
    started = last = time.monotonic()
    selector = selectors.DefaultSelector()
    selector.register(source, selectors.EVENT_READ)
    pending = b""
    fd = source.fileno()
    while True:
        if not selector.select(timeout=max(0.0, last + quiet_s - time.monotonic())):
            sink.write(f"  ... pip is still working ({time.monotonic() - started:.0f} s)\n")
            sink.flush()
            last = time.monotonic()
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        *lines, pending = (pending + chunk).split(b"\n")
        for raw in lines:
            line = shown(raw.decode(errors="replace").rstrip("\r"))
            if line is not None:
                sink.write(line + "\n")
                sink.flush()
                last = time.monotonic()
    if pending and (line := shown(pending.decode(errors="replace"))) is not None:
        sink.write(line + "\n")
        sink.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quiet-s", type=float, default=10.0, help="seconds of silence before a 'still working' line")
    args = parser.parse_args(argv)
    relay(sys.stdin, sys.stdout, args.quiet_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
