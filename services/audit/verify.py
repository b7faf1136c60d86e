"""Verify the access log's chain: `python -m services.audit.verify`.

    python -m services.audit.verify --db .data/audit.db --key-file .data/audit-chain.key

Reads the log without changing it and walks the chain from the first row.
Exit 0 and the number of rows and the head when every link holds; exit 1
naming the first row whose link is broken (a row changed, removed or
inserted since it was written). Compare the head with the last `audit.head`
the service logged to see whether rows were cut off the end.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path

from services.audit.access_log import COLUMNS, verify_rows
from services.audit.chain_key import ChainKeyError, chain_key


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", required=True, type=Path, help="the access log (AUDIT_DB_PATH)")
    parser.add_argument("--key-file", type=Path, help="the chain key, hex (default: AUDIT_CHAIN_KEY)")
    args = parser.parse_args(argv)
    try:
        key = chain_key(args.key_file.read_text() if args.key_file else None)
    except (ChainKeyError, OSError) as error:
        print(f"chain key: {error}", file=sys.stderr)
        return 2
    if not args.db.exists():
        print(f"{args.db}: no such file", file=sys.stderr)
        return 2
    with sqlite3.connect(f"file:{args.db}?mode=ro", uri=True) as db:
        verdict = verify_rows(db.execute(f"SELECT id, {COLUMNS}, chain FROM access ORDER BY id"), key)
    before = f" ({verdict.unchained} rows from before the chain, unchecked)" if verdict.unchained else ""
    if verdict.intact:
        print(f"intact: {verdict.rows} records{before}, head {verdict.head}")
        return 0
    print(
        f"BROKEN at record {verdict.broken_at}: it does not follow from the record before it "
        f"(a record was changed, removed or inserted); {verdict.rows} records before it hold{before}"
    )
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
